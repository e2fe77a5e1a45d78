"""POST /tasks: one-off tasks, their 422s, request dates (section 9 items 6, 13, 14)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sandbox_helpers import DEMO, Api, assert_422, task_body

from scheduler.clock import FakeClock
from tallyfy_sandbox import SandboxServer


@pytest.fixture
def clocked() -> Iterator[tuple[SandboxServer, Api]]:
    clock = FakeClock(datetime(2026, 3, 8, 7, 0, tzinfo=UTC))
    with SandboxServer(clock=clock) as server:
        api = Api(server)
        yield server, api
        api.close()


def test_a_task_answers_201_with_the_documented_one_off_task(
    clocked: tuple[SandboxServer, Api],
) -> None:
    server, api = clocked
    response = api.post("tasks", task_body(summary="Chase the owners", tags=[DEMO.TAG_SCHEDULED]))
    assert response.status_code == 201
    task = response.json()["data"]
    assert re.fullmatch(r"[0-9a-f]{32}", task["id"])
    assert task["title"] == "Follow up on approvals"
    assert task["task_type"] == "task"
    assert task["is_oneoff_task"] is True
    assert task["run_id"] is None and task["step_id"] is None
    assert task["status"] == "not-started"
    assert task["owners"] == {"users": [1001], "guests": [], "groups": []}
    assert task["deadline"] == "2026-11-24T17:00:00.000Z"
    assert task["started_at"] == "2026-03-08T07:00:00.000Z"  # defaults to now
    assert task["created_at"] == "2026-03-08T07:00:00.000Z"
    assert task["summary"] == "Chase the owners"
    assert server.tasks() == [task]
    assert server.runs() == []


def test_a_task_can_attach_to_an_existing_run(sandbox: SandboxServer, api: Api) -> None:
    run = api.launch().json()["data"]
    task = api.post("tasks", task_body(run_id=run["id"])).json()["data"]
    assert task["run_id"] == run["id"]
    run_tasks = api.get(f"runs/{run['id']}/tasks").json()["data"]
    assert task["id"] in [t["id"] for t in run_tasks]


def test_description_is_accepted_as_an_alias_of_summary_and_flagged(api: Api) -> None:
    response = api.post("tasks", task_body(description="old key"))
    assert response.status_code == 201
    assert response.json()["data"]["summary"] == "old key"
    assert "X-Sandbox-Warning" in response.headers


def test_each_missing_required_key_is_named(sandbox: SandboxServer, api: Api) -> None:
    response = api.post("tasks", {})
    assert response.status_code == 422
    assert response.json()["errors"] == {
        "title": ["The title field is required."],
        "task_type": ["The task_type field is required."],
        "owners": ["The owners field is required."],
        "deadline": ["The deadline field is required."],
    }
    assert response.json()["message"] == "The title field is required."
    assert sandbox.tasks() == []


BAD_TASKS = [
    pytest.param(
        {"title": "t" * 601}, "title", "The title may not be greater than 600 characters.", id="t"
    ),
    pytest.param({"task_type": "chore"}, "task_type", "The selected task_type is invalid.", id="k"),
    pytest.param({"owners": [1001]}, "owners", "The owners must be an object.", id="owners-list"),
    pytest.param(
        {"owners": {"users": [4242]}},
        "owners.users.0",
        "The selected owners.users.0 is invalid.",
        id="owner-user",
    ),
    pytest.param(
        {"owners": {"groups": ["x"]}},
        "owners.groups.0",
        "The selected owners.groups.0 is invalid.",
        id="owner-group",
    ),
    pytest.param(
        {"owners": {"guests": ["bob"]}},
        "owners.guests.0",
        "The selected owners.guests.0 is invalid.",
        id="owner-guest",
    ),
    pytest.param({"deadline": "soon"}, "deadline", "The deadline is not a valid date.", id="dl"),
    pytest.param(
        {"started_at": "2026-13-01 00:00:00"},
        "started_at",
        "The started_at is not a valid date.",
        id="started-month-13",
    ),
    pytest.param(
        {"run_id": "0" * 32}, "run_id", "The selected run_id is invalid.", id="run-unknown"
    ),
    pytest.param({"tags": ["nope"]}, "tags.0", "The selected tags.0 is invalid.", id="tag"),
    pytest.param(
        {"form_fields": [{"label": "Result", "field_type": "text"}]},
        "form_fields.0.required",
        "The form_fields.0.required field is required.",
        id="form-field-required",
    ),
    pytest.param(
        {"form_fields": [{"required": True}]},
        "form_fields.0.label",
        "The form_fields.0.label field is required.",
        id="form-field-label",
    ),
    pytest.param(
        {"form_fields": {"label": "x"}}, "form_fields", "The form_fields must be an array.", id="ff"
    ),
    pytest.param(
        {"max_assignable": -1},
        "max_assignable",
        "The max_assignable must be an integer of at least 0.",
        id="max-assignable",
    ),
]


@pytest.mark.parametrize(("overrides", "key", "message"), BAD_TASKS)
def test_a_bad_task_field_is_a_422_with_the_documented_body(
    sandbox: SandboxServer, api: Api, overrides: dict[str, Any], key: str, message: str
) -> None:
    assert_422(api.post("tasks", task_body(**overrides)), key, message)
    assert sandbox.tasks() == []


def test_form_fields_need_label_type_and_required_but_not_options(api: Api) -> None:
    field = {"label": "Outcome", "field_type": "dropdown", "required": False}
    response = api.post("tasks", task_body(form_fields=[field]))
    assert response.status_code == 201
    assert response.json()["data"]["form_fields"] == [field]


def test_no_assignee_is_accepted_normally_but_refused_in_strict_mode() -> None:
    body = task_body(owners={"users": [], "guests": [], "groups": []})
    for strict, status in ((False, 201), (True, 422)):
        with SandboxServer(strict=strict) as server:
            api = Api(server)
            try:
                assert api.post("tasks", body).status_code == status
            finally:
                api.close()


# Request dates (section 9 item 6 and the brief): three forms accepted, anything else a 422.
DATES = [
    ("2026-03-08T07:00:00Z", "2026-03-08T07:00:00.000Z"),
    ("2026-03-08T07:00:00.250Z", "2026-03-08T07:00:00.000Z"),
    ("2026-03-08 07:00:00", "2026-03-08T07:00:00.000Z"),
    ("2026-03-08T02:00:00-05:00", "2026-03-08T07:00:00.000Z"),
    ("2026-03-08T08:00:00+01:00", "2026-03-08T07:00:00.000Z"),
    ("2026-03-08T07:00:00.1234567Z", "2026-03-08T07:00:00.000Z"),
]


@pytest.mark.parametrize(
    ("sent", "stored"),
    DATES,
    ids=["zulu", "zulu-fraction", "spaced-utc", "minus-5", "plus-1", "seven-digit-fraction"],
)
def test_accepted_deadline_forms_are_stored_in_utc(api: Api, sent: str, stored: str) -> None:
    response = api.post("tasks", task_body(deadline=sent))
    assert response.status_code == 201, response.text
    assert response.json()["data"]["deadline"] == stored


@pytest.mark.parametrize(
    "sent",
    [
        "2026-03-08T07:00:00",
        "2026-03-08",
        "08/03/2026 07:00",
        "2026-03-08T07:00Z",
        "2026-02-30 07:00:00",
        1772953200,
        "0001-01-01T00:00:00+01:00",  # was a 500: the shared parser raised OverflowError
        "\u0662\u0660\u0662\u0666-03-08 07:00:00",  # was a 201: `\d` read Arabic-Indic digits
        "\xa02026-03-08 07:00:00",  # a no-break space: only ASCII whitespace is trimmed
        "2026-03-08T07:00:00+00:60",
    ],
    ids=[
        "naive-iso",
        "date-only",
        "european",
        "no-seconds",
        "feb-30",
        "epoch-number",
        "before-year-1",
        "arabic-indic-digits",
        "no-break-space",
        "offset-minute-60",
    ],
)
def test_other_deadline_forms_are_a_422(api: Api, sent: Any) -> None:
    assert_422(
        api.post("tasks", task_body(deadline=sent)), "deadline", "The deadline is not a valid date."
    )


def test_separate_task_for_each_assignee_fans_out_and_returns_the_first(
    sandbox: SandboxServer, api: Api
) -> None:
    owners = {"users": [1001], "groups": [DEMO.GROUP_OPS], "guests": [DEMO.GUEST]}
    response = api.post("tasks", task_body(owners=owners, separate_task_for_each_assignee=True))
    assert response.status_code == 201
    first = response.json()["data"]
    container = sandbox.runs()
    assert len(container) == 1
    assert first["run_id"] == container[0]["id"]
    assert first["run"]["id"] == container[0]["id"]
    # 1001 directly, 1003 through Operations (1001 again is not repeated), then the guest.
    assert [t["owners"] for t in sandbox.tasks()] == [
        {"users": [1001], "guests": [], "groups": []},
        {"users": [1003], "guests": [], "groups": []},
        {"users": [], "guests": [DEMO.GUEST], "groups": []},
    ]
    assert all(t["is_oneoff_task"] for t in sandbox.tasks())
