"""The store's jobs: apply (one transaction), plan, pause/resume, remove, the revision counter."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event

from scheduler.errors import DefinitionError, JobNotFound
from scheduler.lifecycle import FireStatus, Trigger
from scheduler.store import ApplyPlan, JobDocument, Store

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)
T2 = T0 + timedelta(hours=2)


def doc(
    job_id: str,
    *,
    schedule: str = "0 9 * * *",
    zone: str = "UTC",
    title: str = "Weekly review",
    enabled: bool = True,
    source: str | None = "jobs/a.toml",
) -> JobDocument:
    definition = {
        "id": job_id,
        "schedule": schedule,
        "timezone": zone,
        "action": {"type": "create_task", "title": title, "tags": ["a", "b"]},
        "enabled": enabled,
    }
    return JobDocument(job_id, definition, f"{schedule}|{zone}", enabled, source)


@contextmanager
def failing_on(store: Store, statement_prefix: str) -> Iterator[None]:
    """Make the database refuse the first statement that starts with `statement_prefix`."""

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith(statement_prefix):
            raise RuntimeError(f"injected failure on {statement_prefix}")

    event.listen(store.engine, "before_cursor_execute", before)
    try:
        yield
    finally:
        event.remove(store.engine, "before_cursor_execute", before)


# -- apply ------------------------------------------------------------------------------------
def test_apply_adds_new_jobs_with_their_definition_and_active_since_now(store: Store) -> None:
    plan = store.apply([doc("b"), doc("a", enabled=False)], prune=False, now=T0)

    assert plan == ApplyPlan(added=("a", "b"))
    a, b = store.list_jobs()
    assert (a.id, a.enabled, b.id, b.enabled) == ("a", False, "b", True)
    assert b.definition == doc("b").definition
    assert b.schedule_key == "0 9 * * *|UTC"
    assert b.source == "jobs/a.toml"
    assert b.active_since == b.created_at == b.updated_at == T0
    assert b.active_since.tzinfo is UTC


def test_apply_sorts_documents_into_added_changed_unchanged_and_leaves_others_alone(
    store: Store,
) -> None:
    store.apply([doc("same"), doc("edit"), doc("other")], prune=False, now=T0)

    plan = store.apply(
        [doc("same"), doc("edit", title="New title"), doc("new")], prune=False, now=T1
    )

    assert plan == ApplyPlan(added=("new",), changed=("edit",), unchanged=("same",))
    assert [j.id for j in store.list_jobs()] == ["edit", "new", "other", "same"]
    edited = store.get_job("edit")
    assert edited.definition["action"]["title"] == "New title"
    assert (edited.created_at, edited.updated_at) == (T0, T1)
    assert store.get_job("same").updated_at == T0


def test_apply_with_prune_removes_jobs_no_document_defines(store: Store) -> None:
    store.apply([doc("keep"), doc("gone-1"), doc("gone-2")], prune=False, now=T0)

    plan = store.apply([doc("keep")], prune=True, now=T1)

    assert plan == ApplyPlan(removed=("gone-1", "gone-2"), unchanged=("keep",))
    assert [j.id for j in store.list_jobs()] == ["keep"]


def test_key_order_in_a_definition_does_not_make_it_changed(store: Store) -> None:
    store.apply([JobDocument("a", {"x": 1, "y": {"p": 1, "q": 2}}, "k")], prune=False, now=T0)
    plan = store.apply(
        [JobDocument("a", {"y": {"q": 2, "p": 1}, "x": 1}, "k")], prune=False, now=T1
    )
    assert plan.unchanged == ("a",)


@pytest.mark.parametrize(
    ("change", "resets_active_since"),
    [
        ({"schedule": "30 9 * * *"}, True),
        ({"zone": "Europe/Paris"}, True),
        ({"title": "Renamed"}, False),
        ({"source": "jobs/moved.toml"}, False),
        ({"enabled": False}, False),
    ],
    ids=["schedule", "timezone", "definition-only", "source-only", "disabled"],
)
def test_a_schedule_change_and_only_that_resets_active_since(
    store: Store, change: dict[str, Any], resets_active_since: bool
) -> None:
    store.apply([doc("a")], prune=False, now=T0)

    plan = store.apply([doc("a", **change)], prune=False, now=T1)

    assert plan.changed == ("a",)
    assert store.get_job("a").active_since == (T1 if resets_active_since else T0)


def test_the_file_is_the_truth_for_enabled_so_apply_resumes_a_paused_job(store: Store) -> None:
    store.apply([doc("a")], prune=False, now=T0)
    store.set_enabled("a", False, now=T1)

    plan = store.apply([doc("a")], prune=False, now=T2)

    assert plan.changed == ("a",)
    job = store.get_job("a")
    assert job.enabled
    assert job.active_since == T2  # resumed: the paused period is not replayed


def test_plan_apply_reports_the_same_plan_and_writes_nothing(store: Store) -> None:
    store.apply([doc("a"), doc("b")], prune=False, now=T0)
    docs = [doc("a", title="x"), doc("c")]
    revision = store.jobs_revision()

    plan = store.plan_apply(docs, prune=True)

    assert plan == ApplyPlan(added=("c",), changed=("a",), removed=("b",))
    assert store.jobs_revision() == revision
    assert [j.id for j in store.list_jobs()] == ["a", "b"]
    assert store.apply(docs, prune=True, now=T1) == plan


@pytest.mark.parametrize("failing", ["INSERT", "UPDATE", "DELETE"], ids=str.lower)
def test_a_failure_mid_apply_leaves_the_store_unchanged(store: Store, failing: str) -> None:
    store.apply([doc("edit"), doc("gone")], prune=False, now=T0)
    before = store.list_jobs()
    revision = store.jobs_revision()

    with failing_on(store, failing), pytest.raises(RuntimeError, match="injected"):
        # Inserts run first, then updates, then deletes: each failure point leaves work done
        # earlier in the same transaction to be rolled back.
        store.apply([doc("edit", title="x"), doc("new")], prune=True, now=T1)

    assert store.list_jobs() == before
    assert store.jobs_revision() == revision


def test_apply_refuses_two_documents_with_one_id_before_writing(store: Store) -> None:
    with pytest.raises(DefinitionError, match="two job documents have this id"):
        store.apply([doc("a"), doc("a", title="other")], prune=False, now=T0)
    assert store.list_jobs() == []


def test_apply_refuses_a_definition_that_is_not_plain_json(store: Store) -> None:
    bad = JobDocument("a", {"when": T0}, "k")
    with pytest.raises(TypeError, match="job 'a': definition is not plain JSON"):
        store.apply([bad], prune=False, now=T0)


def test_apply_refuses_a_naive_now(store: Store) -> None:
    with pytest.raises(ValueError, match="naive"):
        store.apply([doc("a")], prune=False, now=datetime(2026, 1, 1))


def test_apply_handles_thousands_of_jobs_in_one_go(store: Store) -> None:
    docs = [doc(f"job-{i:05d}") for i in range(3000)]
    assert len(store.apply(docs, prune=False, now=T0).added) == 3000
    edited = [doc(d.id, title="v2") if i % 2 else d for i, d in enumerate(docs)]

    plan = store.apply(edited[:2000], prune=True, now=T1)

    assert (len(plan.changed), len(plan.unchanged), len(plan.removed)) == (1000, 1000, 1000)
    assert len(store.list_jobs()) == 2000


# -- reading ----------------------------------------------------------------------------------
def test_list_jobs_reads_every_job_in_one_query(store: Store) -> None:
    store.apply([doc(f"j{i}") for i in range(50)], prune=False, now=T0)
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    event.listen(store.engine, "before_cursor_execute", count)
    try:
        jobs = store.list_jobs()
    finally:
        event.remove(store.engine, "before_cursor_execute", count)
    assert len(jobs) == 50
    assert len(statements) == 1


def test_get_job_raises_job_not_found_for_an_unknown_id(store: Store) -> None:
    with pytest.raises(JobNotFound, match="no job with id 'nope'") as caught:
        store.get_job("nope")
    assert caught.value.job_id == "nope"
    assert isinstance(caught.value, LookupError)


# -- pause, resume, remove --------------------------------------------------------------------
def test_pause_then_resume_moves_active_since_to_the_resume(store: Store) -> None:
    store.apply([doc("a")], prune=False, now=T0)

    paused = store.set_enabled("a", False, now=T1)
    assert (paused.enabled, paused.active_since, paused.updated_at) == (False, T0, T1)

    resumed = store.set_enabled("a", True, now=T2)
    assert (resumed.enabled, resumed.active_since, resumed.updated_at) == (True, T2, T2)


def test_resuming_a_running_job_changes_nothing(store: Store) -> None:
    store.apply([doc("a")], prune=False, now=T0)
    revision = store.jobs_revision()

    job = store.set_enabled("a", True, now=T1)

    assert (job.active_since, job.updated_at) == (T0, T0)  # no instants are given up
    assert store.jobs_revision() == revision


def test_remove_deletes_the_job_and_keeps_its_history(store: Store) -> None:
    store.apply([doc("a")], prune=False, now=T0)
    (fire,) = store.claim([("a", T1, Trigger.SCHEDULE)], now=T1)
    assert fire is not None

    store.remove_job("a")

    with pytest.raises(JobNotFound):
        store.get_job("a")
    assert [f.id for f in store.history("a")] == [fire.id]
    assert store.get_fire(fire.id).status is FireStatus.PENDING


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.set_enabled("nope", False, now=T0),
        lambda s: s.remove_job("nope"),
    ],
    ids=["set_enabled", "remove_job"],
)
def test_changing_an_unknown_job_raises_job_not_found(store: Store, call: Any) -> None:
    with pytest.raises(JobNotFound):
        call(store)


# -- the revision counter ---------------------------------------------------------------------
def test_every_job_change_bumps_the_revision_and_nothing_else_does(store: Store) -> None:
    seen = [store.jobs_revision()]

    def step() -> int:
        seen.append(store.jobs_revision())
        return seen[-1] - seen[-2]

    store.apply([doc("a"), doc("b")], prune=False, now=T0)
    assert step() == 1
    store.apply([doc("a"), doc("b")], prune=False, now=T1)  # nothing changed
    assert step() == 0
    store.plan_apply([doc("c")], prune=True)
    assert step() == 0
    store.claim([("a", T1, Trigger.SCHEDULE)], now=T1)  # history is not a job change
    assert step() == 0
    store.set_enabled("a", False, now=T1)
    assert step() == 1
    store.set_enabled("a", False, now=T1)
    assert step() == 0
    store.remove_job("b")
    assert step() == 1
    store.apply([doc("a", title="x")], prune=True, now=T2)
    assert step() == 1
    assert seen == [0, 1, 1, 1, 1, 2, 2, 3, 4]
