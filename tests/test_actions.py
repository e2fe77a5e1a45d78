"""Job + scheduled instant -> the exact request (jobs.md: both actions, their bodies)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from scheduler.actions import build_request, reconcile_key
from scheduler.client import ApiRequest
from scheduler.config import Settings, StoreSettings
from scheduler.definitions import load_job_files
from scheduler.errors import FireRejected, InvalidInput
from scheduler.job import (
    At,
    CreateTask,
    Job,
    LaunchOptions,
    LaunchProcess,
    Owners,
    Passthrough,
    StepOverride,
    TaskType,
)
from scheduler.templates import parse_template
from scheduler.timeexpr import BusinessCalendar, parse_time_expression

EXAMPLES = Path(__file__).resolve().parent.parent / "jobs"
ORG = "demo-org"
CHECKLIST = "beeffbdddf558869a18556731b2da7c2"
PREPARE = "2f09054af7c94eda191606832f6775b8"
MEET = "3c1b61a847f413f1c2e306633fa6580d"
CLIENT = "16e27d901362e3abffae5c18ea1a8d12"
DUE = "2024ec22c6346de494cc419191bb01aa"
PRIORITY = "15b4e12ebb73d350509df79e2acd216c"
TAG = "f70ac12a815df7fa31f7cc57986f21c7"
RUN = "0123456789abcdef0123456789abcdef"
WEEKDAYS = BusinessCalendar()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def launch_job(**changes: Any) -> Job:
    """The weekly review, built directly (no cron needed to build requests)."""
    action = LaunchProcess(
        checklist_id=CHECKLIST,
        name=parse_template("Weekly client review {fire:%d %b %Y}"),
        summary=parse_template("Week {iso_week}, review #{seq}"),
        tags=(TAG,),
        users=(1002,),
        prerun={
            CLIENT: parse_template("Acme Corporation"),
            DUE: At(parse_time_expression("+2bd@17:00")),
            PRIORITY: Passthrough.of({"id": 2, "text": "Normal"}),
        },
        tasks={
            PREPARE: StepOverride(deadline=parse_time_expression("+1bd@12:00")),
            MEET: StepOverride(
                deadline=parse_time_expression("+2bd@17:00"),
                owners=Owners(users=(1002,), guests=("client@acme.example",)),
            ),
        },
    )
    fields: dict[str, Any] = {
        "id": "weekly-client-review",
        "schedule": "0 9 * * MON",
        "timezone": "Europe/London",
        "action": action,
    }
    fields.update(changes)
    return Job(**fields)


def task_job(**changes: Any) -> Job:
    fields: dict[str, Any] = {
        "title": parse_template(
            "Follow up on open approvals ({fire:%a %d %b}) due {deadline:%H:%M}"
        ),
        "owners": Owners(users=(1001,)),
        "deadline": parse_time_expression("+0@17:00"),
        "started_at": parse_time_expression("+0"),
        "summary": parse_template("Fire {seq} of {job}"),
        "run_from_job": "weekly-client-review",
    }
    fields.update(changes)
    return Job(
        id="daily-approvals-follow-up",
        schedule="0 8 * * MON-FRI",
        timezone="America/New_York",
        action=CreateTask(**fields),
    )


def test_a_launch_request_is_exactly_the_documented_body() -> None:
    # Monday 2026-03-30 09:00 BST, the day after London moved to summer time.
    request = build_request(
        launch_job(), at("2026-03-30T09:00:00+01:00"), organization_id=ORG, calendar=WEEKDAYS, seq=3
    )
    assert request == ApiRequest(
        "POST",
        "/organizations/demo-org/runs",
        {
            "checklist_id": CHECKLIST,
            "name": "Weekly client review 30 Mar 2026",
            "summary": "Week 2026-W14, review #3",
            "prerun": {
                CLIENT: "Acme Corporation",
                DUE: "2026-04-01T16:00:00Z",  # Wednesday 17:00 BST
                PRIORITY: {"id": 2, "text": "Normal"},
            },
            "tasks": {
                PREPARE: {"deadline": "2026-03-31T11:00:00Z"},  # Tuesday 12:00 BST
                MEET: {
                    "deadline": "2026-04-01T16:00:00Z",
                    "owners": {"users": [1002], "guests": ["client@acme.example"], "groups": []},
                },
            },
            "users": [1002],
            "tags": [TAG],
        },
    )
    assert list(request.body) == [
        "checklist_id", "name", "summary", "prerun", "tasks", "users", "tags",
    ]  # fmt: skip


# Step deadlines `+1bd@12:00` (prepare) and `+2bd@17:00` (meet) in Europe/London.
# London changes clocks on 2026-03-29 (GMT -> BST, +01:00) and 2026-10-25 (BST -> GMT).
STEP_DEADLINES = [
    pytest.param(
        "2026-03-26T09:00:00+00:00",  # Thursday, GMT
        WEEKDAYS,
        "2026-03-27T12:00:00Z",  # Friday 12:00 GMT
        "2026-03-30T16:00:00Z",  # Monday 17:00 BST: across the weekend and the change
        id="weekend-and-spring-forward",
    ),
    pytest.param(
        "2026-10-22T09:00:00+01:00",  # Thursday, BST
        WEEKDAYS,
        "2026-10-23T11:00:00Z",  # Friday 12:00 BST
        "2026-10-26T17:00:00Z",  # Monday 17:00 GMT: across the weekend and the fall back
        id="weekend-and-fall-back",
    ),
    pytest.param(
        "2026-04-02T09:00:00+01:00",  # Thursday before Good Friday (a configured holiday)
        BusinessCalendar(holidays=frozenset({date(2026, 4, 3)})),
        "2026-04-06T11:00:00Z",  # Monday 12:00 BST
        "2026-04-07T16:00:00Z",  # Tuesday 17:00 BST
        id="holiday-then-weekend",
    ),
    pytest.param(
        "2026-03-28T09:00:00+00:00",  # a Saturday (a manual fire): +1bd is Monday
        WEEKDAYS,
        "2026-03-30T11:00:00Z",
        "2026-03-31T16:00:00Z",
        id="from-a-weekend-day",
    ),
]


@pytest.mark.parametrize(("scheduled", "calendar", "prepare", "meet"), STEP_DEADLINES)
def test_step_deadlines_count_business_days_in_the_jobs_zone(
    scheduled: str, calendar: BusinessCalendar, prepare: str, meet: str
) -> None:
    body = build_request(
        launch_job(), at(scheduled), organization_id=ORG, calendar=calendar, seq=1
    ).body
    assert body["tasks"][PREPARE]["deadline"] == prepare
    assert body["tasks"][MEET]["deadline"] == meet
    assert body["prerun"][DUE] == meet


def test_a_task_request_is_exactly_the_documented_body() -> None:
    # Monday 2026-03-09 08:00 EDT, the day after New York moved to daylight time.
    request = build_request(
        task_job(),
        at("2026-03-09T08:00:00-04:00"),
        organization_id=ORG,
        calendar=WEEKDAYS,
        seq=7,
        run_id=RUN,
    )
    assert request == ApiRequest(
        "POST",
        "/organizations/demo-org/tasks",
        {
            "title": "Follow up on open approvals (Mon 09 Mar) due 17:00",
            "task_type": "task",
            "owners": {"users": [1001], "guests": [], "groups": []},
            "deadline": "2026-03-09T21:00:00Z",  # 17:00 EDT
            "started_at": "2026-03-09T12:00:00Z",  # the scheduled instant
            "summary": "Fire 7 of daily-approvals-follow-up",
            "description": "Fire 7 of daily-approvals-follow-up",  # the seed page's name
            "run_id": RUN,
        },
    )


def test_a_task_passes_its_extra_keys_through() -> None:
    extra = {
        "tags": [TAG],
        "webhook": "https://hooks.example.com/done",
        "form_fields": [{"label": "Amount", "field_type": "text", "required": True}],
        "separate_task_for_each_assignee": False,
        "max_assignable": 2,
    }
    job = task_job(
        task_type=TaskType.APPROVAL,
        summary=None,
        run_from_job=None,
        run_id=RUN,
        extra={k: Passthrough.of(v) for k, v in extra.items()},
    )
    body = build_request(
        job, at("2026-03-10T08:00:00-04:00"), organization_id=ORG, calendar=WEEKDAYS, seq=1
    ).body
    assert body == {
        "title": "Follow up on open approvals (Tue 10 Mar) due 17:00",
        "task_type": "approval",
        "owners": {"users": [1001], "guests": [], "groups": []},
        "deadline": "2026-03-10T21:00:00Z",
        "started_at": "2026-03-10T12:00:00Z",
        "run_id": RUN,
        **extra,
    }
    body["form_fields"][0]["label"] = "changed"  # the caller's copy, not the job's
    again = build_request(
        job, at("2026-03-10T08:00:00-04:00"), organization_id=ORG, calendar=WEEKDAYS, seq=1
    )
    assert again.body["form_fields"][0]["label"] == "Amount"


def test_optional_keys_that_are_empty_are_left_out() -> None:
    bare = LaunchProcess(checklist_id=CHECKLIST, name=parse_template("Bare {fire:%Y}"))
    job = launch_job(action=bare)
    body = build_request(
        job, at("2026-03-30T09:00:00+01:00"), organization_id=ORG, calendar=WEEKDAYS, seq=1
    ).body
    assert body == {"checklist_id": CHECKLIST, "name": "Bare 2026"}


def test_a_task_that_needs_a_run_refuses_to_build_without_one() -> None:
    with pytest.raises(InvalidInput) as caught:
        build_request(
            task_job(),
            at("2026-03-09T08:00:00-04:00"),
            organization_id=ORG,
            calendar=WEEKDAYS,
            seq=1,
        )
    (found,) = caught.value.problems
    assert (found.key, found.value) == ("action.run_from_job", "weekly-client-review")
    assert "no successful launch yet" in found.message


def test_the_same_fire_builds_the_same_request_whenever_it_is_built() -> None:
    """A retry, a catch-up or a backfill of one instant renders the same name and title."""
    instant = at("2026-03-30T08:00:00+00:00")  # the same instant, written in UTC
    first = build_request(launch_job(), instant, organization_id=ORG, calendar=WEEKDAYS, seq=4)
    again = build_request(
        launch_job(), at("2026-03-30T09:00:00+01:00"), organization_id=ORG, calendar=WEEKDAYS, seq=4
    )
    assert first == again
    assert reconcile_key(launch_job(), first) == (
        "run",
        "Weekly client review 30 Mar 2026",
        CHECKLIST,
    )
    task = build_request(
        task_job(), instant, organization_id=ORG, calendar=WEEKDAYS, seq=1, run_id=RUN
    )
    assert reconcile_key(task_job(), task) == (
        "task",
        "Follow up on open approvals (Mon 30 Mar) due 17:00",
    )


def test_scheduled_instants_in_a_repeated_hour_resolve_from_their_own_occurrence() -> None:
    # New York falls back on 2026-11-01: 01:30 happens at 05:30Z (EDT) and at 06:30Z (EST).
    job = task_job(deadline=parse_time_expression("+90m"), run_from_job=None)
    first, second = (
        build_request(
            job,
            datetime(2026, 11, 1, hour, 30, tzinfo=UTC),
            organization_id=ORG,
            calendar=WEEKDAYS,
            seq=1,
        ).body
        for hour in (5, 6)
    )
    assert (first["started_at"], first["deadline"]) == (
        "2026-11-01T05:30:00Z",
        "2026-11-01T07:00:00Z",
    )
    assert (second["started_at"], second["deadline"]) == (
        "2026-11-01T06:30:00Z",
        "2026-11-01T08:00:00Z",
    )


def test_the_example_jobs_build_their_requests() -> None:
    settings = Settings(store=StoreSettings(url="sqlite://"))
    now = datetime(2026, 3, 1, tzinfo=UTC)
    jobs = {job.id: job for job in load_job_files([EXAMPLES], settings, now)}
    weekly = build_request(
        jobs["weekly-client-review"],
        at("2026-03-30T09:00:00+01:00"),
        organization_id=ORG,
        calendar=WEEKDAYS,
        seq=1,
    )
    assert weekly.body["name"] == "Weekly client review 30 Mar 2026"
    assert weekly.body["summary"] == "Opened by the scheduler for week 2026-W14"
    assert weekly.body["prerun"][PRIORITY] == {"id": 2, "text": "Normal"}
    daily = build_request(
        jobs["daily-approvals-follow-up"],
        at("2026-03-09T08:00:00-04:00"),
        organization_id=ORG,
        calendar=WEEKDAYS,
        seq=1,
        run_id=RUN,
    )
    assert (daily.body["title"], daily.body["deadline"]) == (
        "Follow up on open approvals (Mon 09 Mar)",
        "2026-03-09T21:00:00Z",
    )


# -- issue 13: the whole of the two endpoints -----------------------------------------------------
ROLE = "5a4b0c2d3e1f40718293a4b5c6d7e8f9"
FOLDER = "9b1c3f7a5e2d4c6b8a0f1e3d5c7b9a2e"
GROUP = "8988c7c9a90225dbd141eab9d2422326"
MEMBERS = {"am@demo.example": 1002, "lee@demo.example": 1003}


def member_ids(email: str) -> int | None:
    """The demo organization's members, as the runner's MemberDirectory answers."""
    return MEMBERS.get(email.casefold())


def test_a_launch_carries_roles_folders_owner_starter_parent_and_flags() -> None:
    bare = LaunchProcess(
        checklist_id=CHECKLIST,
        name=parse_template("Review {fire:%d %b %Y}"),
        users=(1001, "AM@demo.example"),
        options=LaunchOptions(
            roles={ROLE: Owners(users=("lee@demo.example",), groups=(GROUP,))},
            folders=(FOLDER,),
            owner_id="am@demo.example",
            user_id=1003,
            parent_id=RUN,
            is_public=False,
            starred=True,
        ),
    )
    request = build_request(
        launch_job(action=bare),
        at("2026-03-30T09:00:00+01:00"),
        organization_id=ORG,
        calendar=WEEKDAYS,
        seq=1,
        members=member_ids,
    )
    assert request.body == {
        "checklist_id": CHECKLIST,
        "name": "Review 30 Mar 2026",
        "users": [1001, 1002],
        "roles": {ROLE: {"users": [1003], "guests": [], "groups": [GROUP]}},
        "folders": [FOLDER],
        "owner_id": 1002,
        "user_id": 1003,
        "parent_id": RUN,
        "is_public": False,
        "starred": True,
    }


def test_a_task_sends_its_text_as_summary_and_description_and_its_soft_start() -> None:
    job = task_job(
        owners=Owners(users=("lee@demo.example",), guests=("client@acme.example",)),
        extra={"is_soft_start_date": Passthrough.of(True)},
        started_at=parse_time_expression("+1d@09:00"),
    )
    body = build_request(
        job,
        at("2026-03-09T08:00:00-04:00"),
        organization_id=ORG,
        calendar=WEEKDAYS,
        seq=2,
        run_id=RUN,
        members=member_ids,
    ).body
    # Exactly as the seed page shows a task: `description`; and `summary`, as clients send.
    assert (body["description"], body["summary"]) == ("Fire 2 of daily-approvals-follow-up",) * 2
    assert body["owners"] == {"users": [1003], "guests": ["client@acme.example"], "groups": []}
    assert (body["started_at"], body["is_soft_start_date"]) == ("2026-03-10T13:00:00Z", True)


def test_member_emails_are_sent_as_written_without_a_directory() -> None:
    job = task_job(owners=Owners(users=("lee@demo.example",)))
    body = build_request(
        job, at("2026-03-09T08:00:00-04:00"), organization_id=ORG, calendar=WEEKDAYS, seq=1,
        run_id=RUN,
    ).body  # fmt: skip
    assert body["owners"]["users"] == ["lee@demo.example"]


@pytest.mark.parametrize(
    ("job", "key"),
    [
        pytest.param(
            task_job(owners=Owners(users=(1001, "ann@example.com"))),
            "action.owners.users",
            id="task-owners",
        ),
        pytest.param(
            launch_job(
                action=LaunchProcess(
                    checklist_id=CHECKLIST,
                    name=parse_template("R {fire:%Y}"),
                    tasks={PREPARE: StepOverride(owners=Owners(users=("ann@example.com",)))},
                )
            ),
            f"action.tasks.{PREPARE}.owners.users",
            id="step-assignees",
        ),
        pytest.param(
            launch_job(
                action=LaunchProcess(
                    checklist_id=CHECKLIST,
                    name=parse_template("R {fire:%Y}"),
                    options=LaunchOptions(owner_id="ann@example.com"),
                )
            ),
            "action.owner_id",
            id="owner",
        ),
    ],
)
def test_an_email_no_member_has_refuses_the_fire_naming_its_key(job: Job, key: str) -> None:
    with pytest.raises(FireRejected) as caught:
        build_request(
            job,
            at("2026-03-09T08:00:00-04:00"),
            organization_id=ORG,
            calendar=WEEKDAYS,
            seq=1,
            run_id=RUN,
            members=member_ids,
        )
    (found,) = caught.value.problems
    assert (found.key, found.value) == (key, "ann@example.com")
    assert found.message == "no member of the organization has the email 'ann@example.com'"
