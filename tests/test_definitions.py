"""Job files -> validated Jobs: every key and type of jobs.md, every error of every file."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from scheduler.config import CatchUpPolicy, SchedulerSettings, Settings, StoreSettings
from scheduler.definitions import (
    check_run_from_job,
    job_from_document,
    key_lines,
    load_job_files,
    validate_documents,
)
from scheduler.errors import DefinitionError, Problem
from scheduler.job import At, CreateTask, Job, LaunchProcess, Passthrough, TaskType, schedule_key

EXAMPLES = Path(__file__).resolve().parent.parent / "jobs"
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday
CHECKLIST = "beeffbdddf558869a18556731b2da7c2"
STEP = "2f09054af7c94eda191606832f6775b8"
FIELD = "16e27d901362e3abffae5c18ea1a8d12"
TAG = "f70ac12a815df7fa31f7cc57986f21c7"
GROUP = "8988c7c9a90225dbd141eab9d2422326"
RUN = "0123456789abcdef0123456789abcdef"

LAUNCH = {
    "type": '"launch_process"',
    "checklist_id": f'"{CHECKLIST}"',
    "name": '"Weekly review {fire:%d %b %Y}"',
}
TASK = {
    "type": '"create_task"',
    "title": '"Follow up ({fire:%a %d %b})"',
    "owners": "{ users = [1001] }",
    "deadline": '"+0@17:00"',
}


@pytest.fixture
def settings() -> Settings:
    return Settings(store=StoreSettings(url="sqlite://"))


def job_toml(
    top: dict[str, str | None] | None = None,
    action: dict[str, str | None] | None = None,
    *,
    kind: str = "launch",
    tail: str = "",
) -> str:
    """A job file: base keys, with raw TOML values replaced (None removes a key)."""
    top_keys: dict[str, str | None] = {"schedule": '"0 9 * * MON"', "timezone": '"Europe/London"'}
    top_keys.update(top or {})
    action_keys: dict[str, str | None] = dict(LAUNCH if kind == "launch" else TASK)
    action_keys.update(action or {})
    lines = [f"{k} = {v}" for k, v in top_keys.items() if v is not None]
    lines.append("[action]")
    lines += [f"{k} = {v}" for k, v in action_keys.items() if v is not None]
    return "\n".join(lines) + "\n" + tail


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(paths: list[Path], settings: Settings) -> list[Problem]:
    with pytest.raises(DefinitionError) as caught:
        load_job_files(paths, settings, NOW)
    return caught.value.problems


# -- the example jobs ---------------------------------------------------------------------------


def test_the_example_jobs_are_valid_and_match_the_demo_organization(settings: Settings) -> None:
    jobs = {job.id: job for job in load_job_files([EXAMPLES], settings, NOW)}
    assert sorted(jobs) == ["daily-approvals-follow-up", "weekly-client-review"]
    demo = json.loads((EXAMPLES.parent / "tallyfy_sandbox/demo_org.json").read_text())
    weekly = jobs["weekly-client-review"].action
    assert isinstance(weekly, LaunchProcess)
    (template,) = [c for c in demo["checklists"] if c["id"] == weekly.checklist_id]
    assert set(weekly.prerun) <= {f["id"] for f in template["prerun"]}
    assert set(weekly.tasks) <= {s["id"] for s in template["steps"]}
    assert set(weekly.tags) <= {t["id"] for t in demo["tags"]}
    assert set(weekly.users) <= {u["id"] for u in demo["users"]}
    daily = jobs["daily-approvals-follow-up"].action
    assert isinstance(daily, CreateTask)
    assert set(daily.owners.users) <= {u["id"] for u in demo["users"]}
    assert daily.run_from_job == "weekly-client-review"


def test_the_example_jobs_read_as_documented(settings: Settings) -> None:
    (weekly,) = load_job_files([EXAMPLES / "weekly-client-review.toml"], settings, NOW)
    assert (weekly.schedule, weekly.timezone) == ("0 9 * * MON", "Europe/London")
    assert isinstance(weekly.action, LaunchProcess)
    prerun = weekly.action.prerun
    assert isinstance(prerun[FIELD], type(weekly.action.name))  # a template
    assert isinstance(prerun["2024ec22c6346de494cc419191bb01aa"], At)
    dropdown = prerun["15b4e12ebb73d350509df79e2acd216c"]
    assert isinstance(dropdown, Passthrough) and dropdown.value == {"id": 2, "text": "Normal"}
    assert weekly.action.tasks[STEP].deadline is not None
    assert weekly.action.tasks[STEP].deadline.text == "+1bd@12:00"
    assert weekly.source == str(EXAMPLES / "weekly-client-review.toml")


# -- defaults -----------------------------------------------------------------------------------


def test_it_takes_the_id_from_the_file_stem_and_defaults_from_the_settings(
    tmp_path: Path,
) -> None:
    settings = Settings(
        store=StoreSettings(url="sqlite://"),
        scheduler=SchedulerSettings(
            timezone="America/Chicago",
            catch_up=CatchUpPolicy.ALL,
            catch_up_window=timedelta(hours=6),
        ),
    )
    path = write(tmp_path, "my-job.toml", job_toml({"timezone": None}))
    (job,) = load_job_files([path], settings, NOW)
    assert job.id == "my-job"
    assert job.timezone == "America/Chicago"
    assert job.catch_up is CatchUpPolicy.ALL
    assert job.catch_up_window == timedelta(hours=6)
    assert (job.enabled, job.jitter, job.description) == (True, timedelta(0), "")
    assert (job.start_at, job.end_at, job.max_fires) == (None, None, None)


def test_it_reads_every_optional_key(tmp_path: Path, settings: Settings) -> None:
    text = job_toml(
        {
            "id": '"series.2026_q1"',
            "description": '"six weeks"',
            "enabled": "false",
            "catch_up": '"none"',
            "catch_up_window": '"1h30m"',
            "jitter": '"90s"',
            "start_at": "2026-03-02T00:00:00-05:00",  # a TOML offset datetime
            "end_at": '"2026-04-13T23:59:59-04:00"',  # or a string
            "max_fires": "6",
        },
        {
            "summary": '"week {iso_week}, fire {seq}"',
            "tags": f'["{TAG}"]',
            "users": "[1001, 1002]",
            "groups": f'["{GROUP}"]',
        },
        tail=f'[action.tasks."{STEP}"]\ndeadline = "+1bd@12:00"\n'
        f'owners = {{ guests = ["client@acme.example"] }}\n',
    )
    (job,) = load_job_files([write(tmp_path, "x.toml", text)], settings, NOW)
    assert job.id == "series.2026_q1"
    assert (job.enabled, job.catch_up, job.max_fires) == (False, CatchUpPolicy.NONE, 6)
    assert (job.catch_up_window, job.jitter) == (timedelta(minutes=90), timedelta(seconds=90))
    assert job.start_at == datetime(2026, 3, 2, 5, 0, tzinfo=UTC)
    assert job.end_at == datetime(2026, 4, 14, 3, 59, 59, tzinfo=UTC)
    assert isinstance(job.action, LaunchProcess)
    assert (job.action.users, job.action.groups, job.action.tags) == (
        (1001, 1002),
        (GROUP,),
        (TAG,),
    )
    owners = job.action.tasks[STEP].owners
    assert owners is not None and owners.guests == ("client@acme.example",)


def test_a_create_task_defaults_to_a_plain_task_starting_at_the_fire(
    tmp_path: Path, settings: Settings
) -> None:
    (job,) = load_job_files([write(tmp_path, "t.toml", job_toml(kind="task"))], settings, NOW)
    assert isinstance(job.action, CreateTask)
    assert job.action.task_type is TaskType.TASK
    assert job.action.started_at.text == "+0"
    assert dict(job.action.extra) == {}


def test_it_passes_the_extra_create_task_keys_through(tmp_path: Path, settings: Settings) -> None:
    text = job_toml(
        action={
            "task_type": '"approval"',
            "tags": f'["{TAG}"]',
            "webhook": '"https://hooks.example.com/done"',
            "max_assignable": "0",
            "top_secret": "true",
            "everyone_must_complete": "false",
            "form_fields": '[{ label = "Amount", field_type = "text", required = true }]',
            "run_id": f'"{RUN}"',
        },
        kind="task",
    )
    (job,) = load_job_files([write(tmp_path, "t.toml", text)], settings, NOW)
    assert isinstance(job.action, CreateTask)
    assert job.action.task_type is TaskType.APPROVAL
    assert job.action.run_id == RUN
    assert {k: v.value for k, v in job.action.extra.items()} == {
        "tags": [TAG],
        "webhook": "https://hooks.example.com/done",
        "max_assignable": 0,
        "top_secret": True,
        "everyone_must_complete": False,
        "form_fields": [{"label": "Amount", "field_type": "text", "required": True}],
    }


# -- every kind of bad input ---------------------------------------------------------------------

# (toml text, the dotted key at fault, a fragment of the message)
BAD_INPUT = [
    pytest.param(
        job_toml({"schedul": '"0 9 * * *"'}),
        "schedul",
        "did you mean 'schedule'",
        id="unknown-top-key",
    ),
    pytest.param(
        job_toml(tail=f'[action.tasks."{STEP}"]\ndeadine = "+1bd"\n'),
        f"action.tasks.{STEP}.deadine",
        "did you mean 'deadline'",
        id="unknown-step-key",
    ),
    pytest.param(
        job_toml(action={"nmae": '"x"'}),
        "action.nmae",
        "did you mean 'name'",
        id="unknown-action-key",
    ),
    pytest.param(job_toml({"schedule": None}), "schedule", "required", id="missing-schedule"),
    pytest.param(
        job_toml({"schedule": "5"}), "schedule", "must be a string", id="schedule-not-a-string"
    ),
    pytest.param(job_toml({"schedule": '"61 9 * * *"'}), "schedule", "61", id="cron-out-of-range"),
    pytest.param(
        job_toml({"schedule": '"0 0 30 2 *"'}), "schedule", "never", id="cron-never-fires"
    ),
    pytest.param(
        job_toml({"timezone": '"Mars/Olympus"'}), "timezone", "unknown time zone", id="bad-zone"
    ),
    pytest.param(
        job_toml({"enabled": '"yes"'}), "enabled", "true or false", id="enabled-not-a-bool"
    ),
    pytest.param(
        job_toml({"catch_up": '"sometimes"'}), "catch_up", "all, latest, none", id="bad-catch-up"
    ),
    pytest.param(
        job_toml({"catch_up_window": '"2 days"'}),
        "catch_up_window",
        "not a duration",
        id="bad-duration",
    ),
    pytest.param(
        job_toml({"jitter": "90"}), "jitter", "must be a string", id="duration-not-a-string"
    ),
    pytest.param(job_toml({"max_fires": "true"}), "max_fires", "whole number", id="max-fires-bool"),
    pytest.param(job_toml({"max_fires": "0"}), "max_fires", "greater than 0", id="max-fires-zero"),
    pytest.param(
        job_toml({"start_at": '"2026-03-02T09:00:00"'}),
        "start_at",
        "offset",
        id="start-without-offset",
    ),
    pytest.param(
        job_toml({"start_at": "2026-03-02T09:00:00"}),
        "start_at",
        "offset",
        id="toml-local-datetime",
    ),
    pytest.param(
        job_toml({"start_at": '"2026-03-09T00:00:00Z"', "end_at": '"2026-03-02T00:00:00Z"'}),
        "end_at",
        "later than start_at",
        id="end-before-start",
    ),
    pytest.param(
        job_toml({"start_at": '"2026-03-03T00:00:00Z"', "end_at": '"2026-03-08T00:00:00Z"'}),
        "end_at",
        "never fires between",
        id="window-without-a-fire",
    ),
    pytest.param(job_toml({"id": '"Bad_ID"'}), "id", "[a-z0-9]", id="bad-id"),
    pytest.param('schedule = "0 9 * * MON"\n', "action", "required", id="missing-action"),
    pytest.param(
        job_toml(action={"type": '"launch"'}),
        "action.type",
        "did you mean 'launch_process'",
        id="bad-action-type",
    ),
    pytest.param(
        job_toml(action={"checklist_id": '"ABC123"'}),
        "action.checklist_id",
        "32-character",
        id="bad-checklist-id",
    ),
    pytest.param(
        job_toml(action={"name": None}), "action.name", "required", id="launch-without-name"
    ),
    pytest.param(
        job_toml(action={"name": '"Review {fire.year}"'}),
        "action.name",
        "attribute",
        id="template-attribute",
    ),
    pytest.param(
        job_toml(action={"name": '"Review {nmae}"'}),
        "action.name",
        "unknown name",
        id="template-unknown-name",
    ),
    pytest.param(
        job_toml(action={"name": '"Review {deadline}"'}),
        "action.name",
        "deadline",
        id="deadline-in-a-launch",
    ),
    pytest.param(
        job_toml(action={"name": '"Review {fire:%Q}"'}), "action.name", "%Q", id="bad-strftime"
    ),
    pytest.param(
        job_toml(action={"name": '"' + "x" * 540 + ' {fire:%A %d %B %Y}"'}),
        "action.name",
        "at most 550",
        id="name-too-long-once-rendered",
    ),
    pytest.param(
        job_toml(action={"users": '["1002"]'}), "action.users", "user id", id="user-id-string"
    ),
    pytest.param(
        job_toml(action={"users": "[true]"}), "action.users", "user id", id="user-id-bool"
    ),
    pytest.param(
        job_toml(action={"groups": '["ops"]'}), "action.groups", "32-character", id="bad-group-id"
    ),
    pytest.param(
        job_toml(action={"tags": f'"{TAG}"'}), "action.tags", "must be a list", id="tags-not-a-list"
    ),
    pytest.param(
        job_toml(tail='[action.prerun]\nclient_name = "Acme"\n'),
        "action.prerun.client_name",
        "hex id",
        id="prerun-keyed-by-alias",
    ),
    pytest.param(
        job_toml(tail=f'[action.prerun]\n"{FIELD}" = {{ at = "+2xd" }}\n'),
        f"action.prerun.{FIELD}.at",
        "+2xd",
        id="prerun-bad-time-expression",
    ),
    pytest.param(
        job_toml(tail=f'[action.prerun]\n"{FIELD}" = 2026-03-02\n'),
        f"action.prerun.{FIELD}",
        "not JSON",
        id="prerun-toml-date",
    ),
    pytest.param(
        job_toml(tail=f'[action.prerun]\n"{FIELD}" = "{{job!r}}"\n'),
        f"action.prerun.{FIELD}",
        "conversion",
        id="prerun-bad-template",
    ),
    pytest.param(
        job_toml(tail='[action.tasks.prepare]\ndeadline = "+1bd"\n'),
        "action.tasks.prepare",
        "hex id",
        id="step-keyed-by-alias",
    ),
    pytest.param(
        job_toml(tail=f'[action.tasks."{STEP}"]\nowners = {{ users = [] }}\n'),
        f"action.tasks.{STEP}.owners",
        "at least one",
        id="step-owners-empty",
    ),
    pytest.param(
        job_toml(action={"deadline": None}, kind="task"),
        "action.deadline",
        "required",
        id="task-without-deadline",
    ),
    pytest.param(
        job_toml(action={"deadline": '"tomorrow"'}, kind="task"),
        "action.deadline",
        "tomorrow",
        id="bad-time-expression",
    ),
    pytest.param(
        job_toml(action={"started_at": '"+1x"'}, kind="task"),
        "action.started_at",
        "+1x",
        id="bad-started-at",
    ),
    pytest.param(
        job_toml(action={"title": None}, kind="task"),
        "action.title",
        "required",
        id="task-without-title",
    ),
    pytest.param(
        job_toml(action={"owners": None}, kind="task"),
        "action.owners",
        "required",
        id="task-without-owners",
    ),
    pytest.param(
        job_toml(action={"owners": "{}"}, kind="task"),
        "action.owners",
        "at least one",
        id="task-owners-empty",
    ),
    pytest.param(
        job_toml(action={"owners": '{ guests = ["not-an-email"] }'}, kind="task"),
        "action.owners.guests",
        "email",
        id="bad-guest-email",
    ),
    pytest.param(
        job_toml(action={"owners": "{ user = [1001] }"}, kind="task"),
        "action.owners.user",
        "did you mean 'users'",
        id="owners-unknown-key",
    ),
    pytest.param(
        job_toml(action={"task_type": '"todo"'}, kind="task"),
        "action.task_type",
        "approval",
        id="bad-task-type",
    ),
    pytest.param(
        job_toml(action={"webhook": '"http://hooks.example.com"'}, kind="task"),
        "action.webhook",
        "https://",
        id="webhook-not-https",
    ),
    pytest.param(
        job_toml(action={"form_fields": '[{ field_type = "text", required = true }]'}, kind="task"),
        "action.form_fields.0.label",
        "required",
        id="form-field-without-label",
    ),
    pytest.param(
        job_toml(action={"run_from_job": '"Weekly Review"'}, kind="task"),
        "action.run_from_job",
        "job id",
        id="run-from-job-bad-id",
    ),
    pytest.param(
        job_toml(action={"run_from_job": '"weekly"', "run_id": f'"{RUN}"'}, kind="task"),
        "action.run_id",
        "not both",
        id="run-id-and-run-from-job",
    ),
    pytest.param(
        job_toml(action={"run_id": '"42"'}, kind="task"),
        "action.run_id",
        "32-character",
        id="bad-run-id",
    ),
    pytest.param(
        job_toml(action={"title": '"' + "y" * 600 + '{seq}"'}, kind="task"),
        "action.title",
        "at most 600",
        id="title-too-long-once-rendered",
    ),
]


@pytest.mark.parametrize(("text", "key", "fragment"), BAD_INPUT)
def test_it_names_the_file_key_and_value_of_each_bad_input(
    tmp_path: Path, settings: Settings, text: str, key: str, fragment: str
) -> None:
    path = write(tmp_path, "job.toml", text)
    problems = problems_of([path], settings)
    at_key = [p for p in problems if p.key == key]
    assert at_key, f"no problem at {key!r}: {[str(p) for p in problems]}"
    assert any(fragment in str(p) for p in at_key), [str(p) for p in at_key]
    assert all(p.file == str(path) for p in problems)


def test_a_toml_syntax_error_gives_its_line(tmp_path: Path, settings: Settings) -> None:
    path = write(tmp_path, "job.toml", 'schedule = "0 9 * * *"\n\nname = \n[action]\n')
    (found,) = problems_of([path], settings)
    assert (found.file, found.line) == (str(path), 3)
    assert "invalid TOML" in found.message and "line" not in found.message
    assert str(found).startswith(f"{path}:3: invalid TOML")


def test_a_bad_key_gives_its_line_and_a_suggestion(tmp_path: Path, settings: Settings) -> None:
    text = job_toml(tail=f'\n[action.tasks."{STEP}"]\n# a comment\ndeadine = "+1bd@12:00"\n')
    path = write(tmp_path, "job.toml", text)
    (found,) = problems_of([path], settings)
    expected_line = text.splitlines().index('deadine = "+1bd@12:00"') + 1
    assert found.line == expected_line
    assert str(found) == (
        f"{path}:{expected_line}: action.tasks.{STEP}.deadine = '+1bd@12:00': "
        "unknown key: did you mean 'deadline'?"
    )


def test_it_collects_every_error_of_every_file(tmp_path: Path, settings: Settings) -> None:
    first = write(tmp_path, "a.toml", job_toml({"timezone": '"Nowhere/Land"', "jitter": '"x"'}))
    second = write(tmp_path, "b.toml", job_toml(action={"deadline": '"+1q"'}, kind="task"))
    good = write(tmp_path, "c.toml", job_toml())
    problems = problems_of([tmp_path], settings)
    assert {(p.file, p.key) for p in problems} == {
        (str(first), "timezone"),
        (str(first), "jitter"),
        (str(second), "action.deadline"),
    }
    assert str(good) not in {p.file for p in problems}


def test_duplicate_ids_name_both_files(tmp_path: Path, settings: Settings) -> None:
    first = write(tmp_path, "a.toml", job_toml({"id": '"same"'}))
    second = write(tmp_path, "b.toml", job_toml({"id": '"same"'}))
    (found,) = problems_of([tmp_path], settings)
    assert (found.file, found.key, found.value) == (str(second), "id", "same")
    assert str(first) in found.message


def test_a_file_name_that_is_not_an_id_needs_an_explicit_id(
    tmp_path: Path, settings: Settings
) -> None:
    bad = write(tmp_path, "My Job.toml", job_toml())
    (found,) = problems_of([bad], settings)
    assert found.file == str(bad) and "set `id`" in found.message
    bad.write_text(job_toml({"id": '"my-job"'}))
    assert [job.id for job in load_job_files([bad], settings, NOW)] == ["my-job"]


@pytest.mark.parametrize(
    ("name", "fragment"),
    [("missing", "no such file"), ("empty", "no job files")],
    ids=["missing-path", "folder-without-toml"],
)
def test_paths_that_hold_no_jobs_are_errors(
    tmp_path: Path, settings: Settings, name: str, fragment: str
) -> None:
    (tmp_path / "empty").mkdir()
    (found,) = problems_of([tmp_path / name], settings)
    assert found.file == str(tmp_path / name) and fragment in found.message


def test_a_folder_means_its_toml_files_in_name_order(tmp_path: Path, settings: Settings) -> None:
    write(tmp_path, "b.toml", job_toml())
    write(tmp_path, "a.toml", job_toml())
    write(tmp_path, "notes.txt", "not a job")
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub", "c.toml", job_toml())
    jobs = load_job_files([tmp_path, tmp_path / "a.toml"], settings, NOW)
    assert [job.id for job in jobs] == ["a", "b"]


# -- documents: the store path -------------------------------------------------------------------


def test_a_job_survives_the_round_trip_through_its_document(settings: Settings) -> None:
    for job in load_job_files([EXAMPLES], settings, NOW):
        doc = job.to_document()
        assert json.loads(json.dumps(doc)) == doc  # JSON-able as it is
        again = job_from_document(doc, settings)
        assert again == job
        assert again.to_document() == doc


def test_the_document_resolves_every_default(tmp_path: Path, settings: Settings) -> None:
    (job,) = load_job_files([write(tmp_path, "d.toml", job_toml())], settings, NOW)
    assert job.to_document() == {
        "id": "d",
        "description": "",
        "schedule": "0 9 * * MON",
        "timezone": "Europe/London",
        "enabled": True,
        "catch_up": "latest",
        "catch_up_window": "1d",
        "jitter": "0s",
        "action": {
            "type": "launch_process",
            "checklist_id": CHECKLIST,
            "name": "Weekly review {fire:%d %b %Y}",
            "tags": [],
            "users": [],
            "groups": [],
            "prerun": {},
            "tasks": {},
        },
    }


def test_a_stored_document_is_checked_again(settings: Settings) -> None:
    (job,) = load_job_files([EXAMPLES / "weekly-client-review.toml"], settings, NOW)
    doc = job.to_document()
    doc["action"]["checklist_id"] = "nope"
    doc["max_fires"] = True
    with pytest.raises(DefinitionError) as caught:
        job_from_document(doc, settings)
    assert {p.key for p in caught.value.problems} == {"action.checklist_id", "max_fires"}
    assert all(p.file == "<stored job weekly-client-review>" for p in caught.value.problems)
    del doc["id"]
    with pytest.raises(DefinitionError, match="id: required"):
        job_from_document(doc, settings)


def test_the_problems_of_a_document_come_unknown_keys_first_then_key_by_key(
    settings: Settings,
) -> None:
    """The order `jobs validate` prints them in: the file's unknown keys, then each key as the
    job's rules read them (a nested table at its key), the schedule's own faults last."""
    doc = {
        "max_fires": 0,
        "jitter": "2d",
        "action": {
            "owners": {"users": ["x"], "bogus": 1},
            "deadline": "+1q",
            "type": "create_task",
            "title": "{nope}",
        },
        "schedule": "61 * * * *",
        "start_at": "2026-03-09T00:00:00Z",
        "bogus": 1,
        "end_at": "2026-03-02T00:00:00Z",
        "id": "Bad",
        "timezone": "UTC",
        "schedul": "x",
    }
    with pytest.raises(DefinitionError) as caught:
        job_from_document(doc, settings)
    assert [p.key for p in caught.value.problems] == [
        "bogus",
        "schedul",
        "id",
        "jitter",
        "end_at",
        "max_fires",
        "action.title",
        "action.owners.bogus",
        "action.owners.users",
        "action.deadline",
        "schedule",
    ]


# A stored document is read by the same rules as a document being applied (the daemon loads
# every stored job with `job_from_document` and quarantines the ones it refuses): documents of
# the shapes `jobs apply` stores, then changed: values of every type put at every key (new keys
# too), keys removed. Each is judged on both paths: the stored path must refuse what applying
# refuses (with the same problems, named as a stored job), accept what applying accepts (the
# same Job), and refuse with a DefinitionError only (never another exception: the daemon
# catches that one to quarantine the job and goes on).
STORED_DOCUMENTS: list[dict[str, Any]] = [
    {
        "id": "launch",
        "description": "weekly",
        "schedule": "30 9 * * MON-FRI",
        "timezone": "America/New_York",
        "enabled": True,
        "catch_up": "all",
        "catch_up_window": "2h",
        "jitter": "30s",
        "action": {
            "type": "launch_process",
            "checklist_id": CHECKLIST,
            "name": "Review {fire:%d %b %Y}",
            "summary": "For {job}",
            "tags": [TAG],
            "users": [1001, 1002],
            "groups": [GROUP],
            "prerun": {
                FIELD: "Acme",
                STEP: {"at": "+2bd@17:00"},
                RUN: {"id": 7, "text": "x"},
                TAG: [1, 2.5, True, "x"],
            },
            "tasks": {},
        },
    },
    {
        "id": "task",
        "schedule": "H H * * *",
        "action": {
            "type": "create_task",
            "title": "Follow up ({fire:%a %d %b})",
            "task_type": "approval",
            "summary": "Due {deadline:%H:%M}",
            "owners": {"users": [1001], "groups": [GROUP], "guests": ["a@example.com"]},
            "started_at": "+1h",
            "deadline": "+1d@17:00",
        },
    },
    {
        "id": "bare-task",
        "schedule": "0 0 * * *",
        "action": {
            "type": "create_task",
            "title": "t",
            "owners": {"guests": ["a@example.com"]},
            "deadline": "+0@17:00",
        },
    },
    {
        "id": "window",
        "schedule": "0 9 * * MON",
        "timezone": "Europe/London",
        "start_at": "2026-03-09T09:00:00+00:00",
        "end_at": "2026-03-23T09:00:00+00:00",
        "max_fires": 2,
        "action": {
            "type": "launch_process",
            "checklist_id": CHECKLIST,
            "name": "n",
            "tasks": {STEP: {"deadline": "+1bd@12:00", "owners": {"users": [5]}}},
        },
    },
    {
        "id": "extras",
        "schedule": "@daily",
        "action": {
            "type": "create_task",
            "title": "x",
            "owners": {"users": [1]},
            "deadline": "+1d",
            "run_from_job": "launch",
            "tags": [TAG],
            "webhook": "https://hooks.example.com/x",
            "max_assignable": 0,
            "top_secret": True,
            "form_fields": [{"label": "Amount", "field_type": "text", "required": True}],
        },
    },
]
ODD_VALUES: list[Any] = [
    *(None, True, False, 0, 1, -1, 2.5, float("inf"), "", "x", " UTC"),
    *("latest", "LATEST", "none", "approval", "bogus", "0s", "1h", "1d", "3661d", "25h"),
    *("Europe/London", "Mars/Base", "0 9 * * MON", "61 * * * *", "@daily", "0 0 30 2 *"),
    *("{job}", "{nope}", "{fire:%Q}", "+0", "+1d@17:00", "+1x", CHECKLIST, CHECKLIST.upper()),
    *("a@example.com", "2026-01-01T00:00:00Z", "2026-03-16T00:00:00Z", "1960-01-01T00:00:00Z"),
    *("https://example.com/hook", "http://example.com", "https://[::1", "Bad_ID", "x" * 300),
    *([], [1], [0], [True], [1.5], ["a@example.com"], ["nope"], [CHECKLIST], [None]),
    *([{"label": 1}], [{"label": "a", "field_type": "t", "required": True}]),
    *({}, {"at": "+1d"}, {"at": 5}, {"at": "+1d", "x": 1}, {"x": 1}, {"users": [1]}),
    *({"type": "create_task"}, {"type": "launch"}, {"deadline": "+1d"}, {"owners": {}}),
]
DELETE = object()
KEYS = sorted(
    {"bogus", "start_at", "end_at", "max_fires", "enabled", "id", "description"}
    | {"schedule", "timezone", "catch_up", "catch_up_window", "jitter", "action"}
)
ACTION_KEYS = sorted(
    {"type", "checklist_id", "name", "summary", "tags", "users", "groups", "prerun", "tasks"}
    | {"title", "task_type", "owners", "started_at", "deadline", "run_from_job", "run_id"}
    | {"webhook", "form_fields", "max_assignable", "top_secret", "bogus"}
)
PLACES: list[tuple[str, ...]] = [
    *((key,) for key in KEYS),
    *(("action", key) for key in ACTION_KEYS),
    *(("action", "owners", key) for key in ("users", "groups", "guests", "bogus")),
    *(("action", "prerun", key) for key in (FIELD, STEP, RUN, "not-hex")),
    ("action", "prerun", STEP, "at"),
    *(("action", "tasks", key) for key in (STEP, "not-hex")),
    *(("action", "tasks", STEP, key) for key in ("deadline", "owners", "bogus")),
]


def mutated(doc: dict[str, Any], changes: list[tuple[tuple[str, ...], Any]]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(doc))
    for path, value in changes:
        table = out
        for key in path[:-1]:
            table = table.get(key)
            if not isinstance(table, dict):
                break
        else:
            if value is DELETE:
                table.pop(path[-1], None)
            else:
                table[path[-1]] = value
    return out


def judged_as_applied(doc: dict[str, Any], settings: Settings) -> Job | None:
    """`job_from_document(doc)`, checked against `validate_documents([doc])`; None if refused."""
    try:
        applied: list[Job] | None = validate_documents([doc], settings, NOW)
        applying: list[Problem] = []
    except DefinitionError as exc:
        applied, applying = None, exc.problems
    try:
        stored = job_from_document(doc, settings)
    except DefinitionError as exc:
        # Every problem of applying it, the same but for the name of the document.
        label = f"<stored job {doc.get('id')!s}>"
        assert exc.problems, doc
        assert all(p.file == label for p in exc.problems), doc
        assert [replace(p, file=None) for p in exc.problems] == [
            replace(p, file=None) for p in applying
        ], doc
        return None
    # Accepted: applying builds the same Job, or refuses it only once rendered for a fire.
    if applied is not None:
        assert applied == [stored], doc
    else:
        assert not any(p.key == "id" for p in applying), doc
    assert job_from_document(stored.to_document(), settings) == stored, doc
    return stored


def test_the_stored_documents_load_as_they_were_applied(settings: Settings) -> None:
    for doc in STORED_DOCUMENTS:
        (applied,) = validate_documents([doc], settings, NOW)
        assert job_from_document(doc, settings) == applied
        assert job_from_document(applied.to_document(), settings) == applied


def test_one_change_anywhere_is_judged_as_applying_judges_it(settings: Settings) -> None:
    outcomes = {"accepted": 0, "refused": 0}
    for doc in STORED_DOCUMENTS:
        for place in PLACES:
            for value in [DELETE, *ODD_VALUES]:
                job = judged_as_applied(mutated(doc, [(place, value)]), settings)
                outcomes["accepted" if job is not None else "refused"] += 1
    # Both outcomes, in numbers: the documents are valid, and most changes are faults.
    assert outcomes["accepted"] > 1000 and outcomes["refused"] > 5000, outcomes


@hyp_settings(max_examples=600, deadline=None)
@given(
    doc=st.sampled_from(STORED_DOCUMENTS),
    changes=st.lists(
        st.tuples(st.sampled_from(PLACES), st.sampled_from([DELETE, *ODD_VALUES])),
        min_size=1,
        max_size=3,
    ),
)
def test_changes_together_are_judged_as_applying_judges_them(
    doc: dict[str, Any], changes: list[tuple[tuple[str, ...], Any]]
) -> None:
    judged_as_applied(mutated(doc, changes), Settings(store=StoreSettings(url="sqlite://")))


# Values a stored document can hold and a TOML file cannot (JSON null, a float where a whole
# number goes), and the rest of what the stored path must refuse, each with its whole message.
STORED_BAD = [
    pytest.param(("description",), None, "description = None: must be a string", id="null"),
    pytest.param(("max_fires",), 2.0, "max_fires = 2.0: must be a whole number", id="float"),
    pytest.param(("max_fires",), True, "max_fires = True: must be a whole number", id="bool"),
    pytest.param(("enabled",), 1, "enabled = 1: must be true or false", id="number-for-a-bool"),
    pytest.param(
        ("timezone",),
        "Mars/Base",
        "timezone = 'Mars/Base': unknown time zone (use an IANA name such as 'Europe/London')",
        id="zone",
    ),
    pytest.param(
        ("catch_up_window",), "3661d", "catch_up_window = '3661d': at most 522w6d", id="window"
    ),
    pytest.param(("jitter",), "25h", "jitter = '25h': at most 1d", id="jitter"),
    pytest.param(
        ("start_at",),
        5,
        "start_at = 5: must be an ISO 8601 instant with an offset",
        id="instant-type",
    ),
    pytest.param(
        ("start_at",),
        "1960-01-01T00:00:00Z",
        "start_at = '1960-01-01T00:00:00Z': must be from 1970-01-01 to before 9000-01-01 (UTC)",
        id="instant-range",
    ),
    pytest.param(
        ("action", "owners", "users"),
        [0, "7"],
        "action.owners.users = 0: each must be a user id (a whole number) or a member's email\n"
        "<stored job task>: action.owners.users = '7': each must be a user id (a whole number) "
        "or a member's email",
        id="each-bad-item",
    ),
    pytest.param(
        ("action", "owners"),
        [1001],
        "action.owners = [1001]: must be a table { users = [...], groups = [...], guests = [...] }",
        id="owners-type",
    ),
    pytest.param(
        ("action", "owners"),
        {"guests": []},
        "action.owners = {'guests': []}: needs at least one user, group or guest",
        id="owners-empty",
    ),
    pytest.param(
        ("action", "run_id"),
        RUN,
        f"action.run_id = '{RUN}': give run_from_job or run_id, not both",
        id="run-link-twice",
    ),
    pytest.param(
        ("action", "max_assignable"),
        -1,
        "action.max_assignable = -1: must be 0 (no limit) or more",
        id="max-assignable",
    ),
    pytest.param(
        ("action", "form_fields"),
        [{"label": 1, "required": float("nan")}],
        "action.form_fields.0.field_type: required in every form field\n"
        "<stored job task>: action.form_fields.0.label = 1: must be a string\n"
        "<stored job task>: action.form_fields.0.required = nan: must be true or false\n"
        "<stored job task>: action.form_fields.0 = {'label': 1, 'required': nan}: "
        "not a finite number",
        id="form-field",
    ),
    # Deliberate: urlsplit refuses a malformed host with a ValueError, which used to escape
    # (the daemon, catching DefinitionError, would have stopped on it instead of quarantining).
    pytest.param(
        ("action", "webhook"),
        "https://[::1",
        "action.webhook = 'https://[::1': must be an https:// URL",
        id="webhook-malformed-host",
    ),
    pytest.param(
        ("action", "type"),
        "create_tasks",
        "action.type = 'create_tasks': must be 'launch_process' or 'create_task': did you mean "
        "'create_task'?",
        id="action-type",
    ),
]


@pytest.mark.parametrize(("place", "value", "message"), STORED_BAD)
def test_a_bad_stored_document_is_refused_with_every_problem(
    settings: Settings, place: tuple[str, ...], value: Any, message: str
) -> None:
    doc = STORED_DOCUMENTS[1]  # a create_task; its action is changed, or a key added
    if place[-1] == "run_id":
        doc = mutated(doc, [(("action", "run_from_job"), "launch")])
    with pytest.raises(DefinitionError) as caught:
        job_from_document(mutated(doc, [(place, value)]), settings)
    assert str(caught.value) == f"<stored job {doc['id']}>: {message}"


def test_validate_documents_renders_like_the_files(settings: Settings) -> None:
    (job,) = load_job_files([EXAMPLES / "weekly-client-review.toml"], settings, NOW)
    doc = job.to_document()
    assert validate_documents([doc], settings, NOW) == [job]
    doc["action"]["name"] = "x" * 551
    with pytest.raises(DefinitionError, match="at most 550"):
        validate_documents([doc], settings, NOW)


@pytest.mark.parametrize(
    ("change", "same"),
    [
        ({"schedule": "0  9 * * mon"}, True),
        ({"description": "other"}, True),
        ({"schedule": "0 10 * * MON"}, False),
        ({"timezone": "Europe/Paris"}, False),
    ],
    ids=["whitespace-and-case", "description", "schedule", "timezone"],
)
def test_the_schedule_key_changes_with_the_schedule_and_zone_only(
    settings: Settings, change: dict[str, str], same: bool
) -> None:
    (job,) = load_job_files([EXAMPLES / "weekly-client-review.toml"], settings, NOW)
    other = replace(job, **change)  # type: ignore[arg-type]
    assert (other.schedule_key == job.schedule_key) is same
    assert job.schedule_key == schedule_key("0 9 * * MON", "Europe/London")
    assert len(job.schedule_key) == 32


# -- the window and max_fires --------------------------------------------------------------------


def test_next_fire_stays_inside_the_window_and_stops_at_max_fires(
    tmp_path: Path, settings: Settings
) -> None:
    text = job_toml(
        {
            "start_at": '"2026-03-09T09:00:00Z"',  # a Monday 09:00 in London (GMT): included
            "end_at": '"2026-03-23T09:00:00Z"',  # included too
            "max_fires": "2",
        }
    )
    (job,) = load_job_files([write(tmp_path, "w.toml", text)], settings, NOW)
    assert list(job.fires_after(NOW)) == [
        datetime(2026, 3, 9, 9, tzinfo=UTC),
        datetime(2026, 3, 16, 9, tzinfo=UTC),
        datetime(2026, 3, 23, 9, tzinfo=UTC),
    ]
    assert job.next_fire(NOW, fires_so_far=1) == datetime(2026, 3, 9, 9, tzinfo=UTC)
    assert job.next_fire(NOW, fires_so_far=2) is None
    assert job.next_fire(datetime(2026, 3, 23, 9, tzinfo=UTC)) is None
    assert job.in_window(datetime(2026, 3, 9, 9, tzinfo=UTC))
    assert not job.in_window(datetime(2026, 3, 2, 9, tzinfo=UTC))


def test_a_finished_window_is_still_valid(tmp_path: Path, settings: Settings) -> None:
    text = job_toml({"start_at": '"2026-01-05T00:00:00Z"', "end_at": '"2026-02-01T00:00:00Z"'})
    (job,) = load_job_files([write(tmp_path, "done.toml", text)], settings, NOW)
    assert job.next_fire(NOW) is None  # re-applying a finished series is not an error


# -- run_from_job --------------------------------------------------------------------------------


def _jobs(settings: Settings, tmp_path: Path, run_from: str) -> list[Job]:
    launch = write(tmp_path, "launcher.toml", job_toml())
    task = write(
        tmp_path, "task.toml", job_toml(action={"run_from_job": f'"{run_from}"'}, kind="task")
    )
    return load_job_files([launch, task], settings, NOW)


@pytest.mark.parametrize(
    ("target", "stored", "prune", "fragment"),
    [
        ("launcher", [], False, None),
        ("elsewhere", [{"id": "elsewhere", "action": {"type": "launch_process"}}], False, None),
        ("elsewhere", [{"id": "elsewhere", "action": {"type": "launch_process"}}], True, "no job"),
        ("nobody", [], False, "no job has this id"),
        ("task", [], False, "must name a launch_process job"),
    ],
    ids=["in-the-set", "in-the-store", "pruned-from-the-store", "unknown", "a-create-task-job"],
)
def test_run_from_job_must_name_a_launch_that_exists_after_the_apply(
    tmp_path: Path,
    settings: Settings,
    target: str,
    stored: list[dict[str, object]],
    prune: bool,
    fragment: str | None,
) -> None:
    jobs = _jobs(settings, tmp_path, target)
    if fragment is None:
        check_run_from_job(jobs, stored, prune=prune)
        return
    with pytest.raises(DefinitionError) as caught:
        check_run_from_job(jobs, stored, prune=prune)
    (found,) = caught.value.problems
    assert (found.file, found.key, found.value) == (
        str(tmp_path / "task.toml"),
        "action.run_from_job",
        target,
    )
    assert fragment in found.message


# -- positions -----------------------------------------------------------------------------------


def test_key_lines_finds_headers_dotted_and_quoted_keys() -> None:
    text = (
        'schedule = "x"\n'  # 1
        'description = """\n'  # 2
        'fake = "inside a string"\n'  # 3
        '"""\n'  # 4
        "[action]\n"  # 5
        "prerun.'abc' = 1\n"  # 6
        '[action.tasks."f00"]\n'  # 7
        "  deadline = 2\n"  # 8
    )
    lines = key_lines(text)
    assert lines[("schedule",)] == 1
    assert ("fake",) not in lines
    assert lines[("action",)] == 5
    assert lines[("action", "prerun", "abc")] == 6
    assert lines[("action", "tasks", "f00", "deadline")] == 8
