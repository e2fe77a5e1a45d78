"""The client's request hooks: every exchange, answered or not, reaches them once it ends."""

from __future__ import annotations

import pytest

from scheduler.client import ApiRequest, TallyfyClient
from scheduler.config import Secret
from scheduler.errors import NotSent, PermanentApiError
from tallyfy_sandbox import SandboxServer

Seen = list[tuple[str, int | None, float]]


def hooked(client: TallyfyClient) -> Seen:
    seen: Seen = []
    client.add_request_hook(
        lambda endpoint, status, seconds: seen.append((endpoint, status, seconds))
    )
    return seen


def test_answered_exchanges_reach_the_hook_with_their_status_successes_and_refusals_alike(
    sandbox: SandboxServer,
) -> None:
    with TallyfyClient(sandbox.url, sandbox.organization_id, Secret(sandbox.token)) as client:
        seen = hooked(client)
        client.me()
        no_deadline = {"title": "t", "task_type": "task", "owners": {"users": [1001]}}
        tasks = f"/organizations/{sandbox.organization_id}/tasks"
        with pytest.raises(PermanentApiError):
            client.send(ApiRequest("POST", tasks, no_deadline))
        with pytest.raises(PermanentApiError):
            client.get_checklist("0" * 32)
    assert [(endpoint, status) for endpoint, status, _s in seen] == [
        ("GET /me", 200),
        ("POST /tasks", 422),
        ("GET /checklists/{id}", 404),
    ]
    assert all(0 <= seconds < 10 for _e, _s, seconds in seen)


def test_an_exchange_without_an_answer_reaches_the_hook_without_a_status() -> None:
    # Nothing listens on port 1: the connection is refused, nothing is sent.
    with TallyfyClient("http://127.0.0.1:1/api", "org", Secret("token")) as client:
        seen = hooked(client)
        with pytest.raises(NotSent):
            client.send(ApiRequest("POST", "/organizations/org/runs", {}))
    assert [(endpoint, status) for endpoint, status, _s in seen] == [("POST /runs", None)]
