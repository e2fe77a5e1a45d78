"""The dashboard's handlers called directly (no socket): a real SQLite store, the example
jobs, fires recorded through the ledger, a FakeClock; fire now and backfill through a real
runner against the sandbox over HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest

from scheduler.alertstate import IncidentKind
from scheduler.client import TallyfyClient
from scheduler.clock import FakeClock
from scheduler.config import DashboardTokens, Secret, Settings, StoreSettings, TallyfySettings
from scheduler.dashboard import Dashboard, Request, Response
from scheduler.dashboard.views import Catalog, drain_seconds, upcoming
from scheduler.lifecycle import FireStatus, Trigger
from scheduler.operations import apply_job_files
from scheduler.runner import Runner
from scheduler.store import Outcome, Store
from scheduler.timeexpr import BusinessCalendar
from tallyfy_sandbox import SandboxServer

EXAMPLES = Path(__file__).resolve().parents[2] / "jobs"
WEEKLY = "weekly-client-review"
DAILY = "daily-approvals-follow-up"
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday
ADMIN = "admin-token-for-tests-0123456789"
READER = "read-token-for-tests-0123456789"
XSS = "<script>alert('x')</script><img src=x onerror=alert(1)>"


@pytest.fixture
def settings(sandbox: SandboxServer, sqlite_url: str) -> Settings:
    return Settings(
        store=StoreSettings(url=sqlite_url),
        tallyfy=TallyfySettings(
            base_url=sandbox.url,
            organization_id=sandbox.organization_id,
            access_token=Secret(sandbox.token),
            max_requests_per_minute=300,
        ),
        dashboard=DashboardTokens(admin=Secret(ADMIN), read=Secret(READER)),
    )


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    store = Store.open(settings.store.url)
    store.init_schema()
    apply_job_files([EXAMPLES], settings, lambda: store, now=NOW - timedelta(days=30))
    yield store
    store.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def dash(store: Store, settings: Settings, clock: FakeClock) -> Iterator[Dashboard]:
    clients: list[TallyfyClient] = []

    def runner() -> Runner:
        client = TallyfyClient.from_settings(settings.tallyfy)
        clients.append(client)
        return Runner(
            store,
            client,
            organization_id=settings.tallyfy.organization_id or "",
            calendar=BusinessCalendar.from_settings(settings.calendar),
            retry=settings.retry,
            clock=clock,
        )

    yield Dashboard(
        store,
        settings,
        clock,
        runner=runner,
        tallyfy_web_url="https://go.tallyfy.com/{organization_id}/process/{remote_id}",
    )
    for client in clients:
        client.close()


def get(dash: Dashboard, path: str, *, cookie: str = "", **headers: str) -> Response:
    path, _, query = path.partition("?")
    from urllib.parse import parse_qs

    all_headers = {**headers, **({"Cookie": cookie} if cookie else {})}
    return dash.handle(Request("GET", path, query=parse_qs(query), headers=all_headers))


def post(dash: Dashboard, path: str, form: dict[str, str], *, cookie: str = "") -> Response:
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Host": "127.0.0.1:1"}
    if cookie:
        headers["Cookie"] = cookie
    return dash.handle(Request("POST", path, headers=headers, body=urlencode(form).encode()))


def text(response: Response) -> str:
    return response.body.decode("utf-8")


def sign_in(dash: Dashboard, token: str = ADMIN) -> str:
    answer = post(dash, "/signin", {"token": token, "next": "/"})
    assert answer.status == 303, text(answer)
    return answer.headers["Set-Cookie"].split(";")[0]


def csrf_of(page: Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', text(page))
    assert found, text(page)
    return found.group(1)


def record(store: Store, job_id: str, at: datetime, status: FireStatus, **outcome: object) -> None:
    [fire] = store.claim([(job_id, at, Trigger.SCHEDULE)], now=at)
    assert fire is not None
    store.start_attempts([fire.id], now=at)
    store.finish([Outcome(fire.id, status, **outcome)], now=at)  # type: ignore[arg-type]


# -- reading -------------------------------------------------------------------------------------


def test_jobs_page_lists_each_job_with_words_zone_next_fire_and_state(dash: Dashboard) -> None:
    page = get(dash, "/")
    assert page.status == 200
    html = text(page)
    assert "At 09:00, only on Monday" in html and "Europe/London" in html
    assert "At 08:00, Monday through Friday" in html and "America/New_York" in html
    # The next fire in the job's zone, with the zone; the next Monday 09:00 London is 03-09.
    assert "2026-03-09 09:00:00 GMT" in html
    assert html.count('class="state active"') == 2
    assert page.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert "<script>" not in html.split("<script src=")[0]  # no inline script anywhere
    assert "<script" not in html.replace('<script src="/static/dashboard.js" defer></script>', "")


def test_the_jobs_page_filters_by_state_and_text_and_pages(dash: Dashboard, store: Store) -> None:
    store.set_enabled(WEEKLY, False, now=NOW)
    paused = text(get(dash, "/?state=paused"))
    assert f'data-job="{WEEKLY}"' in paused and f'data-job="{DAILY}"' not in paused
    assert "paused by a person" in paused
    found = text(get(dash, "/?q=approvals"))
    assert f'data-job="{DAILY}"' in found and f'data-job="{WEEKLY}"' not in found
    assert "No jobs match" in text(get(dash, "/?q=nothing-like-this"))
    api = json.loads(text(get(dash, "/api/jobs?state=active")))
    assert [row["id"] for row in api["jobs"]] == [DAILY]
    assert api["jobs"][0]["state"] == "active" and api["total"] == 1


def test_a_job_with_more_than_a_page_of_history_is_paginated(dash: Dashboard, store: Store) -> None:
    for n in range(60):
        record(
            store,
            WEEKLY,
            NOW - timedelta(days=7 * (n + 1)),
            FireStatus.SUCCEEDED,
            remote_id=f"r{n}",
        )
    first = text(get(dash, f"/jobs/{WEEKLY}"))
    assert first.count('<tr class="fire">') == 50 and "page 1 of 2 (60)" in first
    assert 'href="https://go.tallyfy.com/' in first and "/process/r0" in first
    second = text(get(dash, f"/jobs/{WEEKLY}?page=2"))
    assert second.count('<tr class="fire">') == 10 and ">r59<" in second
    api = json.loads(text(get(dash, f"/api/jobs/{WEEKLY}?page=2")))
    assert api["job"]["id"] == WEEKLY and len(api["history"]) == 10 and api["pages"] == 2
    assert set(api["job"]) >= {"schedule_words", "definition", "active_since", "state"}


def test_the_job_page_shows_the_next_20_instants_with_their_requests(dash: Dashboard) -> None:
    html = text(get(dash, f"/jobs/{WEEKLY}"))
    assert html.count("<details>") == 20
    assert "POST " in html and "/runs" in html  # the launch request preview shows


def test_every_value_from_a_job_file_or_the_api_is_escaped(
    dash: Dashboard, store: Store, settings: Settings, tmp_path: Path
) -> None:
    source = (EXAMPLES / f"{WEEKLY}.toml").read_text()
    evil = tmp_path / "evil.toml"
    evil.write_text(
        source.replace(
            'description = "Open the weekly client review for Acme, with its deadlines set"',
            f"description = {json.dumps(XSS)}",
        )
    )
    apply_job_files([evil], settings, lambda: store, now=NOW - timedelta(days=1))
    record(store, "evil", NOW - timedelta(days=7), FireStatus.FAILED, error=XSS, http_status=422,
           field_errors={XSS: [XSS]})  # fmt: skip
    for path in ("/", "/jobs/evil", "/incidents", "/upcoming"):
        html = text(get(dash, path))
        assert "<script>alert" not in html and "<img src=x" not in html, path
    assert "&lt;script&gt;alert(" in text(get(dash, "/jobs/evil"))


def test_an_open_incident_and_an_uncertain_fire_are_on_every_page(
    dash: Dashboard, store: Store
) -> None:
    store.open_incident(
        IncidentKind.FAILED,
        f"failed:{WEEKLY}",
        ref="inc-1",
        detail={"error": "422 Unprocessable"},
        messages=[],
        now=NOW,
        daemon_id=None,
        job_id=WEEKLY,
    )
    record(store, DAILY, NOW - timedelta(hours=1), FireStatus.UNCERTAIN, error="timed out")
    for path in ("/", f"/jobs/{WEEKLY}", "/upcoming", "/incidents"):
        html = text(get(dash, path))
        assert 'id="alarms"' in html and "1 open incident" in html and "1 uncertain fire" in html
    assert "422 Unprocessable" in text(get(dash, "/incidents"))


def test_upcoming_buckets_per_minute_with_the_rate_limits_drain_time(
    dash: Dashboard, store: Store, settings: Settings, tmp_path: Path
) -> None:
    # 300 jobs at 14:00 UTC against 300 requests a minute: with the per-second job's 60, 359
    # intervals of 0.2 s, longer than the minute itself (crowded).
    source = (EXAMPLES / f"{WEEKLY}.toml").read_text()
    for n in range(300):
        (tmp_path / f"crowd-{n}.toml").write_text(
            source.replace('"0 9 * * MON"', '"0 14 * * *"').replace("Europe/London", "UTC")
        )
    # And a per-second job: counted, never listed (a week is 604,800 instants).
    (tmp_path / "every-second.toml").write_text(
        source.replace('"0 9 * * MON"', '"* * * * * *"').replace("Europe/London", "UTC")
    )
    apply_job_files([tmp_path], settings, lambda: store, now=NOW - timedelta(days=1))
    minutes, hours = upcoming(store, Catalog(settings), NOW)
    crowded = next(b for b in minutes if b.start == datetime(2026, 3, 2, 14, tzinfo=UTC))
    assert crowded.total == 300 + 60 and crowded.per_job["every-second"] == 60
    assert sum(b.per_job.get("every-second", 0) for b in hours) == 7 * 86400
    assert len(minutes) == 1440  # the per-second job fills every minute of the day
    assert drain_seconds(360, 300) == pytest.approx(71.8)
    api = json.loads(text(get(dash, "/api/upcoming")))
    at_13 = next(b for b in api["minutes"] if b["start"] == "2026-03-02T14:00:00Z")
    assert at_13["fires"] == 360 and at_13["drain_seconds"] == pytest.approx(71.8)
    html = text(get(dash, "/upcoming"))
    assert html.count('class="crowded"') == 2 and "<td>1 min</td>" in html


def test_a_job_the_breaker_paused_shows_so_with_its_reason(dash: Dashboard, store: Store) -> None:
    for days in (14, 7):
        record(store, WEEKLY, NOW - timedelta(days=days), FireStatus.FAILED, http_status=422,
               error="HTTP 422: the field 'Client name' is required")  # fmt: skip
    assert store.pause_by_breaker(WEEKLY, threshold=2, now=NOW) is not None
    listed = text(get(dash, "/?state=paused-by-breaker"))
    assert f'data-job="{WEEKLY}"' in listed and f'data-job="{DAILY}"' not in listed
    page = text(get(dash, f"/jobs/{WEEKLY}"))
    assert "paused by the failure breaker" in page and "Client name" in page
    (row,) = json.loads(text(get(dash, "/api/jobs?state=paused-by-breaker")))["jobs"]
    assert row["paused_by"] == "breaker" and "Client name" in row["pause_reason"]
    shown = json.loads(text(get(dash, f"/api/jobs/{WEEKLY}")))["job"]
    assert shown["state"] == "paused-by-breaker" and shown["paused_by"] == "breaker"
    store.set_enabled(WEEKLY, True, now=NOW)  # `jobs resume`: a person's pause no more
    assert json.loads(text(get(dash, f"/api/jobs/{WEEKLY}")))["job"]["state"] == "active"


def test_json_routes_use_the_cli_shapes(dash: Dashboard, store: Store) -> None:
    record(store, WEEKLY, NOW - timedelta(days=7), FireStatus.SUCCEEDED, remote_id="abc")
    jobs = json.loads(text(get(dash, "/api/jobs")))
    assert {"id", "enabled", "schedule", "schedule_words", "timezone", "action", "next_fire",
            "last_outcome"} <= set(jobs["jobs"][0])  # fmt: skip
    history = json.loads(text(get(dash, f"/api/history?job={WEEKLY}")))
    assert history["fires"][0]["remote_id"] == "abc"
    assert history["fires"][0]["scheduled_for"] == "2026-02-23T12:00:00+00:00"
    assert get(dash, "/api/jobs/nope").status == 404


# -- acting --------------------------------------------------------------------------------------


def test_reading_needs_no_token_on_loopback_but_acting_needs_the_admin(dash: Dashboard) -> None:
    page = text(get(dash, f"/jobs/{WEEKLY}"))
    assert 'id="pause"' not in page and "Sign in" in page
    refused = post(dash, f"/jobs/{WEEKLY}/pause", {"csrf": "x"})
    assert refused.status == 403


def test_pause_and_resume_with_the_admin_token_and_csrf(dash: Dashboard, store: Store) -> None:
    cookie = sign_in(dash)
    page = get(dash, f"/jobs/{WEEKLY}", cookie=cookie)
    assert 'id="pause"' in text(page)
    assert post(dash, f"/jobs/{WEEKLY}/pause", {"csrf": "forged"}, cookie=cookie).status == 403
    assert store.get_job(WEEKLY).enabled
    done = post(dash, f"/jobs/{WEEKLY}/pause", {"csrf": csrf_of(page)}, cookie=cookie)
    assert done.status == 303 and not store.get_job(WEEKLY).enabled
    shown = text(get(dash, done.headers["Location"], cookie=cookie))
    assert "paused by a person" in shown and "Paused:" in shown
    page = get(dash, f"/jobs/{WEEKLY}", cookie=cookie)
    post(dash, f"/jobs/{WEEKLY}/resume", {"csrf": csrf_of(page)}, cookie=cookie)
    assert store.get_job(WEEKLY).enabled


def test_a_forged_cross_site_post_is_refused(dash: Dashboard, store: Store) -> None:
    cookie = sign_in(dash)
    token = csrf_of(get(dash, f"/jobs/{WEEKLY}", cookie=cookie))
    headers = {"Cookie": cookie, "Origin": "https://evil.example", "Host": "127.0.0.1:1"}
    answer = dash.handle(
        Request("POST", f"/jobs/{WEEKLY}/pause", headers=headers, body=f"csrf={token}".encode())
    )
    assert answer.status == 403 and store.get_job(WEEKLY).enabled


def test_the_read_token_reads_but_cannot_act(dash: Dashboard, store: Store) -> None:
    cookie = sign_in(dash, READER)
    page = get(dash, f"/jobs/{WEEKLY}", cookie=cookie)
    assert 'id="pause"' not in text(page)
    assert post(dash, f"/jobs/{WEEKLY}/pause", {"csrf": "x"}, cookie=cookie).status == 403


def test_a_wrong_token_signs_nobody_in(dash: Dashboard) -> None:
    answer = post(dash, "/signin", {"token": "nope"})
    assert answer.status == 401 and "Set-Cookie" not in answer.headers
    assert ADMIN not in text(answer)


def test_with_allow_remote_every_page_needs_a_token(
    store: Store, settings: Settings, clock: FakeClock
) -> None:
    dash = Dashboard(store, settings, clock, allow_remote=True)
    for path in ("/", f"/jobs/{WEEKLY}", "/upcoming", "/incidents"):
        answer = get(dash, path)
        assert answer.status == 303 and answer.headers["Location"].startswith("/signin?next=")
    assert get(dash, "/api/jobs").status == 401
    assert get(dash, "/api/jobs", Authorization=f"Bearer {READER}").status == 200
    assert get(dash, "/", cookie=sign_in(dash, READER)).status == 200


def test_fire_now_records_a_manual_fire_as_the_cli_does(
    dash: Dashboard, store: Store, sandbox: SandboxServer
) -> None:
    cookie = sign_in(dash)
    page = get(dash, f"/jobs/{WEEKLY}", cookie=cookie)
    done = post(dash, f"/jobs/{WEEKLY}/fire", {"csrf": csrf_of(page)}, cookie=cookie)
    assert done.status == 303, text(done)
    [fire] = store.history(WEEKLY)
    assert fire.trigger == Trigger.MANUAL and fire.status == FireStatus.SUCCEEDED
    assert fire.scheduled_for == NOW


def test_backfill_shows_a_dry_run_then_fires_what_it_showed(dash: Dashboard, store: Store) -> None:
    cookie = sign_in(dash)
    query = urlencode({"from": "2026-02-09T00:00:00Z", "to": "2026-02-23T23:00:00Z"})
    dry = get(dash, f"/jobs/{WEEKLY}/backfill?{query}", cookie=cookie)
    assert "3 of 3 instants would be fired" in text(dry)
    assert store.history(WEEKLY) == []  # a dry run sends and writes nothing
    form = {"csrf": csrf_of(dry), "from": "2026-02-09T00:00:00Z", "to": "2026-02-23T23:00:00Z"}
    assert post(dash, f"/jobs/{WEEKLY}/backfill", form, cookie=cookie).status == 303
    fires = store.history(WEEKLY)
    assert [f.trigger for f in fires] == [Trigger.BACKFILL] * 3
    assert all(f.status == FireStatus.SUCCEEDED for f in fires)


# -- mounted on the daemon's listener ------------------------------------------------------------


def test_mounted_on_the_listener_the_pages_answer_over_http(dash: Dashboard) -> None:
    import requests

    from scheduler.daemon import pages
    from scheduler.daemon.listener import Listener
    from scheduler.web import Router

    router = Router()
    pages.mount(router, dash)
    listener = Listener.open("127.0.0.1", 0, router)
    listener.start()
    try:
        session = requests.Session()
        page = session.get(listener.url + "/", timeout=10)
        assert page.status_code == 200 and "At 09:00, only on Monday" in page.text
        assert page.headers["Content-Security-Policy"] == dash_csp()
        assert page.headers["Cache-Control"] == "no-store"  # once, from the listener
        signed = session.post(
            listener.url + "/signin", data={"token": ADMIN, "next": f"/jobs/{WEEKLY}"}, timeout=10
        )
        assert signed.url.endswith(f"/jobs/{WEEKLY}") and 'id="pause"' in signed.text
        head = session.head(listener.url + "/api/jobs", timeout=10)
        assert head.status_code == 200 and head.headers["Content-Type"] == "application/json"
    finally:
        listener.close()


def dash_csp() -> str:
    from scheduler.dashboard.app import CSP

    return CSP
