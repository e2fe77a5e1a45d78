"""The store's fires: claims, conditional state changes, skips and the queries over history.

The lifecycle is guarantees.md "Lifecycle of a fire": claim (pending) -> start_attempts
(sending) -> finish: succeeded | retrying | uncertain | failed; skipped rows account for
instants not fired. Every write takes a batch and answers one result per item (None where it
did not apply): a lone fire is a batch of one. test_lifecycle.py walks the transition table;
this module pins what each operation writes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

import pytest
from store_helpers import row_at

from scheduler.errors import FireNotFound
from scheduler.lifecycle import FireStatus, Trigger
from scheduler.store import Fire, Outcome, Skip, Store

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)

R = TypeVar("R")


def race(n: int, call: Callable[[int], R]) -> list[R]:
    """Run `call(i)` for i in range(n) on n threads released at the same moment."""
    barrier = threading.Barrier(n)
    results: list[R | BaseException] = [RuntimeError("did not run")] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = call(i)
        except BaseException as exc:  # re-raised below, in the test's thread
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return results  # type: ignore[return-value]


def claimed(
    store: Store, job_id: str = "job", at: datetime = T0, daemon_id: str | None = None
) -> Fire:
    (fire,) = store.claim([(job_id, at, Trigger.SCHEDULE)], now=at, daemon_id=daemon_id)
    assert fire is not None
    return fire


def sending(store: Store, job_id: str = "job", at: datetime = T0) -> Fire:
    (fire,) = store.start_attempts([claimed(store, job_id, at).id], now=at)
    assert fire is not None
    return fire


def finished(store: Store, outcome: Outcome, *, now: datetime) -> Fire:
    (fire,) = store.finish([outcome], now=now)
    assert fire is not None
    return fire


def start(
    store: Store, fire_id: int, *, now: datetime, daemon_id: str | None = None
) -> Fire | None:
    (fire,) = store.start_attempts([fire_id], now=now, daemon_id=daemon_id)
    return fire


def skipped(store: Store, skip: Skip, *, now: datetime = T0) -> Fire | None:
    (fire,) = store.record_skips([skip], now=now)
    return fire


# -- claim ------------------------------------------------------------------------------------
def test_claim_inserts_a_pending_row_for_the_instant(store: Store) -> None:
    (fire,) = store.claim([("job", T0, Trigger.CATCH_UP)], now=T0 + MINUTE, daemon_id="d1")

    assert fire is not None
    assert (fire.job_id, fire.scheduled_for, fire.trigger) == ("job", T0, Trigger.CATCH_UP)
    assert (fire.status, fire.attempts, fire.claimed_by) == (FireStatus.PENDING, 0, "d1")
    assert fire.created_at == fire.updated_at == T0 + MINUTE
    assert fire.first_attempt_at is None and fire.next_attempt_at is None
    assert row_at(store, "job", T0) == fire == store.get_fire(fire.id)


def test_claim_answers_none_when_the_instant_is_already_claimed(store: Store) -> None:
    first = claimed(store)
    same_instant_other_offset = T0.astimezone(ZoneInfo("America/New_York"))

    assert store.claim([("job", same_instant_other_offset, Trigger.MANUAL)], now=T0) == [None]
    assert store.claim([("other-job", T0, Trigger.SCHEDULE)], now=T0) != [None]
    assert store.claim([("job", T0 + timedelta(microseconds=1), Trigger.SCHEDULE)], now=T0) != [
        None
    ]
    assert row_at(store, "job", T0) == first


def test_of_many_threads_claiming_one_instant_exactly_one_wins(store: Store) -> None:
    for round_ in range(3):
        at = T0 + round_ * HOUR

        def claim(i: int, at: datetime = at) -> Fire | None:
            (fire,) = store.claim([("job", at, Trigger.SCHEDULE)], now=at, daemon_id=f"d{i}")
            return fire

        winners = [r for r in race(12, claim) if r is not None]
        assert len(winners) == 1
        assert row_at(store, "job", at) == winners[0]
    assert len(store.history("job")) == 3


def test_claim_refuses_a_naive_instant(store: Store) -> None:
    with pytest.raises(ValueError, match="naive"):
        store.claim([("job", datetime(2026, 3, 1, 12), Trigger.SCHEDULE)], now=T0)


# -- start_attempts ---------------------------------------------------------------------------
def test_start_marks_sending_counts_the_attempt_and_keeps_the_first_start(
    store: Store,
) -> None:
    fire = claimed(store, daemon_id="d1")

    first = start(store, fire.id, now=T0 + MINUTE, daemon_id="d1")
    assert first is not None
    assert (first.status, first.attempts, first.first_attempt_at) == (
        FireStatus.SENDING,
        1,
        T0 + MINUTE,
    )
    retry = Outcome(fire.id, FireStatus.RETRYING, next_attempt_at=T0 + HOUR)
    finished(store, retry, now=T0 + 2 * MINUTE)

    second = start(store, fire.id, now=T0 + HOUR, daemon_id="d2")
    assert second is not None
    assert (second.attempts, second.first_attempt_at, second.claimed_by) == (2, T0 + MINUTE, "d2")
    assert second.updated_at == T0 + HOUR


@pytest.mark.parametrize(
    "status",
    [FireStatus.SENDING, FireStatus.SUCCEEDED, FireStatus.FAILED, FireStatus.SKIPPED],
    ids=str,
)
def test_start_refuses_a_fire_that_is_not_waiting_to_be_sent(
    store: Store, status: FireStatus
) -> None:
    if status is FireStatus.SKIPPED:
        fire = skipped(store, Skip("job", T0, reason="policy"))
        assert fire is not None
    else:
        fire = sending(store)
        if status is not FireStatus.SENDING:
            finished(store, Outcome(fire.id, status), now=T0)

    assert start(store, fire.id, now=T0 + MINUTE) is None
    assert store.get_fire(fire.id).status is status


def test_start_refuses_a_fire_another_daemon_owns(store: Store) -> None:
    fire = claimed(store, daemon_id="d1")

    assert start(store, fire.id, now=T0, daemon_id="d2") is None
    assert start(store, fire.id, now=T0) is None  # no id: only unowned fires
    assert store.get_fire(fire.id).status is FireStatus.PENDING
    assert start(store, fire.id, now=T0, daemon_id="d1") is not None


def test_an_unowned_fire_can_be_started_by_anyone_who_then_owns_it(store: Store) -> None:
    fire = claimed(store)  # the CLI's `fire` claims without a daemon id
    started = start(store, fire.id, now=T0, daemon_id="d7")
    assert started is not None and started.claimed_by == "d7"


def test_of_two_threads_starting_one_fire_exactly_one_wins(store: Store) -> None:
    for round_ in range(10):
        fire = claimed(store, at=T0 + round_ * HOUR)

        def start_it(i: int, fire_id: int = fire.id) -> Fire | None:
            return start(store, fire_id, now=T0, daemon_id=f"d{i}")

        assert sum(r is not None for r in race(2, start_it)) == 1
        assert store.get_fire(fire.id).attempts == 1


# -- finish, retry, uncertain -----------------------------------------------------------------
def test_finish_records_success_and_clears_the_retry_time(store: Store) -> None:
    fire = sending(store)
    finished(store, Outcome(fire.id, FireStatus.RETRYING, next_attempt_at=T0 + HOUR), now=T0)
    again = start(store, fire.id, now=T0 + HOUR)
    assert again is not None

    done = finished(
        store,
        Outcome(fire.id, FireStatus.SUCCEEDED, remote_id="run-1", http_status=201),
        now=T0 + HOUR,
    )

    assert (done.status, done.remote_id, done.http_status) == (FireStatus.SUCCEEDED, "run-1", 201)
    assert (done.next_attempt_at, done.error, done.attempts) == (None, None, 2)
    assert done.updated_at == T0 + HOUR
    assert store.get_fire(fire.id) == done


def test_retrying_keeps_the_time_and_the_reason_and_frees_the_fire_for_any_daemon(
    store: Store,
) -> None:
    fire = claimed(store, daemon_id="d1")
    start(store, fire.id, now=T0, daemon_id="d1")

    retrying = finished(
        store,
        Outcome(
            fire.id,
            FireStatus.RETRYING,
            error="connection refused",
            http_status=429,
            next_attempt_at=T0 + 5 * MINUTE,
        ),
        now=T0,
    )

    assert retrying.status is FireStatus.RETRYING
    assert (retrying.next_attempt_at, retrying.error) == (T0 + 5 * MINUTE, "connection refused")
    assert retrying.claimed_by is None
    assert start(store, fire.id, now=T0 + 5 * MINUTE, daemon_id="d2") is not None


def test_retrying_without_a_time_is_refused(store: Store) -> None:
    fire = sending(store)
    with pytest.raises(ValueError, match="next_attempt_at"):
        store.finish([Outcome(fire.id, FireStatus.RETRYING)], now=T0)


@pytest.mark.parametrize("status", [FireStatus.PENDING, FireStatus.SENDING], ids=str)
def test_finish_refuses_a_status_that_is_not_an_outcome(store: Store, status: FireStatus) -> None:
    fire = sending(store)
    with pytest.raises(ValueError, match="cannot finish"):
        store.finish([Outcome(fire.id, status)], now=T0)


def test_failure_keeps_the_api_message_and_field_errors(store: Store) -> None:
    fire = sending(store)
    errors = {"kick_off.client": ["is required"], "name": ["too long", "bad chars"]}

    failed = finished(
        store,
        Outcome(fire.id, FireStatus.FAILED, error="HTTP 422", http_status=422, field_errors=errors),
        now=T0,
    )

    assert (failed.status, failed.error, failed.http_status) == (FireStatus.FAILED, "HTTP 422", 422)
    assert failed.field_errors == errors
    assert store.get_fire(fire.id).field_errors == errors


def test_uncertain_then_reconciled_as_succeeded(store: Store) -> None:
    fire = sending(store)

    uncertain = finished(
        store,
        Outcome(
            fire.id,
            FireStatus.UNCERTAIN,
            error="read timeout",
            http_status=502,
            next_attempt_at=T0 + HOUR,
        ),
        now=T0 + MINUTE,
    )
    assert (uncertain.status, uncertain.error, uncertain.http_status) == (
        FireStatus.UNCERTAIN,
        "read timeout",
        502,
    )
    assert uncertain.next_attempt_at == T0 + HOUR

    found = finished(
        store, Outcome(fire.id, FireStatus.SUCCEEDED, remote_id="run-9"), now=T0 + HOUR
    )
    assert (found.status, found.remote_id, found.error) == (FireStatus.SUCCEEDED, "run-9", None)


def test_uncertain_then_not_found_is_sent_again(store: Store) -> None:
    fire = sending(store)
    finished(store, Outcome(fire.id, FireStatus.UNCERTAIN, error="502"), now=T0)

    again = start(store, fire.id, now=T0 + MINUTE)

    assert again is not None
    assert (again.status, again.attempts) == (FireStatus.SENDING, 2)


def test_a_pending_fire_can_be_finished_without_an_attempt(store: Store) -> None:
    fire = claimed(store)
    failed = finished(store, Outcome(fire.id, FireStatus.FAILED, error="template refused"), now=T0)
    assert (failed.status, failed.attempts) == (FireStatus.FAILED, 0)


@pytest.mark.parametrize(
    "final", [FireStatus.SUCCEEDED, FireStatus.FAILED, FireStatus.RETRYING], ids=str
)
def test_finishing_a_fire_someone_else_moved_on_is_refused_and_changes_nothing(
    store: Store, final: FireStatus
) -> None:
    fire = sending(store)
    theirs = finished(store, Outcome(fire.id, final, next_attempt_at=T0 + HOUR), now=T0)

    late = Outcome(fire.id, FireStatus.SUCCEEDED, remote_id="late")
    assert store.finish([late], now=T0 + MINUTE) == [None]
    late_read_back = Outcome(fire.id, FireStatus.UNCERTAIN, error="late")
    assert store.finish([late_read_back], now=T0 + MINUTE) == [None]
    assert store.get_fire(fire.id) == theirs


# -- batches (a burst: one transaction for many fires) ----------------------------------------
def test_claim_claims_every_free_instant_and_answers_in_the_order_given(store: Store) -> None:
    taken = claimed(store, "b", T0)
    wanted = [
        ("c", T0 + MINUTE, Trigger.SCHEDULE),
        ("b", T0, Trigger.SCHEDULE),  # already claimed: None
        ("a", T0, Trigger.CATCH_UP),
        ("c", T0, Trigger.SCHEDULE),
        ("a", T0, Trigger.SCHEDULE),  # twice in one batch: the first one has it
    ]
    fires = store.claim(wanted, now=T0, daemon_id="d1")
    assert [None if f is None else (f.job_id, f.scheduled_for, f.trigger) for f in fires] == [
        ("c", T0 + MINUTE, Trigger.SCHEDULE),
        None,
        ("a", T0, Trigger.CATCH_UP),
        ("c", T0, Trigger.SCHEDULE),
        None,
    ]
    new = [f for f in fires if f is not None]
    assert {(f.status, f.attempts, f.claimed_by) for f in new} == {(FireStatus.PENDING, 0, "d1")}
    assert store.get_fire(taken.id) == taken
    for fire in new:
        assert row_at(store, fire.job_id, fire.scheduled_for) == fire
    assert store.claim([], now=T0) == []


def test_of_two_threads_claiming_the_same_batch_each_instant_goes_to_exactly_one(
    store: Store,
) -> None:
    wanted = [(f"job-{i}", T0, Trigger.SCHEDULE) for i in range(40)]
    won = race(2, lambda i: store.claim(wanted, now=T0, daemon_id=f"d{i}"))
    assert sorted(f.job_id for fires in won for f in fires if f is not None) == sorted(
        j for j, _a, _t in wanted
    )
    assert [(a is None) != (b is None) for a, b in zip(*won, strict=True)] == [True] * 40


def test_start_attempts_starts_the_open_fires_this_daemon_may_take_and_no_other(
    store: Store,
) -> None:
    mine = claimed(store, "a", daemon_id="d1")
    unowned = claimed(store, "b")
    theirs = claimed(store, "c", daemon_id="d2")
    done = sending(store, "d")
    finished(store, Outcome(done.id, FireStatus.SUCCEEDED, remote_id="r"), now=T0)
    ids = [mine.id, unowned.id, theirs.id, done.id, 999_999, mine.id]
    started = store.start_attempts(ids, now=T0 + MINUTE, daemon_id="d1")
    # In the order given; an id twice in one batch is started once, at its first place.
    assert [None if f is None else f.id for f in started] == [
        mine.id,
        unowned.id,
        None,
        None,
        None,
        None,
    ]
    for fire in started[:2]:
        assert fire is not None
        assert (fire.status, fire.attempts, fire.claimed_by) == (FireStatus.SENDING, 1, "d1")
        assert fire.first_attempt_at == T0 + MINUTE
        assert store.get_fire(fire.id) == fire
    assert store.get_fire(theirs.id).status is FireStatus.PENDING
    assert store.start_attempts([mine.id], now=T0, daemon_id="d1") == [None]  # sending already
    assert store.start_attempts([], now=T0) == []


def test_start_attempts_takes_more_ids_than_one_statement_holds(store: Store) -> None:
    fires = store.claim([(f"j{i}", T0, Trigger.SCHEDULE) for i in range(1203)], now=T0)
    started = store.start_attempts([f.id for f in fires if f is not None], now=T0)
    assert len(started) == 1203
    assert {None if f is None else f.status for f in started} == {FireStatus.SENDING}


def test_finish_records_each_outcome_and_says_which_fires_had_moved_on(
    store: Store,
) -> None:
    ok, retry, uncertain, failed, moved = (sending(store, f"j{i}") for i in range(5))
    finished(store, Outcome(moved.id, FireStatus.SUCCEEDED, remote_id="theirs"), now=T0)
    later = T0 + MINUTE
    done = store.finish(
        [
            Outcome(ok.id, FireStatus.SUCCEEDED, remote_id="r1", http_status=201),
            Outcome(retry.id, FireStatus.RETRYING, error="429", next_attempt_at=later),
            Outcome(uncertain.id, FireStatus.UNCERTAIN, error="502", next_attempt_at=later),
            Outcome(failed.id, FireStatus.FAILED, error="bad", field_errors={"f": ["no"]}),
            Outcome(moved.id, FireStatus.SUCCEEDED, remote_id="mine"),
        ],
        now=later,
    )
    assert done[4] is None
    assert store.get_fire(moved.id).remote_id == "theirs"
    assert [store.get_fire(f.id) for f in (ok, retry, uncertain, failed)] == done[:4]
    first, second, third, fourth = done[:4]
    assert first is not None and (first.status, first.remote_id, first.http_status) == (
        FireStatus.SUCCEEDED,
        "r1",
        201,
    )
    assert second is not None and (second.status, second.claimed_by) == (FireStatus.RETRYING, None)
    assert second.next_attempt_at == later
    assert third is not None and (third.status, third.next_attempt_at) == (
        FireStatus.UNCERTAIN,
        later,
    )
    assert fourth is not None and fourth.field_errors == {"f": ["no"]}
    assert {f.updated_at for f in done[:4] if f is not None} == {later}
    assert store.finish([], now=later) == []


def test_finish_records_a_whole_group_of_open_fires_at_once(store: Store) -> None:
    group = [sending(store, f"j{i}") for i in range(7)]
    later = T0 + MINUTE
    outcomes = [
        Outcome(f.id, FireStatus.SUCCEEDED, remote_id=f"r{i}", http_status=201)
        for i, f in enumerate(group[:5])
    ]
    outcomes.append(Outcome(group[5].id, FireStatus.RETRYING, error="429", next_attempt_at=later))
    outcomes.append(Outcome(group[6].id, FireStatus.FAILED, error="bad"))
    done = store.finish(outcomes, now=later)
    assert done == [store.get_fire(f.id) for f in group]
    assert [(f.status, f.remote_id) for f in done if f is not None] == [
        *((FireStatus.SUCCEEDED, f"r{i}") for i in range(5)),
        (FireStatus.RETRYING, None),
        (FireStatus.FAILED, None),
    ]


def test_finish_refuses_a_retry_without_a_time_and_records_nothing(store: Store) -> None:
    ok, retry = sending(store, "a"), sending(store, "b")
    with pytest.raises(ValueError, match="needs next_attempt_at"):
        store.finish(
            [Outcome(ok.id, FireStatus.SUCCEEDED), Outcome(retry.id, FireStatus.RETRYING)],
            now=T0,
        )
    assert store.get_fire(ok.id).status is FireStatus.SENDING


def test_an_unknown_fire_is_not_found_and_no_change_applies_to_it(store: Store) -> None:
    with pytest.raises(FireNotFound, match="no fire with id 424242"):
        store.get_fire(424242)
    assert store.finish([Outcome(424242, FireStatus.FAILED)], now=T0) == [None]
    assert store.start_attempts([424242], now=T0) == [None]
    assert store.reopen([424242], Trigger.BACKFILL, now=T0) == [None]
    assert row_at(store, "job", T0) is None


# -- adopt ------------------------------------------------------------------------------------
def test_adopt_takes_over_a_dead_daemons_fire_once(store: Store) -> None:
    fire = claimed(store, daemon_id="dead")
    as_seen = start(store, fire.id, now=T0, daemon_id="dead")
    assert as_seen is not None

    (adopted,) = store.adopt([as_seen], new_owner="live", now=T0 + HOUR)

    assert adopted is not None
    # Its request may have left: reconcile before any resend.
    assert (adopted.status, adopted.claimed_by) == (FireStatus.UNCERTAIN, "live")
    assert adopted.updated_at == T0 + HOUR
    # Owned by "live" now, not by "dead" as this snapshot says: refused.
    assert store.adopt([as_seen], new_owner="other", now=T0 + HOUR) == [None]
    assert start(store, fire.id, now=T0 + HOUR, daemon_id="live") is not None


def test_adopt_keeps_a_pending_fire_pending(store: Store) -> None:
    fire = claimed(store)  # unowned
    (adopted,) = store.adopt([fire], new_owner="live", now=T0)
    assert adopted is not None
    assert (adopted.status, adopted.claimed_by) == (FireStatus.PENDING, "live")


def test_adopt_takes_a_batch_of_several_owners_each_as_it_was_seen(store: Store) -> None:
    one = claimed(store, "a", daemon_id="dead-1")
    two = claimed(store, "b", daemon_id="dead-2")
    unowned = claimed(store, "c")
    moved = claimed(store, "d", daemon_id="dead-1")
    store.adopt([moved], new_owner="quicker", now=T0)

    done = store.adopt([one, two, unowned, moved], new_owner="live", now=T0 + MINUTE)

    assert [None if f is None else (f.id, f.claimed_by) for f in done] == [
        (one.id, "live"),
        (two.id, "live"),
        (unowned.id, "live"),
        None,
    ]
    assert store.get_fire(moved.id).claimed_by == "quicker"
    assert store.adopt([], new_owner="live", now=T0) == []


def test_of_two_daemons_adopting_one_fire_exactly_one_wins(store: Store) -> None:
    fire = claimed(store, daemon_id="dead")
    results = race(2, lambda i: store.adopt([fire], new_owner=f"d{i}", now=T0)[0])
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    assert store.get_fire(fire.id).claimed_by == winners[0].claimed_by


def test_a_settled_fire_cannot_be_adopted(store: Store) -> None:
    fire = sending(store)
    done = finished(store, Outcome(fire.id, FireStatus.SUCCEEDED, remote_id="r"), now=T0)
    assert store.adopt([done], new_owner="live", now=T0) == [None]


# -- reopen -----------------------------------------------------------------------------------
def test_reopen_turns_a_failed_fire_into_a_fresh_claim_for_backfill(store: Store) -> None:
    fire = sending(store)
    finished(
        store,
        Outcome(fire.id, FireStatus.FAILED, error="HTTP 422", http_status=422, field_errors={}),
        now=T0,
    )

    (reopened,) = store.reopen([fire.id], Trigger.BACKFILL, now=T0 + HOUR, daemon_id="d1")

    assert reopened is not None
    assert (reopened.status, reopened.trigger, reopened.claimed_by) == (
        FireStatus.PENDING,
        Trigger.BACKFILL,
        "d1",
    )
    assert (reopened.attempts, reopened.first_attempt_at, reopened.error) == (0, None, None)
    assert (reopened.http_status, reopened.updated_at) == (None, T0 + HOUR)
    assert store.reopen([fire.id], Trigger.BACKFILL, now=T0 + HOUR) == [None]  # pending now


def test_reopen_takes_a_skip_row_of_one_instant_and_never_a_range(store: Store) -> None:
    single = skipped(store, Skip("job", T0, reason="catch_up = none"))
    ranged = skipped(store, Skip("job", T0 + HOUR, reason="window", count=3, until=T0 + 3 * HOUR))
    assert single is not None and ranged is not None

    done = store.reopen([single.id, ranged.id], Trigger.BACKFILL, now=T0 + 4 * HOUR)

    assert done[1] is None
    assert done[0] is not None
    assert (done[0].status, done[0].skipped_count, done[0].error) == (
        FireStatus.PENDING,
        None,
        None,
    )
    assert store.get_fire(ranged.id) == ranged


# -- skips ------------------------------------------------------------------------------------
def test_record_skips_accounts_for_one_instant_with_its_reason(store: Store) -> None:
    skip = skipped(store, Skip("job", T0, reason="catch_up = none"))

    assert skip is not None and row_at(store, "job", T0) == skip
    assert (skip.status, skip.trigger, skip.error) == (
        FireStatus.SKIPPED,
        Trigger.CATCH_UP,
        "catch_up = none",
    )
    assert (skip.skipped_count, skip.skipped_until, skip.attempts) == (1, None, 0)


def test_record_skips_stands_for_a_range_with_its_count(store: Store) -> None:
    until = T0 + 99 * HOUR
    skip = skipped(store, Skip("job", T0, reason="outside window", count=100, until=until))
    assert skip is not None
    assert (skip.skipped_count, skip.skipped_until) == (100, until)


def test_record_skips_answers_none_when_the_instant_already_has_a_row(store: Store) -> None:
    fire = claimed(store)
    done = store.record_skips(
        [Skip("job", T0, reason="x"), Skip("job", T0 + HOUR, reason="y")], now=T0
    )
    assert done[0] is None and done[1] is not None
    assert store.get_fire(fire.id).status is FireStatus.PENDING
    assert store.record_skips([], now=T0) == []


@pytest.mark.parametrize(
    ("count", "until", "message"),
    [(0, None, "at least 1"), (3, None, "needs `until`"), (2, T0 - HOUR, "must not be before")],
    ids=["zero", "range-without-until", "until-before-start"],
)
def test_record_skips_refuses_a_malformed_range_and_records_nothing(
    store: Store, count: int, until: datetime | None, message: str
) -> None:
    good = Skip("other", T0, reason="fine")
    with pytest.raises(ValueError, match=message):
        store.record_skips([good, Skip("job", T0, reason="x", count=count, until=until)], now=T0)
    assert store.history() == []


# -- queries ----------------------------------------------------------------------------------
def make_history(store: Store) -> dict[str, Fire]:
    """a: ok@0h, failed@1h, skip 2h..4h, retrying@5h; b: ok@3h (manual), pending@6h."""
    out = {}
    ok = sending(store, "a", T0)
    out["a-ok"] = finished(store, Outcome(ok.id, FireStatus.SUCCEEDED, remote_id="r1"), now=T0)
    bad = sending(store, "a", T0 + HOUR)
    out["a-failed"] = finished(
        store, Outcome(bad.id, FireStatus.FAILED, error="422"), now=T0 + HOUR
    )
    skip = skipped(store, Skip("a", T0 + 2 * HOUR, reason="window", count=3, until=T0 + 4 * HOUR))
    assert skip is not None
    out["a-skip"] = skip
    retry = sending(store, "a", T0 + 5 * HOUR)
    out["a-retrying"] = finished(
        store,
        Outcome(retry.id, FireStatus.RETRYING, next_attempt_at=T0 + 6 * HOUR),
        now=T0 + 5 * HOUR,
    )
    (manual,) = store.claim([("b", T0 + 3 * HOUR, Trigger.MANUAL)], now=T0 + 3 * HOUR)
    assert manual is not None
    manual = start(store, manual.id, now=T0 + 3 * HOUR)
    assert manual is not None
    out["b-ok"] = finished(store, Outcome(manual.id, FireStatus.SUCCEEDED, remote_id="r2"), now=T0)
    out["b-pending"] = claimed(store, "b", T0 + 6 * HOUR)
    return out


def ids(fires: list[Fire], names: dict[str, Fire]) -> list[str]:
    by_id = {f.id: name for name, f in names.items()}
    return [by_id[f.id] for f in fires]


def test_history_is_newest_first_and_filters_by_job_status_since_and_limit(store: Store) -> None:
    h = make_history(store)

    assert ids(store.history(), h) == [
        "b-pending",
        "a-retrying",
        "b-ok",
        "a-skip",
        "a-failed",
        "a-ok",
    ]
    assert ids(store.history("a"), h) == ["a-retrying", "a-skip", "a-failed", "a-ok"]
    assert ids(store.history(status=FireStatus.SUCCEEDED), h) == ["b-ok", "a-ok"]
    assert ids(store.history("a", status="failed"), h) == ["a-failed"]
    assert ids(store.history(limit=2), h) == ["b-pending", "a-retrying"]
    assert len(store.history(limit=None)) == 6
    assert store.history("nobody") == []


def test_history_since_includes_a_skip_range_that_reaches_it(store: Store) -> None:
    h = make_history(store)
    # The skip row starts at 2h but stands for instants up to 4h.
    assert ids(store.history("a", since=T0 + 3 * HOUR), h) == ["a-retrying", "a-skip"]
    assert ids(store.history("a", since=T0 + 5 * HOUR), h) == ["a-retrying"]


def test_due_retries_are_the_retrying_fires_whose_time_has_come(store: Store) -> None:
    h = make_history(store)
    later = sending(store, "c", T0)
    finished(store, Outcome(later.id, FireStatus.RETRYING, next_attempt_at=T0 + 7 * HOUR), now=T0)

    assert store.due_retries(T0 + 6 * HOUR - MINUTE) == []
    assert ids(store.due_retries(T0 + 6 * HOUR), h) == ["a-retrying"]
    assert [f.job_id for f in store.due_retries(T0 + 8 * HOUR)] == ["a", "c"]  # soonest first
    assert len(store.due_retries(T0 + 8 * HOUR, limit=1)) == 1
    assert store.next_retry_at() == T0 + 6 * HOUR


def test_next_retry_at_is_none_without_retrying_fires(store: Store) -> None:
    claimed(store)
    assert store.next_retry_at() is None


def test_unsettled_lists_stale_pending_and_sending_fires_and_every_uncertain_one(
    store: Store,
) -> None:
    stale_pending = claimed(store, "a", T0)
    stale_sending = sending(store, "b", T0)
    fresh_pending = claimed(store, "c", T0 + HOUR)
    uncertain = sending(store, "d", T0 + HOUR)
    finished(store, Outcome(uncertain.id, FireStatus.UNCERTAIN, error="timeout"), now=T0 + HOUR)
    done = sending(store, "e", T0)
    finished(store, Outcome(done.id, FireStatus.SUCCEEDED), now=T0)

    found = store.unsettled(older_than=T0 + 30 * MINUTE)

    assert [f.id for f in found] == [stale_pending.id, stale_sending.id, uncertain.id]
    assert fresh_pending.id not in [f.id for f in found]


def test_accounted_until_is_the_newest_instant_per_job_ignoring_manual_fires(
    store: Store,
) -> None:
    make_history(store)
    store.claim([("only-manual", T0, Trigger.MANUAL)], now=T0)
    skipped(store, Skip("c", T0, reason="x", count=10, until=T0 + 9 * HOUR))
    claimed(store, "c", T0 + 2 * HOUR)  # inside the range: the range end still wins

    assert store.accounted_until() == {
        "a": T0 + 5 * HOUR,
        "b": T0 + 6 * HOUR,  # the manual fire at 3h does not count, the pending one does
        "c": T0 + 9 * HOUR,
    }


def test_success_counts_and_latest_success(store: Store) -> None:
    make_history(store)
    later = sending(store, "a", T0 + 10 * HOUR)
    finished(store, Outcome(later.id, FireStatus.SUCCEEDED, remote_id="r3"), now=T0)

    assert store.success_counts() == {"a": 2, "b": 1}
    assert store.success_count("a") == 2
    assert store.success_count("a", before=T0 + 10 * HOUR) == 1  # strictly before
    assert store.success_count("a", before=T0) == 0
    assert store.success_count("nobody") == 0
    latest = store.latest_success("a")
    assert latest is not None and latest.remote_id == "r3"
    assert store.latest_success("nobody") is None


def test_count_fires_counts_a_jobs_rows_in_the_given_statuses(store: Store) -> None:
    make_history(store)
    assert store.count_fires("a") == 4
    assert store.count_fires("a", statuses=[FireStatus.SUCCEEDED, FireStatus.RETRYING]) == 2
    assert store.count_fires("b", statuses=[FireStatus.FAILED]) == 0
    assert store.count_fires("a", statuses=[]) == 0


def test_remote_ids_lists_the_ids_a_job_already_has(store: Store) -> None:
    h = make_history(store)
    assert store.remote_ids("a") == {"r1"}
    assert store.remote_ids("a", exclude_fire_id=h["a-ok"].id) == set()


# -- JSON -------------------------------------------------------------------------------------
# 2026-03-08: New York moves from EST (-05:00) to EDT (-04:00) at 07:00Z.
@pytest.mark.parametrize(
    ("zone", "scheduled_for", "expected"),
    [
        (None, "2026-03-08T06:30:00+00:00", "2026-03-08T06:30:00+00:00"),
        ("America/New_York", "2026-03-08T06:30:00+00:00", "2026-03-08T01:30:00-05:00"),
        ("America/New_York", "2026-03-08T07:30:00+00:00", "2026-03-08T03:30:00-04:00"),
        ("Asia/Kolkata", "2026-03-08T07:30:00+00:00", "2026-03-08T13:00:00+05:30"),
    ],
    ids=["utc", "new-york-est", "new-york-edt", "kolkata"],
)
def test_to_json_writes_instants_with_their_offset_in_the_zone(
    store: Store, zone: str | None, scheduled_for: str, expected: str
) -> None:
    at = datetime.fromisoformat(scheduled_for)
    fire = claimed(store, "job", at)

    out = fire.to_json(ZoneInfo(zone) if zone else None)

    assert out["scheduled_for"] == expected
    assert out["created_at"] == out["updated_at"] == expected


def test_to_json_has_exactly_the_history_keys(store: Store) -> None:
    skip = skipped(store, Skip("job", T0, reason="r", count=2, until=T0 + HOUR))
    assert skip is not None

    assert skip.to_json(None) == {
        "id": skip.id,
        "job_id": "job",
        "scheduled_for": "2026-03-01T12:00:00+00:00",
        "trigger": "catch_up",
        "status": "skipped",
        "attempts": 0,
        "next_attempt_at": None,
        "remote_id": None,
        "http_status": None,
        "error": "r",
        "skipped_count": 2,
        "skipped_until": "2026-03-01T13:00:00+00:00",
        "created_at": "2026-03-01T12:00:00+00:00",
        "updated_at": "2026-03-01T12:00:00+00:00",
    }


# -- heartbeats -------------------------------------------------------------------------------
def test_heartbeat_inserts_then_refreshes_the_daemons_row(store: Store) -> None:
    store.heartbeat(
        "d1", hostname="h1", pid=10, started_at=T0, now=T0, next_fire_at=None, state="starting"
    )
    store.heartbeat(
        "d2",
        hostname="h2",
        pid=20,
        started_at=T0 + MINUTE,
        now=T0 + MINUTE,
        next_fire_at=T0 + HOUR,
        state="running",
    )
    store.heartbeat(
        "d1",
        hostname="h1",
        pid=10,
        started_at=T0,
        now=T0 + 2 * MINUTE,
        next_fire_at=T0 + HOUR,
        state="running",
    )

    d1, d2 = store.daemons()
    assert (d1.id, d1.last_seen, d1.next_fire_at, d1.state) == (
        "d1",
        T0 + 2 * MINUTE,
        T0 + HOUR,
        "running",
    )
    assert (d1.hostname, d1.pid, d1.started_at) == ("h1", 10, T0)
    assert (d2.id, d2.last_seen) == ("d2", T0 + MINUTE)
