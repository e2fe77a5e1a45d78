"""The operations behind `jobs apply`, `fire`, `backfill` and `preview` (and the demo's apply).

Called through their public functions, as the CLI and the demo call them: a real store on
SQLite under tmp_path, the example job files, and, where something is sent, a runner talking
real HTTP to an in-process sandbox. What the sandbox created is read back from it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scheduler.client import TallyfyClient
from scheduler.clock import FakeClock
from scheduler.config import Secret, Settings, StoreSettings, TallyfySettings
from scheduler.definitions import load_job_files
from scheduler.errors import (
    ConfigError,
    DefinitionError,
    FireFailed,
    FireRejected,
    InvalidInput,
    SchedulerError,
)
from scheduler.lifecycle import FireStatus, Trigger
from scheduler.operations import (
    MAX_BACKFILL,
    BackfillRange,
    apply_job_files,
    apply_jobs,
    backfill,
    backfill_plan,
    backfill_range,
    fire_job,
    load_job,
    preview,
    raise_unless_succeeded,
)
from scheduler.runner import Runner
from scheduler.store import ApplyPlan, Store
from scheduler.timeexpr import BusinessCalendar
from tallyfy_sandbox import FaultRule, SandboxServer

EXAMPLES = Path(__file__).resolve().parent.parent / "jobs"
WEEKLY = "weekly-client-review"  # Mondays 09:00 London (GMT until 29 March 2026)
DAILY = "daily-approvals-follow-up"  # a task attached to WEEKLY's latest launch
NOW = datetime(2026, 3, 2, 12, 0, 0, 250_000, tzinfo=UTC)  # Monday, 12:00:00.25 UTC


def monday(day: int, month: int = 3) -> datetime:
    """WEEKLY's instant on the Monday `day` of `month`, 2026 (09:00 GMT)."""
    return datetime(2026, month, day, 9, tzinfo=UTC)


@pytest.fixture
def settings(sandbox: SandboxServer, sqlite_url: str) -> Settings:
    return Settings(
        store=StoreSettings(url=sqlite_url),
        tallyfy=TallyfySettings(
            base_url=sandbox.url,
            organization_id=sandbox.organization_id,
            access_token=Secret(sandbox.token),
            max_requests_per_minute=60_000,
        ),
    )


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    store = Store.open(settings.store.url)
    store.init_schema()
    yield store
    store.close()


@pytest.fixture
def applied(store: Store, settings: Settings) -> Store:
    """The store holding the example jobs."""
    apply_job_files([EXAMPLES], settings, lambda: store, now=NOW)
    return store


@pytest.fixture
def runner(store: Store, settings: Settings) -> Iterator[Runner]:
    client = TallyfyClient.from_settings(settings.tallyfy)
    yield Runner(
        store,
        client,
        organization_id=settings.tallyfy.organization_id or "",
        calendar=BusinessCalendar.from_settings(settings.calendar),
        retry=settings.retry,
        clock=FakeClock(NOW),
    )
    client.close()


def _unreachable() -> Store:
    raise AssertionError("the store was opened before the files were checked")


# -- apply ----------------------------------------------------------------------------------------


def test_apply_stores_every_file_and_returns_what_it_did(store: Store, settings: Settings) -> None:
    first = apply_job_files([EXAMPLES], settings, lambda: store, now=NOW)
    assert first == ApplyPlan(added=(DAILY, WEEKLY))
    assert sorted(job.id for job in store.list_jobs()) == [DAILY, WEEKLY]
    again = apply_job_files([EXAMPLES], settings, lambda: store, now=NOW)
    assert again == ApplyPlan(unchanged=(DAILY, WEEKLY))


def test_a_dry_run_returns_the_plan_and_writes_nothing(store: Store, settings: Settings) -> None:
    plan = apply_job_files([EXAMPLES], settings, lambda: store, now=NOW, dry_run=True)
    assert plan == ApplyPlan(added=(DAILY, WEEKLY))
    assert store.list_jobs() == []


