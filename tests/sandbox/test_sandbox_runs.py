"""POST /runs: launches, kick-off values and every documented 422 (section 9 items 8-12)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sandbox_helpers import DEMO, Api, assert_422, demo_fixture, review_body

from scheduler.clock import FakeClock
from tallyfy_sandbox import SandboxServer

RUN_FIELDS = {
    "id",
    "increment_id",
    "checklist_id",
    "checklist_title",
    "name",
    "summary",
    "status",
    "progress",
    "whole_progress",
    "started_by",
    "owner_id",
    "prerun",
    "prerun_status",
    "starred",
    "created_at",
    "started_at",
    "last_updated",
    "archived_at",
    "completed_at",
    "due_date",
    "due_date_passed",
    "due_soon",
    "late_tasks",
    "collaborators",
    "type",
    "is_public",
    "users",
    "groups",
    "parent_id",
    "has_open_issue",
}


@pytest.fixture
def clocked() -> Iterator[tuple[SandboxServer, Api]]:
    """A sandbox whose clock reads 2026-03-08 07:00:00 UTC, and a client for it."""
    clock = FakeClock(datetime(2026, 3, 8, 7, 0, tzinfo=UTC))
    with SandboxServer(clock=clock) as server:
        api = Api(server)
        yield server, api
        api.close()


def test_a_launch_answers_201_with_the_documented_run(clocked: tuple[SandboxServer, Api]) -> None:
    _server, api = clocked
    response = api.launch(summary="Opened by the scheduler", users=[1002], groups=[DEMO.GROUP_OPS])
    assert response.status_code == 201
    run = response.json()["data"]
    assert RUN_FIELDS <= set(run)
    assert re.fullmatch(r"[0-9a-f]{32}", run["id"])
    assert run["name"] == "Weekly client review 23 Nov 2026"
    assert run["checklist_id"] == DEMO.REVIEW
    assert run["checklist_title"] == "Weekly client review"
    assert run["summary"] == "Opened by the scheduler"
    assert run["status"] == "active"
    assert run["created_at"] == "2026-03-08T07:00:00.000Z"
    assert run["prerun"] == {DEMO.CLIENT_NAME: "Acme", DEMO.REVIEW_DUE: "2026-11-30T17:00:00Z"}
    assert run["users"] == [1002]
    assert run["groups"] == [DEMO.GROUP_OPS]
    assert run["progress"] == {"complete": 0, "total": 3, "percent": 0}


def test_run_ids_are_random_and_identical_posts_create_two_runs(
    sandbox: SandboxServer, api: Api
) -> None:
    first = api.launch().json()["data"]
    second = api.launch().json()["data"]
    assert first["id"] != second["id"]  # the API has no idempotency key (section 5.3)
    assert [r["id"] for r in sandbox.runs()] == [first["id"], second["id"]]


def test_a_launch_creates_one_task_per_step_with_step_assignees_and_deadlines(
    clocked: tuple[SandboxServer, Api],
) -> None:
    server, api = clocked
    run = api.launch().json()["data"]
    tasks = server.tasks()
    assert [t["step_id"] for t in tasks] == [DEMO.STEP_PREPARE, DEMO.STEP_MEET, DEMO.STEP_REPORT]
    assert {t["run_id"] for t in tasks} == {run["id"]}
    assert [t["owners"]["users"] for t in tasks] == [[1002], [1002], [1001]]
    assert [t["deadline"] for t in tasks] == [
        "2026-03-09T07:00:00.000Z",
        "2026-03-10T07:00:00.000Z",
        "2026-03-11T07:00:00.000Z",
    ]
    assert all(t["status"] == "not-started" and t["is_oneoff_task"] is False for t in tasks)


def test_step_overrides_replace_assignees_and_deadline_and_unknown_steps_are_ignored(
    sandbox: SandboxServer, api: Api
) -> None:
    overrides = {
        DEMO.STEP_MEET: {
            "deadline": "2026-12-01 09:30:00",
            "owners": {"users": [1003], "groups": [DEMO.GROUP_AM], "guests": [DEMO.GUEST]},
        },
        "0123456789abcdef0123456789abcdef": {"deadline": "garbage"},
    }
    assert api.launch(tasks=overrides).status_code == 201
    meet = next(t for t in sandbox.tasks() if t["step_id"] == DEMO.STEP_MEET)
    assert meet["owners"] == {"users": [1003], "guests": [DEMO.GUEST], "groups": [DEMO.GROUP_AM]}
    assert meet["deadline"] == "2026-12-01T09:30:00.000Z"


def test_without_a_name_the_run_is_named_after_the_template_and_date(
    clocked: tuple[SandboxServer, Api],
) -> None:
    _server, api = clocked
    body = review_body()
    del body["name"]
    run = api.post("runs", body).json()["data"]
    assert run["name"] == "Weekly client review - 2026-03-08"


def test_unknown_prerun_keys_are_dropped_silently(api: Api) -> None:
    prerun = {
        DEMO.CLIENT_NAME: "Acme",
        DEMO.REVIEW_DUE: "2026-11-30T17:00:00Z",
        "client_name": "by alias",
        "Priority": "by label",
        "0123456789abcdef0123456789abcdef": "unknown id",
    }
    response = api.launch(prerun=prerun)
    assert response.status_code == 201
    assert response.json()["data"]["prerun"] == {
        DEMO.CLIENT_NAME: "Acme",
        DEMO.REVIEW_DUE: "2026-11-30T17:00:00Z",
    }


def test_every_kick_off_type_accepts_its_documented_shape(api: Api) -> None:
    prerun = {
        DEMO.CLIENT_NAME: "Acme",
        DEMO.REVIEW_DUE: "2026-11-30T17:00:00.000Z",
        DEMO.PRIORITY: {"id": 3, "text": "High", "value": None},
        DEMO.CHANNEL: "Call",
        DEMO.TOPICS: [{"id": 1, "text": "Billing", "selected": True}, {"id": 3, "text": "Support"}],
        DEMO.DELIVERABLES: ["Widget", "3"],
        DEMO.NOTES: "x" * 30000,
    }
    response = api.launch(prerun=prerun)
    assert response.status_code == 201, response.text
    assert response.json()["data"]["prerun"] == prerun


def test_blank_optional_values_clear_the_field(api: Api) -> None:
    prerun = {
        DEMO.CLIENT_NAME: "Acme",
        DEMO.REVIEW_DUE: "2026-11-30T17:00:00Z",
        DEMO.PRIORITY: None,
        DEMO.CHANNEL: "",
        DEMO.TOPICS: [],
    }
    assert api.launch(prerun=prerun).status_code == 201


@pytest.mark.parametrize("prerun", [None, [], {}], ids=["null", "empty-list", "empty-object"])
def test_a_null_or_empty_prerun_means_no_values_so_required_fields_fail(
    api: Api, prerun: Any
) -> None:
    response = api.post("runs", {"checklist_id": DEMO.CLOSE, "name": "x", "prerun": prerun})
    assert response.status_code == 422  # Monthly close requires Period
    assert response.json()["errors"] == {f"prerun.{DEMO.PERIOD}": ["Period is required"]}


def test_the_list_form_of_prerun_is_dropped_so_required_fields_fail(api: Api) -> None:
    response = api.launch(prerun=[{DEMO.CLIENT_NAME: "Acme"}, {DEMO.REVIEW_DUE: "2026-11-30"}])
    assert response.status_code == 422
    assert set(response.json()["errors"]) == {
        f"prerun.{DEMO.CLIENT_NAME}",
        f"prerun.{DEMO.REVIEW_DUE}",
    }


def test_every_missing_required_field_is_named_with_its_label(api: Api) -> None:
    response = api.launch(prerun={DEMO.CLIENT_NAME: ""})
    assert response.status_code == 422
    assert response.json() == {
        "error": True,
        "message": "Client name is required",
        "errors": {
            f"prerun.{DEMO.CLIENT_NAME}": ["Client name is required"],
            f"prerun.{DEMO.REVIEW_DUE}": ["Review due is required"],
        },
    }


def _with(field_id: str, value: Any) -> dict[str, Any]:
    return {DEMO.CLIENT_NAME: "Acme", DEMO.REVIEW_DUE: "2026-11-30T17:00:00Z", field_id: value}


BAD_KICKOFF = [
    pytest.param(DEMO.PRIORITY, "High", "Invalid dropdown choice selected.", id="dropdown-string"),
    pytest.param(
        DEMO.PRIORITY,
        {"id": 3, "text": "high"},
        "Invalid dropdown choice selected.",
        id="dropdown-text-case",
    ),
    pytest.param(
        DEMO.PRIORITY,
        {"id": 2, "text": "High"},
        "Invalid dropdown choice selected.",
        id="dropdown-id-text-mismatch",
    ),
    pytest.param(
        DEMO.PRIORITY, {"id": 9, "text": "Urgent"}, "Invalid dropdown choice selected.", id="dd-9"
    ),
    pytest.param(DEMO.CHANNEL, "Fax", "The selected Channel is invalid.", id="radio-unknown"),
    pytest.param(
        DEMO.CHANNEL, {"id": 1, "text": "Email"}, "The selected Channel is invalid.", id="radio-obj"
    ),
    pytest.param(
        DEMO.TOPICS, "Billing", "Topics must be a list of option objects.", id="multiselect-str"
    ),
    pytest.param(
        DEMO.TOPICS, ["Billing"], "Topics must be a list of option objects.", id="multi-list-str"
    ),
    pytest.param(
        DEMO.DELIVERABLES,
        ["Widget"],
        "Number of columns does not match required columns",
        id="table-short",
    ),
    pytest.param(
        DEMO.DELIVERABLES,
        [],
        "Number of columns does not match required columns",
        id="table-empty-list",
    ),
    pytest.param(DEMO.DELIVERABLES, "Widget,3", "Invalid table field", id="table-string"),
    pytest.param(DEMO.DELIVERABLES, "", "Invalid table field", id="table-empty-string"),
    pytest.param(DEMO.REVIEW_DUE, "next tuesday", "Review due is not a valid date.", id="date"),
    pytest.param(
        DEMO.REVIEW_DUE, "2026-11-30T17:00:00", "Review due is not a valid date.", id="date-naive"
    ),
    pytest.param(
        DEMO.CLIENT_NAME, "x" * 201, "Client name may not be greater than 200 characters.", id="tx"
    ),
    pytest.param(DEMO.CLIENT_NAME, 42, "Client name must be a string.", id="text-number"),
    pytest.param(
        DEMO.NOTES, "x" * 30001, "Notes may not be greater than 30000 characters.", id="textarea"
    ),
]


@pytest.mark.parametrize(("field_id", "value", "message"), BAD_KICKOFF)
def test_a_bad_kick_off_value_is_a_422_naming_the_field(
    sandbox: SandboxServer, api: Api, field_id: str, value: Any, message: str
) -> None:
    response = api.launch(prerun=_with(field_id, value))
    assert_422(response, f"prerun.{field_id}", message)
    assert sandbox.runs() == []


BAD_LAUNCH = [
    pytest.param(
        {"checklist_id": None}, "checklist_id", "The checklist_id field is required.", id="c"
    ),
    pytest.param(
        {"checklist_id": 7}, "checklist_id", "The checklist_id must be a string.", id="c7"
    ),
    pytest.param(
        {"name": "n" * 551}, "name", "The name may not be greater than 550 characters.", id="name"
    ),
    pytest.param({"name": ["x"]}, "name", "The name must be a string.", id="name-type"),
    pytest.param({"prerun": "Acme"}, "prerun", "The prerun must be an object.", id="prerun"),
    pytest.param({"tasks": ["x"]}, "tasks", "The tasks must be an object.", id="tasks"),
    pytest.param({"users": [9999]}, "users.0", "The selected users.0 is invalid.", id="users"),
    pytest.param({"users": ["1002"]}, "users.0", "The selected users.0 is invalid.", id="u-str"),
    pytest.param({"users": 1002}, "users", "The users must be an array.", id="users-int"),
    pytest.param({"groups": ["nope"]}, "groups.0", "The selected groups.0 is invalid.", id="grp"),
    pytest.param(
        {"tags": [DEMO.TAG_SCHEDULED, "f" * 32]},
        "tags.1",
        "The selected tags.1 is invalid.",
        id="t",
    ),
    pytest.param({"folders": ["x"]}, "folders.0", "The selected folders.0 is invalid.", id="fold"),
    pytest.param(
        {"parent_id": "0" * 32}, "parent_id", "The selected parent_id is invalid.", id="parent"
    ),
    pytest.param({"owner_id": 5}, "owner_id", "The selected owner_id is invalid.", id="owner"),
    pytest.param(
        {"roles": {"approver": {"users": [1001]}}},
        "roles.approver",
        "The selected roles.approver is invalid.",
        id="roles",
    ),
    pytest.param(
        {"starred": "yes"}, "starred", "The starred field must be true or false.", id="starred"
    ),
    pytest.param(
        {"tasks": {DEMO.STEP_MEET: {"owners": {"users": [1]}}}},
        f"tasks.{DEMO.STEP_MEET}.owners.users.0",
        f"The selected tasks.{DEMO.STEP_MEET}.owners.users.0 is invalid.",
        id="step-owner-user",
    ),
    pytest.param(
        {"tasks": {DEMO.STEP_MEET: {"owners": {"groups": ["Operations"]}}}},
        f"tasks.{DEMO.STEP_MEET}.owners.groups.0",
        f"The selected tasks.{DEMO.STEP_MEET}.owners.groups.0 is invalid.",
        id="step-owner-group",
    ),
    pytest.param(
        {"tasks": {DEMO.STEP_MEET: {"owners": {"guests": ["not an email"]}}}},
        f"tasks.{DEMO.STEP_MEET}.owners.guests.0",
        f"The selected tasks.{DEMO.STEP_MEET}.owners.guests.0 is invalid.",
        id="step-owner-guest",
    ),
    pytest.param(
        {"tasks": {DEMO.STEP_MEET: {"owners": {"people": [1001]}}}},
        f"tasks.{DEMO.STEP_MEET}.owners.people",
        f"The tasks.{DEMO.STEP_MEET}.owners.people key is not allowed.",
        id="step-owner-bucket",
    ),
    pytest.param(
        {"tasks": {DEMO.STEP_MEET: {"deadline": "tomorrow"}}},
        f"tasks.{DEMO.STEP_MEET}.deadline",
        f"The tasks.{DEMO.STEP_MEET}.deadline is not a valid date.",
        id="step-deadline",
    ),
]


@pytest.mark.parametrize(("overrides", "key", "message"), BAD_LAUNCH)
def test_a_bad_launch_field_is_a_422_with_the_documented_body(
    sandbox: SandboxServer, api: Api, overrides: dict[str, Any], key: str, message: str
) -> None:
    assert_422(api.launch(**overrides), key, message)
    assert sandbox.runs() == [] and sandbox.tasks() == []


def test_all_field_errors_are_reported_together(api: Api) -> None:
    response = api.launch(name="n" * 600, users=[1], prerun={DEMO.CLIENT_NAME: "Acme"})
    assert response.status_code == 422
    assert set(response.json()["errors"]) == {"name", f"prerun.{DEMO.REVIEW_DUE}", "users.0"}
    assert response.json()["message"] == "The name may not be greater than 550 characters."


@pytest.mark.parametrize("body", [[], "launch", 7], ids=["list", "string", "number"])
def test_a_body_that_is_not_an_object_is_a_422(api: Api, body: Any) -> None:
    assert_422(api.post("runs", body), "body", "The request body must be a JSON object.")


@pytest.mark.parametrize(
    "checklist_id",
    ["0123456789abcdef0123456789abcdef", "ffffffffffffffffffffffffffffffff"],
    ids=["unknown", "archived"],
)
def test_launching_an_unknown_or_archived_template_is_404(checklist_id: str) -> None:
    fixture = demo_fixture()
    archived = dict(fixture["checklists"][1], id="f" * 32, status="archived")
    fixture["checklists"].append(archived)
    with SandboxServer(fixture) as server:
        api = Api(server)
        try:
            response = api.launch(checklist_id=checklist_id)
            assert response.status_code == 404
            assert response.json()["code"] == "RESOURCE_NOT_FOUND"
            assert api.get(f"checklists/{checklist_id}").status_code == 404
        finally:
            api.close()


def test_launching_a_draft_template_is_a_422(sandbox: SandboxServer, api: Api) -> None:
    response = api.launch(checklist_id=DEMO.DRAFT, prerun={})
    assert response.status_code == 422
    assert "checklist_id" in response.json()["errors"]
    assert sandbox.runs() == []


def test_a_valid_parent_id_links_a_sub_process(api: Api) -> None:
    parent = api.launch().json()["data"]
    child = api.launch(parent_id=parent["id"], tags=[DEMO.TAG_SCHEDULED])
    assert child.status_code == 201
    assert child.json()["data"]["parent_id"] == parent["id"]


def test_strict_file_values_need_a_source() -> None:
    fixture = demo_fixture()
    upload = {"id": "a" * 32, "label": "Brief", "field_type": "file", "required": True}
    fixture["checklists"][1]["prerun"].append(upload)
    body = {
        "checklist_id": DEMO.CLOSE,
        "name": "Close",
        "prerun": {DEMO.PERIOD: "Jan", "a" * 32: [{"filename": "b.pdf", "url": "https://x/b.pdf"}]},
    }
    for strict, status in ((False, 201), (True, 422)):
        with SandboxServer(fixture, strict=strict) as server:
            api = Api(server)
            try:
                assert api.post("runs", body).status_code == status
            finally:
                api.close()
