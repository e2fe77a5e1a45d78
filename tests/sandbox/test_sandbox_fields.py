"""The launch and one-off task fields beyond the basics (issue 13, "the whole of the two
endpoints"): roles, folders, owner and starter, visibility, description, soft starts, and which
runs accept one-off tasks."""

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
    assert_422(bad_status, "status", "must be one of active, complete, archived")
    unknown = api.admin("POST", "run-status", {"run_id": "0" * 32, "status": "complete"})
    assert_422(unknown, "run_id", "no such run")