def test_bad_files_are_reported_before_the_store_is_opened(
    tmp_path: Path, settings: Settings
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text((EXAMPLES / f"{WEEKLY}.toml").read_text().replace("Europe/London", "Nowhere"))
    with pytest.raises(DefinitionError) as caught:
        apply_job_files([bad], settings, _unreachable, now=NOW)
    [found] = caught.value.problems
    assert (found.file, found.key, found.value) == (str(bad), "timezone", "Nowhere")


def test_a_run_from_job_left_dangling_by_a_prune_stores_nothing(
    applied: Store, settings: Settings
) -> None:
    before = applied.list_jobs()
    daily = EXAMPLES / f"{DAILY}.toml"
    with pytest.raises(DefinitionError) as caught:
        apply_job_files([daily], settings, lambda: applied, now=NOW, prune=True)
    [found] = caught.value.problems
    assert (found.file, found.key, found.value) == (str(daily), "action.run_from_job", WEEKLY)
    assert applied.list_jobs() == before
    # Without the prune the stored launch still counts: the same file applies.
    plan = apply_job_files([daily], settings, lambda: applied, now=NOW)
    assert plan == ApplyPlan(unchanged=(DAILY,))


def test_jobs_changed_in_code_are_applied_as_given(store: Store, settings: Settings) -> None:
    """The demo's path: its jobs are the files' with faster schedules, applied with a prune."""
    jobs = [
        dataclasses.replace(job, schedule="*/10 * * * * *")
        for job in load_job_files([EXAMPLES], settings, NOW)
    ]
    assert apply_jobs(store, jobs, now=NOW, prune=True) == ApplyPlan(added=(DAILY, WEEKLY))
    assert {job.definition["schedule"] for job in store.list_jobs()} == {"*/10 * * * * *"}


# -- fire -----------------------------------------------------------------------------------------


def test_a_fire_is_sent_once_and_its_instant_is_never_sent_again(
    applied: Store, settings: Settings, runner: Runner, sandbox: SandboxServer
) -> None:
    job = load_job(applied, settings, WEEKLY)
    done = fire_job(runner, job, now=NOW, at=monday(2))
    assert (done.status, done.trigger, done.scheduled_for) == (
        FireStatus.SUCCEEDED,
        Trigger.MANUAL,
        monday(2),
    )
    [run] = sandbox.runs()
    assert run["id"] == done.remote_id
    assert run["name"] == "Weekly client review 02 Mar 2026"
    raise_unless_succeeded([done])  # nothing to say

    with pytest.raises(FireFailed) as caught:
        fire_job(runner, job, now=NOW, at=monday(2))
    assert str(caught.value) == (
        f"{WEEKLY} 2026-03-02T09:00:00Z: already in the history; not sent again"
    )
    assert len(sandbox.runs()) == 1


def test_a_fire_without_an_instant_counts_as_now_to_the_second(
    applied: Store, settings: Settings, runner: Runner, sandbox: SandboxServer
) -> None:
    done = fire_job(runner, load_job(applied, settings, WEEKLY), now=NOW)
    assert done.scheduled_for == datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC)
    assert sandbox.runs()[0]["name"] == "Weekly client review 02 Mar 2026"


