"""Authentication, headers, routing and 404s (tallyfy-api.md section 9 items 1-3)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from sandbox_helpers import DEMO, Api, demo_fixture, review_body

from scheduler.cli import cli
from tallyfy_sandbox import SandboxServer
from tallyfy_sandbox.errors import InvalidInput

UNAUTHENTICATED = {"error": True, "message": "Unauthenticated."}
ENDPOINT_NOT_FOUND = {
    "error": True,
    "message": "API endpoint not found",
    "code": "ENDPOINT_NOT_FOUND",
}
RESOURCE_NOT_FOUND = {"error": True, "message": "Resource not found", "code": "RESOURCE_NOT_FOUND"}


def _me(sandbox: SandboxServer, headers: dict[str, str]) -> requests.Response:
    return requests.get(f"{sandbox.url}/me", headers=headers, timeout=10)


GOOD = {"Authorization": "Bearer sandbox-token", "X-Tallyfy-Client": "APIClient"}


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Tallyfy-Client": "APIClient"},
        {"Authorization": "sandbox-token", "X-Tallyfy-Client": "APIClient"},
        {"Authorization": "Basic c2FuZGJveC10b2tlbg==", "X-Tallyfy-Client": "APIClient"},
        {"Authorization": "Bearer ", "X-Tallyfy-Client": "APIClient"},
        {"Authorization": "Bearer not-a-token", "X-Tallyfy-Client": "APIClient"},
    ],
    ids=["no-authorization", "no-scheme", "basic-scheme", "empty-token", "unknown-token"],
)
def test_it_answers_401_unauthenticated_without_a_known_bearer_token(
    sandbox: SandboxServer, headers: dict[str, str]
) -> None:
    response = _me(sandbox, headers)
    assert response.status_code == 401
    assert response.json() == UNAUTHENTICATED


def test_it_answers_401_when_x_tallyfy_client_is_missing(sandbox: SandboxServer) -> None:
    response = _me(sandbox, {"Authorization": "Bearer sandbox-token"})
    assert response.status_code == 401
    assert response.json()["message"] == "Unauthenticated."


def test_it_accepts_any_x_tallyfy_client_value_outside_strict_mode(
    sandbox: SandboxServer,
) -> None:
    response = _me(sandbox, {"Authorization": "Bearer sandbox-token", "X-Tallyfy-Client": "n8n"})
    assert response.status_code == 200


def test_an_expired_token_gets_401_and_adding_it_again_revives_it(sandbox: SandboxServer) -> None:
    assert _me(sandbox, GOOD).status_code == 200
    sandbox.expire_token(sandbox.token)
    response = _me(sandbox, GOOD)
    assert response.status_code == 401
    assert response.json() == UNAUTHENTICATED
    sandbox.add_token(sandbox.token)
    assert _me(sandbox, GOOD).status_code == 200


def test_an_added_token_is_accepted(sandbox: SandboxServer) -> None:
    headers = {"Authorization": "Bearer second-token", "X-Tallyfy-Client": "APIClient"}
    assert _me(sandbox, headers).status_code == 401
    sandbox.add_token("second-token")
    assert _me(sandbox, headers).status_code == 200


def test_me_returns_the_fixture_user_wrapped_in_data(api: Api) -> None:
    response = api.get("/me")
    assert response.status_code == 200
    assert response.json()["data"]["id"] == 1001
    assert response.json()["data"]["email"] == "ops@demo.example"


def test_me_organizations_lists_the_demo_organization(api: Api) -> None:
    body = api.get("/me/organizations").json()
    assert [o["id"] for o in body["data"]] == [DEMO.ORG]
    assert body["meta"]["pagination"]["total"] == 1


@pytest.mark.parametrize(
    "path",
    [
        "/api/nothing-here",
        "/api/organizations/demo-org/processes",
        "/api/organizations/demo-org/runs/x/y/z",
        "/elsewhere/me",
        "/",
    ],
    ids=["unknown-top", "unknown-collection", "too-deep", "outside-prefix", "root"],
)
def test_it_answers_404_endpoint_not_found_for_unknown_paths_even_without_auth(
    sandbox: SandboxServer, path: str
) -> None:
    response = requests.get(sandbox.base_url + path, timeout=10)
    assert response.status_code == 404
    assert response.json() == ENDPOINT_NOT_FOUND


@pytest.mark.parametrize(
    "path",
    [
        "/organizations/other-org/runs",
        "/organizations/demo-org/runs/0123456789abcdef0123456789abcdef",
        "/organizations/demo-org/runs/0123456789abcdef0123456789abcdef/tasks",
        "/organizations/demo-org/tasks/0123456789abcdef0123456789abcdef",
        "/organizations/demo-org/checklists/0123456789abcdef0123456789abcdef",
        "/organizations/demo-org/checklists/0123456789abcdef0123456789abcdef/steps",
        "/organizations/demo-org/guests/nobody@example.com",
    ],
    ids=["org", "run", "run-tasks", "task", "checklist", "checklist-steps", "guest"],
)
def test_it_answers_404_resource_not_found_for_unknown_resources(api: Api, path: str) -> None:
    response = api.get(path)
    assert response.status_code == 404
    assert response.json() == RESOURCE_NOT_FOUND


def test_an_unsupported_method_on_a_known_path_is_405(api: Api) -> None:
    response = api.session.delete(f"{api.org_url}/runs", timeout=10)
    assert response.status_code == 405
    assert response.json()["error"] is True


def test_invalid_json_is_400(api: Api) -> None:
    response = api.session.post(
        f"{api.org_url}/runs",
        data=b"{not json",
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json()["error"] is True


def test_every_response_carries_a_request_id(api: Api) -> None:
    first = api.get("/me").headers["X-Request-Id"]
    second = api.get("/me").headers["X-Request-Id"]
    assert first and second and first != second


def test_keep_alive_serves_many_requests_on_one_connection(api: Api) -> None:
    # One pooled connection: the server must frame every response exactly (Content-Length).
    for _ in range(20):
        assert api.get("/me").status_code == 200
    pool = next(iter(api.session.adapters["http://"].poolmanager.pools._container.values()))
    assert pool.num_connections == 1


# --- configuration variants -----------------------------------------------------------


@pytest.fixture
def strict() -> Iterator[SandboxServer]:
    with SandboxServer(strict=True) as server:
        yield server


def test_strict_mode_requires_the_value_apiclient(strict: SandboxServer) -> None:
    headers = {"Authorization": "Bearer sandbox-token", "Accept": "application/json"}
    assert _me(strict, {**headers, "X-Tallyfy-Client": "TallyfySDK"}).status_code == 401
    assert _me(strict, {**headers, "X-Tallyfy-Client": "APIClient"}).status_code == 200


def test_strict_mode_requires_accept_application_json(strict: SandboxServer) -> None:
    response = _me(strict, {**GOOD, "Accept": "*/*"})
    assert response.status_code == 406
    assert response.json()["error"] is True


def test_strict_mode_requires_a_process_name(strict: SandboxServer) -> None:
    api = Api(strict)
    try:
        body = review_body()
        del body["name"]
        response = api.post("runs", body)
        assert response.status_code == 422
        assert response.json()["errors"]["name"] == ["The name field is required."]
    finally:
        api.close()


def test_without_a_prefix_the_api_is_served_at_the_root() -> None:
    with SandboxServer(prefix="") as server:
        assert server.url == server.base_url
        assert _me(server, GOOD).status_code == 200
        assert (
            requests.get(f"{server.base_url}/api/me", headers=GOOD, timeout=10).status_code == 404
        )


def test_a_missing_client_header_can_be_configured_to_404() -> None:
    with SandboxServer(missing_client_status=404) as server:
        response = _me(server, {"Authorization": "Bearer sandbox-token"})
        assert response.status_code == 404
        assert response.json() == ENDPOINT_NOT_FOUND


def test_a_fixture_dict_replaces_the_demo_organization() -> None:
    fixture = demo_fixture()
    fixture["organization"]["id"] = "acme"
    fixture["tokens"] = ["acme-token", "spare"]
    with SandboxServer(fixture) as server:
        assert server.organization_id == "acme"
        assert server.token == "acme-token"
        assert server.url.endswith("/api")


def test_a_fixture_missing_its_tokens_is_refused() -> None:
    fixture = demo_fixture()
    del fixture["tokens"]
    with pytest.raises(InvalidInput, match="tokens"):
        SandboxServer(fixture)


def test_the_sandbox_command_refuses_a_bad_fixture_with_one_line_per_problem(
    tmp_path: Path,
) -> None:
    fixture = demo_fixture()
    del fixture["tokens"]
    fixture["organization"] = {"id": 7}
    path = tmp_path / "org.json"
    path.write_text(json.dumps(fixture))
    result = CliRunner().invoke(cli, ["sandbox", "--port", "0", "--fixture", str(path)])
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == [
        f"{path}: organization: must be an object with a string id",
        f"{path}: tokens: must be a non-empty list of strings",
    ]
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_stop_closes_idle_keep_alive_connections_and_is_idempotent() -> None:
    server = SandboxServer().start()
    api = Api(server)
    try:
        assert api.get("/me").status_code == 200  # leaves one idle keep-alive connection
        server.stop()
        with pytest.raises(requests.ConnectionError):
            api.get("/me")
        server.stop()
    finally:
        api.close()


def test_a_sandbox_bug_answers_500_and_keeps_serving(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(api.server.state, "me", object())  # cannot be serialized
    response = api.get("/me")
    assert response.status_code == 500
    assert response.json()["error"] is True
    assert "sandbox failed on GET" in caplog.text
    assert api.get("tags").status_code == 200  # same connection, still served


@pytest.mark.parametrize(
    ("key", "bad"),
    [
        ("users", [{"email": "x@example.com"}]),
        ("groups", [{"id": 7}]),
        ("checklists", [{"id": "c" * 32, "steps": [{"title": "no id"}]}]),
        ("guests", [{"name": "no email"}]),
    ],
    ids=["user-without-id", "group-int-id", "step-without-id", "guest-without-email"],
)
def test_a_fixture_with_malformed_entries_is_refused_naming_them(key: str, bad: object) -> None:
    fixture = demo_fixture()
    fixture[key] = bad
    with pytest.raises(InvalidInput, match=key):
        SandboxServer(fixture)
