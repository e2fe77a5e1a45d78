"""The launch and one-off task fields beyond the basics (issue 13, "the whole of the two
endpoints"): roles, folders, owner and starter, visibility, description, soft starts, and which
runs accept one-off tasks; and what a person does to a run or task: complete, archive, reopen,
delete."""

from __future__ import annotations

import pytest
from sandbox_helpers import DEMO, Api, assert_422, task_body

from tallyfy_sandbox import SandboxServer


# -- launch --------------------------------------------------------------------------------------
def test_a_launch_records_every_field_the_launch_page_lists(api: Api) -> None:
    response = api.launch(
        roles={DEMO.ROLE_REVIEWER: {"users": [1002], "guests": [], "groups": [DEMO.GROUP_OPS]}},
        folders=[DEMO.FOLDER_RUNS],
        owner_id=1002,
        user_id=1003,
        is_public=True,
        starred=True,
    )
    assert response.status_code == 201, response.text
    run = response.json()["data"]
    assert run["roles"] == {
        DEMO.ROLE_REVIEWER: {"users": [1002], "guests": [], "groups": [DEMO.GROUP_OPS]}
    }
    assert run["folders"] == [DEMO.FOLDER_RUNS]
    assert (run["owner_id"], run["started_by"]) == (1002, 1003)
    assert (run["is_public"], run["starred"]) == (True, True)


def test_without_them_the_token_user_owns_and_starts_an_unstarred_private_run(api: Api) -> None:
    run = api.launch().json()["data"]
    assert (run["owner_id"], run["started_by"]) == (1001, 1001)
    assert (run["is_public"], run["starred"], run["roles"], run["folders"]) == (
        False,
        False,
        {},
        [],
    )


@pytest.mark.parametrize(
    ("fields", "key", "message"),
    [
        pytest.param(
            {"roles": {DEMO.ROLE_REVIEWER: {"users": [9999]}}},
            f"roles.{DEMO.ROLE_REVIEWER}.users.0",
            f"The selected roles.{DEMO.ROLE_REVIEWER}.users.0 is invalid.",
            id="role-member",
        ),
        pytest.param(
            {"roles": {DEMO.ROLE_CLIENT: "client@acme.example"}},
            f"roles.{DEMO.ROLE_CLIENT}",
            f"The roles.{DEMO.ROLE_CLIENT} must be an object.",
            id="role-shape",
        ),
        pytest.param({"user_id": 4}, "user_id", "The selected user_id is invalid.", id="starter"),
        pytest.param(
            {"is_public": "yes"},
            "is_public",
            "The is_public field must be true or false.",
            id="public",
        ),
    ],
)
def test_a_launch_refuses_bad_new_fields_by_name(
    sandbox: SandboxServer, api: Api, fields: dict[str, object], key: str, message: str
) -> None:
    assert_422(api.launch(**fields), key, message)
    assert sandbox.runs() == []


# -- one-off tasks -------------------------------------------------------------------------------
def test_summary_and_description_sent_together_are_both_recorded(api: Api) -> None:
    response = api.post("tasks", task_body(summary="Chase them", description="Chase them"))
    assert response.status_code == 201
    task = response.json()["data"]
    assert (task["summary"], task["description"]) == ("Chase them", "Chase them")
    assert "X-Sandbox-Warning" not in response.headers


def test_a_task_without_description_records_none_for_it(api: Api) -> None:
    task = api.post("tasks", task_body(summary="Chase them")).json()["data"]
    assert (task["summary"], task["description"]) == ("Chase them", None)


def test_description_must_be_text(api: Api) -> None:
    assert_422(
        api.post("tasks", task_body(description=["x"])),
        "description",
        "The description must be a string.",
    )


def test_a_soft_start_is_recorded_and_a_hard_one_is_the_default(api: Api) -> None:
    later = "2026-11-30T09:00:00Z"
    soft = api.post("tasks", task_body(started_at=later, is_soft_start_date=True)).json()["data"]
    hard = api.post("tasks", task_body(started_at=later)).json()["data"]
    assert (soft["is_soft_start_date"], hard["is_soft_start_date"]) == (True, False)
    assert soft["started_at"] == "2026-11-30T09:00:00.000Z"