def test_a_fire_that_did_not_succeed_is_returned_then_named_by_the_check(
    applied: Store, settings: Settings, runner: Runner, sandbox: SandboxServer
) -> None:
    # The follow-up task has no launch to attach to yet: failed, not retried.
    failed = fire_job(runner, load_job(applied, settings, DAILY), now=NOW, at=NOW)
    assert failed.status is FireStatus.FAILED
    # A 429: not applied, tried again later by the daemon.
    sandbox.add_fault(FaultRule("rate_limit", retry_after=30, count=1))
    retrying = fire_job(runner, load_job(applied, settings, WEEKLY), now=NOW, at=monday(2))
    assert retrying.status is FireStatus.RETRYING
    assert sandbox.runs() == [] and sandbox.tasks() == []

    with pytest.raises(FireFailed) as caught:
        raise_unless_succeeded([failed, retrying])
    assert not isinstance(caught.value, InvalidInput)  # `error: ...` lines, exit 1
    first, second = str(caught.value).splitlines()
    assert first.startswith(f"{DAILY} 2026-03-02T12:00:00Z: failed: ")
    assert "has no successful launch yet" in first
    assert second.startswith(f"{WEEKLY} 2026-03-02T09:00:00Z: retrying: HTTP 429")
    assert second.endswith("; will be retried by the daemon")


# -- backfill -------------------------------------------------------------------------------------


def test_a_reversed_range_is_refused_naming_the_end() -> None:
    with pytest.raises(InvalidInput) as caught:
        backfill_range(monday(2), monday(2) - timedelta(seconds=1), now=NOW)
    [found] = caught.value.problems
    assert (found.key, found.value) == ("--to", "2026-03-02T08:59:59Z")


def test_an_end_still_to_come_is_cut_to_now_and_says_so() -> None:
    later = NOW + timedelta(days=7)
    assert backfill_range(monday(2), later, now=NOW) == BackfillRange(
        monday(2), NOW, "--to is in the future: backfilling up to now (2026-03-02T12:00:00Z)"
    )
    assert backfill_range(monday(2), NOW, now=NOW) == BackfillRange(monday(2), NOW)


def test_a_backfill_plans_each_instant_with_what_history_holds_then_fires_the_rest(
    applied: Store, settings: Settings, runner: Runner, sandbox: SandboxServer
) -> None:
    weekly = load_job(applied, settings, WEEKLY)
    assert fire_job(runner, weekly, now=NOW, at=monday(16, 2)).status is FireStatus.SUCCEEDED
    sandbox.add_fault(FaultRule("error_before", status=422, count=1))
    assert fire_job(runner, weekly, now=NOW, at=monday(23, 2)).status is FireStatus.FAILED
    span = backfill_range(monday(2, 2), NOW, now=NOW)

    plan = backfill_plan(applied, settings, WEEKLY, span)
    assert [(s.instant, s.to_fire, s.existing and s.existing.status) for s in plan.steps] == [
        (monday(2, 2), True, None),
        (monday(9, 2), True, None),
        (monday(16, 2), False, FireStatus.SUCCEEDED),
        (monday(23, 2), True, FireStatus.FAILED),
        (monday(2), True, None),
    ]
    assert [s.instant for s in plan.todo] == [monday(2, 2), monday(9, 2), monday(23, 2), monday(2)]
    assert len(sandbox.runs()) == 1  # planning sent nothing

    fires = backfill(runner, plan)
    assert len(sandbox.runs()) == 1  # nothing is sent until it is iterated
    done = list(fires)
    assert [(f.scheduled_for, f.trigger, f.status) for f in done] == [
        (s.instant, Trigger.BACKFILL, FireStatus.SUCCEEDED) for s in plan.todo
    ]
    raise_unless_succeeded(done)
    assert len(sandbox.runs()) == 5
    assert {run["id"] for run in sandbox.runs()} >= {f.remote_id for f in done}

    again = backfill_plan(applied, settings, WEEKLY, span)
    assert again.todo == ()
    assert list(backfill(runner, again)) == []
    assert len(sandbox.runs()) == 5


def test_a_backfill_of_more_instants_than_the_limit_is_refused(
    applied: Store, settings: Settings
) -> None:
    span = backfill_range(monday(2, 2), NOW, now=NOW)  # five Mondays
    assert len(backfill_plan(applied, settings, WEEKLY, span, limit=5).steps) == 5
    with pytest.raises(InvalidInput) as caught:
        backfill_plan(applied, settings, WEEKLY, span, limit=4)
    [found] = caught.value.problems
    assert found.message == "more than 4 instants in one backfill; split the range"
    assert (found.key, found.value) == ("--to", "2026-03-02T12:00:00Z")


