"""Fault injection, the sliding rate limit and the `/_sandbox/` admin endpoints."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests
from sandbox_helpers import DEMO, Api, review_body, task_body

from scheduler.clock import FakeClock
from tallyfy_sandbox import FaultRule, SandboxServer
from tallyfy_sandbox.errors import InvalidInput
from tallyfy_sandbox.transport import Request

# --- faults that refuse before applying ------------------------------------------------


def test_rate_limit_fault_answers_429_with_headers_and_does_not_apply(
    sandbox: SandboxServer, api: Api
) -> None:
    sandbox.add_fault(FaultRule("rate_limit", retry_after=7, count=1))
    response = api.launch()
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert response.json()["code"] == "RATE_LIMIT_EXCEEDED"
    assert response.json()["message"]
    assert sandbox.runs() == []
    assert api.launch().status_code == 201  # count=1: the next one goes through


def test_rate_limit_fault_can_send_an_http_date_or_no_retry_after(
    sandbox: SandboxServer, api: Api
) -> None:
    date = "Wed, 21 Oct 2026 07:28:00 GMT"
    sandbox.add_fault(FaultRule("rate_limit", retry_after=date, count=1))
    sandbox.add_fault(FaultRule("rate_limit", count=1))
    assert api.launch().headers["Retry-After"] == date
    assert "Retry-After" not in api.launch().headers


@pytest.mark.parametrize(("status", "expected"), [(None, 503), (502, 502)], ids=["default", "502"])
def test_error_before_answers_the_status_without_applying(
    sandbox: SandboxServer, api: Api, status: int | None, expected: int
) -> None:
    rule = FaultRule("error_before") if status is None else FaultRule("error_before", status=status)
    sandbox.add_fault(rule)
    response = api.launch()
    assert response.status_code == expected
    assert response.json()["error"] is True
    assert sandbox.runs() == [] and sandbox.tasks() == []


def test_latency_delays_the_answer_but_not_the_outcome(sandbox: SandboxServer, api: Api) -> None:
    sandbox.add_fault(FaultRule("latency", seconds=0.3, method="GET"))
    started = time.monotonic()
    assert api.get("/me").status_code == 200
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    assert api.launch().status_code == 201  # a POST does not match the GET rule
    assert time.monotonic() - started < 0.3


# --- faults after applying: the API did the work, the client does not hear it ----------


def test_error_after_creates_the_run_then_answers_the_error(
    sandbox: SandboxServer, api: Api
) -> None:
    sandbox.add_fault(FaultRule("error_after", status=500, count=1))
    response = api.launch()
    assert response.status_code == 500
    assert len(sandbox.runs()) == 1
    found = api.get("runs", params={"q": review_body()["name"]}).json()["data"]
    assert [r["id"] for r in found] == [sandbox.runs()[0]["id"]]  # what reconciliation reads


@pytest.mark.parametrize("path", ["runs", "tasks"], ids=["launch", "task"])
def test_drop_after_applies_the_post_then_closes_without_a_response(
    sandbox: SandboxServer, api: Api, path: str
) -> None:
    sandbox.add_fault(FaultRule("drop_after", path_contains=f"/{path}", count=1))
    body = review_body() if path == "runs" else task_body()
    with pytest.raises(requests.ConnectionError):
        api.post(path, body)
    created = sandbox.runs() if path == "runs" else sandbox.tasks()
    assert len(created) == 1
    assert api.post(path, body).status_code == 201  # the pool reconnects; the rule is spent


def test_delay_after_applies_then_outlasts_the_client_read_timeout(
    sandbox: SandboxServer, api: Api
) -> None:
    sandbox.add_fault(FaultRule("delay_after", seconds=0.8, count=1))
    with pytest.raises(requests.ReadTimeout):
        api.session.post(f"{api.org_url}/runs", json=review_body(), timeout=(5, 0.2))
    assert len(sandbox.runs()) == 1


def test_after_faults_leave_refused_requests_alone(sandbox: SandboxServer, api: Api) -> None:
    sandbox.add_fault(FaultRule("error_after", count=1))
    assert api.launch(checklist_id=None).status_code == 422  # not applied: the rule waits
    assert api.launch().status_code == 503
    assert len(sandbox.runs()) == 1


# --- matching --------------------------------------------------------------------------


def test_rules_match_on_method_and_path(sandbox: SandboxServer, api: Api) -> None:
    sandbox.add_fault(FaultRule("error_before", path_contains="/tasks"))
    sandbox.add_fault(FaultRule("error_before", method="GET", path_contains="q=boom", status=504))
    assert api.launch().status_code == 201
    assert api.post("tasks", task_body()).status_code == 503
    assert api.get("runs").status_code == 200
    assert api.get("runs", params={"q": "boom"}).status_code == 504


def test_method_none_matches_every_method(sandbox: SandboxServer, api: Api) -> None:
    sandbox.add_fault(FaultRule("error_before", method=None, path_contains="/me"))
    assert api.get("/me").status_code == 503
    assert api.launch().status_code == 201


def test_count_limits_a_rule_to_the_next_n_matching_requests(
    sandbox: SandboxServer, api: Api
) -> None:
    sandbox.add_fault(FaultRule("error_before", count=2))
    assert [api.launch().status_code for _ in range(3)] == [503, 503, 201]


def test_the_first_refusing_rule_wins_and_later_ones_keep_their_count(
    sandbox: SandboxServer, api: Api
) -> None:
    sandbox.add_fault(FaultRule("error_before", status=502, count=1))
    sandbox.add_fault(FaultRule("error_before", status=504, count=1))
    assert [api.launch().status_code for _ in range(3)] == [502, 504, 201]


def _pattern(seed: int) -> list[int]:
    with SandboxServer() as server:
        api = Api(server)
        try:
            server.add_fault(FaultRule("error_before", method="GET", probability=0.5, seed=seed))
            return [api.get("/me").status_code for _ in range(30)]
        finally:
            api.close()


def test_probability_draws_from_a_seeded_rng_so_runs_repeat() -> None:
    first, again = _pattern(7), _pattern(7)
    assert first == again
    assert 0 < first.count(503) < 30
    assert _pattern(8) != first


def test_clear_faults_removes_every_rule(sandbox: SandboxServer, api: Api) -> None:
    sandbox.add_fault(FaultRule("error_before"))
    sandbox.clear_faults()
    assert api.launch().status_code == 201


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"kind": "explode"}, "kind"),
        ({"kind": "latency", "seconds": -1}, "seconds"),
        ({"kind": "error_before", "probability": 1.5}, "probability"),
        ({"kind": "error_before", "count": -2}, "count"),
        ({"kind": "error_after", "status": 42}, "status"),
    ],
    ids=["kind", "seconds", "probability", "count", "status"],
)
def test_a_bad_rule_is_refused_naming_the_key(kwargs: dict[str, object], key: str) -> None:
    with pytest.raises(InvalidInput, match=key):
        FaultRule(**kwargs)  # type: ignore[arg-type]


# --- the sliding-window rate limit -----------------------------------------------------


@pytest.fixture
def limited() -> Iterator[tuple[SandboxServer, Api, FakeClock]]:
    clock = FakeClock(datetime(2026, 3, 8, 7, 0, tzinfo=UTC))
    with SandboxServer(clock=clock) as server:
        server.set_rate_limit(3)
        api = Api(server)
        yield server, api, clock
        api.close()


def test_the_rate_limit_answers_429_past_n_per_rolling_minute(
    limited: tuple[SandboxServer, Api, FakeClock],
) -> None:
    server, api, clock = limited
    remaining = [api.get("/me").headers["X-RateLimit-Remaining"] for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    refused = api.launch()
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "60"
    assert refused.headers["X-RateLimit-Limit"] == "3"
    assert refused.json()["code"] == "RATE_LIMIT_EXCEEDED"
    assert server.runs() == []  # not applied
    clock.advance(timedelta(seconds=45))
    assert api.get("/me").headers["Retry-After"] == "15"
    clock.advance(timedelta(seconds=15))
    assert api.launch().status_code == 201


def test_the_window_slides_rather_than_resetting_each_minute(
    limited: tuple[SandboxServer, Api, FakeClock],
) -> None:
    _server, api, clock = limited
    assert api.get("/me").status_code == 200  # t=0
    clock.advance(timedelta(seconds=40))
    assert [api.get("/me").status_code for _ in range(3)] == [200, 200, 429]  # t=40
    clock.advance(timedelta(seconds=21))  # t=61: only the t=0 request has left the window
    assert [api.get("/me").status_code for _ in range(2)] == [200, 429]
    clock.advance(timedelta(seconds=40))  # t=101: the two from t=40 have left
    assert [api.get("/me").status_code for _ in range(3)] == [200, 200, 429]


def test_the_rate_limit_counts_each_token_separately_and_can_be_lifted(
    limited: tuple[SandboxServer, Api, FakeClock],
) -> None:
    server, api, _clock = limited
    server.add_token("other")
    other = {"Authorization": "Bearer other", "X-Tallyfy-Client": "APIClient"}
    assert [api.get("/me").status_code for _ in range(4)] == [200, 200, 200, 429]
    assert requests.get(f"{server.url}/me", headers=other, timeout=10).status_code == 200
    server.set_rate_limit(None)
    assert api.get("/me").status_code == 200
    assert "X-RateLimit-Limit" not in api.get("/me").headers


# --- request counts and the admin endpoints --------------------------------------------


def test_request_count_filters_by_method_and_path(sandbox: SandboxServer, api: Api) -> None:
    api.launch()
    api.launch(checklist_id=None)
    api.get("runs")
    api.get("/me")
    assert sandbox.request_count() == 4
    assert sandbox.request_count("POST") == 2
    assert sandbox.request_count("get", "/runs") == 1
    assert sandbox.request_count(path_contains="/organizations/demo-org/") == 3


def test_admin_faults_endpoint_adds_lists_and_clears_rules(
    sandbox: SandboxServer, api: Api
) -> None:
    rules = [{"kind": "error_after", "count": 1}, {"kind": "latency", "seconds": 0.01}]
    added = api.admin("POST", "faults", rules)
    assert added.status_code == 201
    assert [r["kind"] for r in added.json()["data"]] == ["error_after", "latency"]
    assert api.launch().status_code == 503
    listed = api.admin("GET", "faults").json()["data"]
    assert [(r["kind"], r["fired"]) for r in listed] == [("error_after", 1), ("latency", 1)]
    assert api.admin("DELETE", "faults").status_code == 200
    assert api.admin("GET", "faults").json()["data"] == []
    assert len(sandbox.runs()) == 1


def test_admin_faults_endpoint_refuses_a_bad_rule_with_a_422(api: Api) -> None:
    response = api.admin("POST", "faults", [{"kind": "latency"}, {"kind": "boom", "when": 1}])
    assert response.status_code == 422
    assert set(response.json()["errors"]) == {"1.when"}
    response = api.admin("POST", "faults", [{"kind": "boom"}])
    assert set(response.json()["errors"]) == {"0.kind"}
    assert api.admin("GET", "faults").json()["data"] == []  # all or nothing


def test_admin_runs_and_tasks_list_everything_unpaged(sandbox: SandboxServer, api: Api) -> None:
    for _ in range(12):
        api.launch()
    assert len(api.admin("GET", "runs").json()["data"]) == 12
    assert len(api.admin("GET", "tasks").json()["data"]) == 36


def test_admin_reset_forgets_runs_tasks_faults_and_counts(sandbox: SandboxServer, api: Api) -> None:
    api.launch()
    sandbox.add_fault(FaultRule("error_before", method="GET"))
    sandbox.expire_token(sandbox.token)
    assert api.admin("POST", "reset").status_code == 200
    assert sandbox.runs() == [] and sandbox.tasks() == []
    assert sandbox.request_count() == 0
    assert api.get("/me").status_code == 200  # token restored, fault gone


def test_admin_tokens_endpoint_adds_and_expires(sandbox: SandboxServer, api: Api) -> None:
    body = {"add": ["fresh"], "expire": [sandbox.token]}
    assert api.admin("POST", "tokens", body).json()["data"] == {"added": 1, "expired": 1}
    assert api.get("/me").status_code == 401
    fresh = {"Authorization": "Bearer fresh", "X-Tallyfy-Client": "APIClient"}
    assert requests.get(f"{sandbox.url}/me", headers=fresh, timeout=10).status_code == 200
    assert api.admin("POST", "tokens", {"remove": ["x"]}).status_code == 422


def test_admin_rate_limit_endpoint_sets_and_lifts_the_limit(api: Api) -> None:
    assert api.admin("POST", "rate-limit", {"per_minute": 1}).json()["data"] == {"per_minute": 1}
    assert [api.get("/me").status_code for _ in range(2)] == [200, 429]
    assert api.admin("POST", "rate-limit", {"per_minute": None}).status_code == 200
    assert api.get("/me").status_code == 200
    assert api.admin("POST", "rate-limit", {"per_minute": 0}).status_code == 422


def test_admin_stats_counts_requests_and_creations(sandbox: SandboxServer, api: Api) -> None:
    api.launch()
    api.get("runs")
    stats = api.admin("GET", "stats").json()["data"]
    assert stats["runs"] == 1 and stats["tasks"] == 3
    assert stats["requests"]["by_method"] == {"POST": 1, "GET": 2}  # this GET included
    assert stats["rate_limit"] == {"per_minute": None}


def test_admin_endpoints_are_never_faulted_or_authenticated(
    sandbox: SandboxServer, api: Api
) -> None:
    sandbox.add_fault(FaultRule("error_before", method=None))
    assert api.admin("GET", "runs").status_code == 200
    assert api.admin("GET", "nothing").status_code == 404


def test_admin_endpoints_refuse_non_loopback_peers(sandbox: SandboxServer) -> None:
    remote = Request("GET", "/_sandbox/runs", "/_sandbox/runs", {}, {}, b"", "192.0.2.10")
    assert sandbox.app.handle(remote).status == 403
    local = Request("GET", "/_sandbox/runs", "/_sandbox/runs", {}, {}, b"", "::1")
    assert sandbox.app.handle(local).status == 200


def test_serve_prints_the_url_organization_and_token_then_serves() -> None:
    code = "from tallyfy_sandbox import serve; serve(port=0)"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        words = line.split()
        url = next(w for w in words if w.startswith("http://"))
        assert url.endswith("/api") and DEMO.ORG in words and DEMO.TOKEN in words
        headers = {"Authorization": f"Bearer {DEMO.TOKEN}", "X-Tallyfy-Client": "APIClient"}
        assert requests.get(f"{url}/me", headers=headers, timeout=10).status_code == 200
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
