"""Reads: listing, search, sorting and paging; single resources (section 9 items 7 and 15)."""

from __future__ import annotations

import pytest
from sandbox_helpers import DEMO, Api, assert_422

from tallyfy_sandbox import SandboxServer

PAGINATION_KEYS = {"total", "count", "per_page", "current_page", "total_pages", "links"}


def _launch_named(api: Api, *names: str) -> list[str]:
    ids = []
    for name in names:
        response = api.launch(name=name)
        assert response.status_code == 201
        ids.append(response.json()["data"]["id"])
    return ids


def test_runs_are_listed_newest_first_with_the_six_key_pagination(api: Api) -> None:
    ids = _launch_named(api, "alpha", "beta", "gamma")
    body = api.get("runs").json()
    assert [r["id"] for r in body["data"]] == ids[::-1]
    assert set(body["meta"]["pagination"]) == PAGINATION_KEYS
    assert body["meta"]["pagination"]["links"] == []  # PHP's empty map


@pytest.mark.parametrize(
    ("sort", "reverse"),
    [("created_at", False), ("-created_at", True)],
    ids=["oldest-first", "newest-first"],
)
def test_runs_sort_by_creation_even_within_one_second(api: Api, sort: str, reverse: bool) -> None:
    ids = _launch_named(api, "one", "two", "three", "four")
    listed = [r["id"] for r in api.get("runs", params={"sort": sort}).json()["data"]]
    assert listed == (ids[::-1] if reverse else ids)


def test_an_unknown_sort_is_a_422(api: Api) -> None:
    assert_422(api.get("runs", params={"sort": "name"}), "sort", "The selected sort is invalid.")


def test_runs_search_is_a_case_insensitive_substring_of_the_name(api: Api) -> None:
    ids = _launch_named(api, "Weekly review 02 Mar 2026", "Weekly review 09 Mar 2026", "Other")
    found = api.get("runs", params={"q": "review 09 mar"}).json()["data"]
    assert [r["id"] for r in found] == [ids[1]]


def test_runs_filter_by_checklist_id_and_its_blueprint_alias(api: Api) -> None:
    review_ids = _launch_named(api, "r1")
    close = api.post("runs", {"checklist_id": DEMO.CLOSE, "prerun": {DEMO.PERIOD: "Jan"}})
    assert close.status_code == 201
    for key in ("checklist_id", "blueprint_id"):
        found = api.get("runs", params={key: DEMO.REVIEW}).json()["data"]
        assert [r["id"] for r in found] == review_ids


def test_runs_filter_by_status_and_tag(api: Api) -> None:
    tagged = api.launch(name="tagged", tags=[DEMO.TAG_SCHEDULED]).json()["data"]["id"]
    _launch_named(api, "untagged")
    assert len(api.get("runs", params={"status": "active"}).json()["data"]) == 2
    assert api.get("runs", params={"status": "complete"}).json()["data"] == []
    by_tag = api.get("runs", params={"tag": DEMO.TAG_SCHEDULED}).json()["data"]
    assert [r["id"] for r in by_tag] == [tagged]


def test_runs_page_with_absolute_links_and_correct_counts(api: Api) -> None:
    ids = _launch_named(api, *[f"run {i}" for i in range(5)])
    first = api.get("runs", params={"per_page": 2, "sort": "created_at"}).json()
    assert [r["id"] for r in first["data"]] == ids[:2]
    meta = first["meta"]["pagination"]
    assert meta == {
        "total": 5,
        "count": 2,
        "per_page": 2,
        "current_page": 1,
        "total_pages": 3,
        "links": {"next": meta["links"]["next"]},
    }
    assert meta["links"]["next"].startswith(
        api.server.base_url + "/api/organizations/demo-org/runs"
    )
    second = api.session.get(meta["links"]["next"], timeout=10).json()
    assert [r["id"] for r in second["data"]] == ids[2:4]
    assert set(second["meta"]["pagination"]["links"]) == {"previous", "next"}
    last = api.get("runs", params={"per_page": 2, "page": 3, "sort": "created_at"}).json()
    assert [r["id"] for r in last["data"]] == ids[4:]
    assert list(last["meta"]["pagination"]["links"]) == ["previous"]


def test_a_page_past_the_end_is_empty(api: Api) -> None:
    _launch_named(api, "only")
    body = api.get("runs", params={"page": 4}).json()
    assert body["data"] == []
    assert body["meta"]["pagination"]["count"] == 0
    assert body["meta"]["pagination"]["total"] == 1


def test_per_page_defaults_to_10_and_is_capped_at_100(api: Api) -> None:
    assert api.get("runs").json()["meta"]["pagination"]["per_page"] == 10
    assert api.get("runs", params={"per_page": 500}).json()["meta"]["pagination"]["per_page"] == 100


@pytest.mark.parametrize(("key", "value"), [("page", "0"), ("per_page", "x")], ids=["page", "per"])
def test_a_bad_page_parameter_is_a_422(api: Api, key: str, value: str) -> None:
    assert api.get("runs", params={key: value}).status_code == 422