def test_a_soft_start_flag_must_be_a_boolean(api: Api) -> None:
    assert_422(
        api.post("tasks", task_body(is_soft_start_date="yes")),
        "is_soft_start_date",
        "The is_soft_start_date field must be true or false.",
    )


# -- which runs accept one-off tasks --------------------------------------------------------------
@pytest.mark.parametrize("status", ["complete", "archived"])
def test_a_closed_run_refuses_one_off_tasks(sandbox: SandboxServer, api: Api, status: str) -> None:
    run = api.launch().json()["data"]
    closed = api.admin("POST", "run-status", {"run_id": run["id"], "status": status})
    assert closed.status_code == 200
    assert closed.json()["data"]["status"] == status
    assert api.get(f"runs/{run['id']}").json()["data"]["status"] == status

    response = api.post("tasks", task_body(run_id=run["id"]))

    assert_422(response, "run_id", f"One-off tasks cannot be added to a {status} process.")
    assert [t for t in sandbox.tasks() if t["is_oneoff_task"]] == []


def test_a_reopened_run_accepts_them_again(sandbox: SandboxServer, api: Api) -> None:
    run = api.launch().json()["data"]
    sandbox.set_run_status(run["id"], "complete")
    assert sandbox.set_run_status(run["id"], "active")["completed_at"] is None
    assert api.post("tasks", task_body(run_id=run["id"])).status_code == 201


def test_a_template_without_can_add_oot_refuses_tasks_on_its_runs(api: Api) -> None:
    template = api.get(f"checklists/{DEMO.CLOSE}").json()["data"]
    assert template["can_add_oot"] is False
    assert api.get(f"checklists/{DEMO.REVIEW}").json()["data"]["can_add_oot"] is True
    run = api.post(
        "runs", {"checklist_id": DEMO.CLOSE, "name": "Close", "prerun": {DEMO.PERIOD: "Jan"}}
    ).json()["data"]

    assert_422(
        api.post("tasks", task_body(run_id=run["id"])),
        "run_id",
        "This template does not allow one-off tasks to be added to its processes.",
    )


def test_the_run_status_endpoint_names_what_is_wrong(api: Api) -> None:
    run = api.launch().json()["data"]
    bad_status = api.admin("POST", "run-status", {"run_id": run["id"], "status": "done"})
    assert_422(
        bad_status, "status", "must be one of active, complete, archived, deleted, not 'done'"
    )
    unknown = api.admin("POST", "run-status", {"run_id": "0" * 32, "status": "complete"})
    assert_422(unknown, "run_id", "no such run")


# -- a person completing, archiving, reopening or deleting a task or a run ----------------------
@pytest.mark.parametrize(
    ("status", "label", "stamped"),
    [("completed", "Completed", "completed_at"), ("archived", "Archived", "archived_at")],
)
def test_a_one_off_task_completed_or_archived_shows_so_in_get(
    api: Api, status: str, label: str, stamped: str
) -> None:
    task = api.post("tasks", task_body()).json()["data"]
    changed = api.admin("POST", "task-status", {"task_id": task["id"], "status": status})
    assert changed.status_code == 200, changed.text
    assert changed.json()["data"]["status"] == status

    shown = api.get(f"tasks/{task['id']}").json()["data"]

    assert (shown["status"], shown["status_label"]) == (status, label)
    assert shown[stamped] is not None and shown[stamped] == shown["last_updated"]
    other = ({"completed_at", "archived_at"} - {stamped}).pop()
    assert shown[other] is None


def test_a_reopened_task_is_not_started_again(sandbox: SandboxServer, api: Api) -> None:
    task = api.post("tasks", task_body()).json()["data"]
    sandbox.set_task_status(task["id"], "completed")
    reopened = api.admin("POST", "task-status", {"task_id": task["id"], "status": "not-started"})
    assert reopened.status_code == 200, reopened.text

    shown = api.get(f"tasks/{task['id']}").json()["data"]

    assert (shown["status"], shown["status_label"]) == ("not-started", "Not started")
    assert (shown["completed_at"], shown["archived_at"]) == (None, None)