def test_the_limit_holds_a_huge_range_without_enumerating_it(
    tmp_path: Path, store: Store, settings: Settings
) -> None:
    every_second = tmp_path / "every-second.toml"
    every_second.write_text(
        (EXAMPLES / f"{WEEKLY}.toml").read_text().replace('"0 9 * * MON"', '"* * * * * *"')
    )
    apply_job_files([every_second], settings, lambda: store, now=NOW)
    span = backfill_range(datetime(2000, 1, 1, tzinfo=UTC), NOW, now=NOW)  # 8e8 instants
    with pytest.raises(InvalidInput, match=f"more than {MAX_BACKFILL} instants"):
        backfill_plan(store, settings, "every-second", span)


# -- preview --------------------------------------------------------------------------------------


def test_a_preview_is_exactly_what_the_fire_then_sends(
    applied: Store, settings: Settings, runner: Runner, sandbox: SandboxServer
) -> None:
    shown = preview(applied, settings, WEEKLY, now=NOW, at=monday(9))
    assert (shown.job.id, shown.scheduled_for) == (WEEKLY, monday(9))
    assert shown.request.method == "POST"
    assert shown.url == f"{sandbox.url}/organizations/{sandbox.organization_id}/runs"
    assert shown.request.body["name"] == "Weekly client review 09 Mar 2026"
    assert sandbox.runs() == []  # a preview sends nothing

    fire_job(runner, shown.job, now=NOW, at=monday(9))
    [run] = sandbox.runs()
    assert run["name"] == shown.request.body["name"]
    assert run["checklist_id"] == shown.request.body["checklist_id"]


def test_a_preview_defaults_to_the_next_fire(applied: Store, settings: Settings) -> None:
    assert preview(applied, settings, WEEKLY, now=NOW).scheduled_for == monday(9)


def test_a_preview_of_a_task_without_its_launch_is_rejected_naming_the_link(
    applied: Store, settings: Settings
) -> None:
    with pytest.raises(FireRejected) as caught:
        preview(applied, settings, DAILY, now=NOW)
    [found] = caught.value.problems
    assert (found.key, found.value) == ("action.run_from_job", WEEKLY)


def test_a_preview_without_an_organization_names_the_setting(
    applied: Store, settings: Settings
) -> None:
    no_org = dataclasses.replace(
        settings, tallyfy=dataclasses.replace(settings.tallyfy, organization_id=None)
    )
    with pytest.raises(ConfigError) as caught:
        preview(applied, no_org, WEEKLY, now=NOW, at=monday(9))
    assert caught.value.problems[0].key == "tallyfy.organization_id"


def test_a_preview_of_a_job_with_no_next_fire_asks_for_an_instant(
    tmp_path: Path, store: Store, settings: Settings
) -> None:
    ended = tmp_path / "ended.toml"
    ended.write_text(
        'end_at = "2026-01-31T00:00:00Z"\n' + (EXAMPLES / f"{WEEKLY}.toml").read_text()
    )
    apply_job_files([ended], settings, lambda: store, now=NOW)
    with pytest.raises(InvalidInput) as caught:
        preview(store, settings, "ended", now=NOW)
    [found] = caught.value.problems
    assert (found.key, found.message) == ("ended", "the job has no next fire: pass --at")


def test_the_moved_errors_keep_their_place_in_the_tree() -> None:
    """FireRejected is bad input (one line per problem); FireFailed is a plain failure."""
    assert issubclass(FireRejected, InvalidInput)
    assert issubclass(FireFailed, SchedulerError) and not issubclass(FireFailed, InvalidInput)
    assert str(FireFailed(["a", "b"])) == "a\nb"