def test_get_run_includes_its_tasks_only_when_asked(api: Api) -> None:
    run_id = _launch_named(api, "with tasks")[0]
    plain = api.get(f"runs/{run_id}").json()["data"]
    assert "tasks" not in plain
    full = api.get(f"runs/{run_id}", params={"with": "tasks,tags,checklist"}).json()["data"]
    assert [t["step_id"] for t in full["tasks"]["data"]] == [
        DEMO.STEP_PREPARE,
        DEMO.STEP_MEET,
        DEMO.STEP_REPORT,
    ]
    assert full["tags"] == {"data": []}
    assert full["checklist"]["data"]["id"] == DEMO.REVIEW


def test_run_tasks_lists_the_steps_of_one_run(api: Api) -> None:
    run_id = _launch_named(api, "a")[0]
    _launch_named(api, "b")
    body = api.get(f"runs/{run_id}/tasks").json()
    assert len(body["data"]) == 3
    assert {t["run_id"] for t in body["data"]} == {run_id}


def test_tasks_list_filters_one_off_tasks_and_searches_titles(api: Api) -> None:
    _launch_named(api, "process")
    for title in ("Follow up Monday 23 Nov", "Follow up Tuesday 24 Nov"):
        body = {
            "title": title,
            "task_type": "task",
            "owners": {"users": [1001]},
            "deadline": "2026-11-30 17:00:00",
        }
        assert api.post("tasks", body).status_code == 201
    assert api.get("tasks").json()["meta"]["pagination"]["total"] == 5
    oneoff = api.get("tasks", params={"is_oneoff": "true"}).json()["data"]
    assert [t["title"] for t in oneoff] == ["Follow up Monday 23 Nov", "Follow up Tuesday 24 Nov"]
    steps = api.get("tasks", params={"is_oneoff": "false"}).json()["data"]
    assert len(steps) == 3 and not any(t["is_oneoff_task"] for t in steps)
    found = api.get("tasks", params={"q": "tuesday 24", "is_oneoff": "true"}).json()["data"]
    assert [t["title"] for t in found] == ["Follow up Tuesday 24 Nov"]
    assert len(api.get("tasks", params={"status": "not-started"}).json()["data"]) == 5
    assert api.get("tasks", params={"status": "completed"}).json()["data"] == []


def test_get_task_returns_any_task(sandbox: SandboxServer, api: Api) -> None:
    _launch_named(api, "a")
    step_task = sandbox.tasks()[0]
    assert api.get(f"tasks/{step_task['id']}").json()["data"] == step_task


def test_checklists_list_published_and_draft_templates(api: Api) -> None:
    body = api.get("checklists").json()
    assert {c["id"] for c in body["data"]} == {DEMO.REVIEW, DEMO.CLOSE, DEMO.DRAFT}
    assert all("steps" not in c and "prerun" in c for c in body["data"])
    found = api.get("checklists", params={"q": "monthly"}).json()["data"]
    assert [c["id"] for c in found] == [DEMO.CLOSE]


def test_get_checklist_always_has_prerun_and_steps_only_when_asked(api: Api) -> None:
    plain = api.get(f"checklists/{DEMO.REVIEW}").json()["data"]
    assert [f["id"] for f in plain["prerun"]][:2] == [DEMO.CLIENT_NAME, DEMO.REVIEW_DUE]
    assert "steps" not in plain
    assert plain["title"] == "Weekly client review"
    with_steps = api.get(f"checklists/{DEMO.REVIEW}", params={"with": "steps"}).json()["data"]
    assert [s["id"] for s in with_steps["steps"]] == [
        DEMO.STEP_PREPARE,
        DEMO.STEP_MEET,
        DEMO.STEP_REPORT,
    ]
    steps = api.get(f"checklists/{DEMO.CLOSE}/steps").json()["data"]
    assert [s["id"] for s in steps] == [DEMO.STEP_RECONCILE]


@pytest.mark.parametrize(
    ("path", "query", "expected"),
    [
        ("users", None, [1001, 1002, 1003]),
        ("users", "amir", [1002]),
        ("users", "lee@demo", [1003]),
        ("groups", None, [DEMO.GROUP_AM, DEMO.GROUP_OPS]),
        ("groups", "operations", [DEMO.GROUP_OPS]),
        ("tags", "week", ["ff0ead9ce53dc7a2b89ddcab491c7f8e"]),
        ("guests", None, [DEMO.GUEST]),
    ],
    ids=["users", "users-q-name", "users-q-email", "groups", "groups-q", "tags-q", "guests"],
)
def test_directory_lists_search_with_q(
    api: Api, path: str, query: str | None, expected: list[object]
) -> None:
    params = {"q": query} if query else None
    data = api.get(path, params=params).json()["data"]
    key = "email" if path == "guests" else "id"
    assert [item[key] for item in data] == expected


def test_users_carry_full_name_and_default_to_a_large_page(api: Api) -> None:
    body = api.get("users").json()
    assert body["data"][1]["full_name"] == "Amir Manager"
    assert body["meta"]["pagination"]["per_page"] == 9999


def test_get_guest_by_email(api: Api) -> None:
    assert api.get(f"guests/{DEMO.GUEST}").json()["data"]["email"] == DEMO.GUEST


def test_folders_are_listed_by_folder_type(api: Api) -> None:
    runs = api.get("folders", params={"folder_type": "run"}).json()["data"]
    templates = api.get("folders").json()["data"]  # checklist folders by default
    assert [f["id"] for f in runs] == [DEMO.FOLDER_RUNS]
    assert [f["id"] for f in templates] == [DEMO.FOLDER_TEMPLATES]