def test_a_run_step_can_be_completed(sandbox: SandboxServer, api: Api) -> None:
    run = api.launch().json()["data"]
    step = api.get(f"runs/{run['id']}/tasks").json()["data"][0]

    assert sandbox.set_task_status(step["id"], "completed")["status"] == "completed"

    assert api.get(f"tasks/{step['id']}").json()["data"]["status"] == "completed"
    steps = api.get(f"runs/{run['id']}/tasks").json()["data"]
    assert [t["status"] for t in steps] == ["completed", "not-started", "not-started"]


def test_a_deleted_task_is_404_like_an_unknown_one_and_in_no_list(
    sandbox: SandboxServer, api: Api
) -> None:
    run = api.launch().json()["data"]
    task = api.post("tasks", task_body(run_id=run["id"])).json()["data"]
    deleted = api.admin("POST", "task-status", {"task_id": task["id"], "status": "deleted"})
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["data"]["deleted_at"] is not None

    gone, unknown = api.get(f"tasks/{task['id']}"), api.get(f"tasks/{'0' * 32}")

    assert (gone.status_code, gone.json()) == (404, unknown.json())
    assert unknown.status_code == 404
    assert task["id"] not in [t["id"] for t in api.get("tasks").json()["data"]]
    assert task["id"] not in [t["id"] for t in api.get(f"runs/{run['id']}/tasks").json()["data"]]
    assert [t["status"] for t in sandbox.tasks() if t["id"] == task["id"]] == ["deleted"]
    again = api.admin("POST", "task-status", {"task_id": task["id"], "status": "completed"})
    assert_422(again, "task_id", "no such task")


def test_a_deleted_run_is_404_like_an_unknown_one_and_so_are_its_tasks(
    sandbox: SandboxServer, api: Api
) -> None:
    run = api.launch().json()["data"]
    steps = api.get(f"runs/{run['id']}/tasks").json()["data"]
    kept = api.launch().json()["data"]

    assert sandbox.set_run_status(run["id"], "deleted")["status"] == "deleted"

    gone, unknown = api.get(f"runs/{run['id']}"), api.get(f"runs/{'0' * 32}")
    assert (gone.status_code, gone.json()) == (404, unknown.json())
    assert unknown.status_code == 404
    assert api.get(f"runs/{run['id']}/tasks").status_code == 404
    assert [r["id"] for r in api.get("runs").json()["data"]] == [kept["id"]]
    assert api.get(f"tasks/{steps[0]['id']}").status_code == 404
    listed = {t["id"] for t in api.get("tasks", params={"per_page": 100}).json()["data"]}
    assert listed.isdisjoint(t["id"] for t in steps) and len(listed) == 3
    assert_422(
        api.post("tasks", task_body(run_id=run["id"])), "run_id", "The selected run_id is invalid."
    )
    assert [r["status"] for r in sandbox.runs()] == ["deleted", "active"]
    again = api.admin("POST", "run-status", {"run_id": run["id"], "status": "active"})
    assert_422(again, "run_id", "no such run")


def test_the_task_status_endpoint_names_what_is_wrong(api: Api) -> None:
    task = api.post("tasks", task_body()).json()["data"]
    bad_status = api.admin("POST", "task-status", {"task_id": task["id"], "status": "done"})
    assert_422(
        bad_status, "status", "must be one of not-started, completed, archived, deleted, not 'done'"
    )
    assert api.get(f"tasks/{task['id']}").json()["data"]["status"] == "not-started"
    unknown = api.admin("POST", "task-status", {"task_id": "0" * 32, "status": "completed"})
    assert_422(unknown, "task_id", "no such task")
    shape = api.admin("POST", "task-status", {"id": task["id"], "status": "completed"})
    assert_422(shape, "body", 'expected {"task_id": "...", "status": "..."}')
