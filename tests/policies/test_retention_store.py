"""History retention against a real store (SQLite and PostgreSQL): what pruning deletes, and
that nothing the engine needs changes (docs/operations.md, "History retention").

Every answer the engine takes from the history (`seq`, the cursor, `max_fires`' count,
`run_from_job`'s launch) is recorded before pruning half the history and compared after.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from scheduler.clock import FakeClock
from scheduler.config import Settings, StoreSettings
from scheduler.daemon.pruner import LEASE, LEASE_TTL, Pruner
from scheduler.lifecycle import COUNTS_TOWARD_MAX_FIRES, FireStatus, Trigger
from scheduler.store import Outcome, Skip, Store

T0 = datetime(2025, 1, 1, 9, tzinfo=UTC)
NOW = T0 + timedelta(days=200)


def day(n: int) -> datetime:
    return T0 + timedelta(days=n)


def settle(store: Store, job_id: str, n: int, status: FireStatus, trigger: Trigger) -> None:
    (fire,) = store.claim([(job_id, day(n), trigger)], now=day(n))
    assert fire is not None
    store.start_attempts([fire.id], now=day(n))
    outcome = Outcome(
        fire.id,
        status,
        remote_id=f"{job_id}-{n}" if status is FireStatus.SUCCEEDED else None,
        http_status=422 if status is FireStatus.FAILED else 201,
        error="HTTP 422" if status is FireStatus.FAILED else None,
    )
    store.finish([outcome], now=day(n))


def fill(store: Store) -> None:
    """`daily`: 100 days, every 7th failed, a skip range in the middle and a manual fire;
    `old`: three launches long ago, nothing since (its newest must stay for run_from_job);
    `stuck`: an uncertain fire on day 20, finished fires before and after it."""
    for n in range(100):
        if 40 <= n < 45:
            continue
        status = FireStatus.FAILED if n % 7 == 3 else FireStatus.SUCCEEDED
        settle(store, "daily", n, status, Trigger.SCHEDULE)
    store.record_skips([Skip("daily", day(40), "missed", count=5, until=day(44))], now=day(45))
    settle(store, "daily", 30.5, FireStatus.SUCCEEDED, Trigger.MANUAL)  # type: ignore[arg-type]
    for n in range(3):
        settle(store, "old", n, FireStatus.SUCCEEDED, Trigger.SCHEDULE)
    for n in range(30):
        if n != 20:
            settle(store, "stuck", n, FireStatus.SUCCEEDED, Trigger.SCHEDULE)
    (open_fire,) = store.claim([("stuck", day(20), Trigger.SCHEDULE)], now=day(20))
    assert open_fire is not None
    store.start_attempts([open_fire.id], now=day(20))
    store.finish(
        [Outcome(open_fire.id, FireStatus.UNCERTAIN, error="502", next_attempt_at=day(21))],
        now=day(20),
    )


def answers(store: Store) -> dict[str, object]:
    """What the engine asks the history, for instants that may still be sent (at or after
    each job's watermark: below it nothing is sent again)."""
    latest = {job: store.latest_success(job) for job in ("daily", "old", "stuck")}
    return {
        "seq": {
            (job, n): store.success_count(job, before=day(n))
            for job, days in (("daily", (50, 60, 99, 150)), ("stuck", (20, 25, 99)))
            for n in days
        },
        "all": {job: store.success_count(job) for job in ("daily", "old", "stuck")},
        "counts": store.success_counts(),
        "max_fires": {
            job: store.count_fires(job, statuses=COUNTS_TOWARD_MAX_FIRES)
            for job in ("daily", "old", "stuck")
        },
        "cursor": store.accounted_until(),
        "run_from_job": {job: f and (f.remote_id, f.scheduled_for) for job, f in latest.items()},
    }


def test_pruning_half_the_history_keeps_every_answer_the_engine_needs(store: Store) -> None:
    fill(store)
    before = answers(store)
    rows_before = len(store.history(limit=None))

    report = store.prune_history(older_than=day(50), now=NOW, batch=7)  # many small batches

    after = answers(store)
    assert after == before
    kept = store.history(limit=None)
    assert report.complete and report.rows == rows_before - len(kept) > 0
    daily = [f for f in kept if f.job_id == "daily"]
    assert min(f.scheduled_for for f in daily) == day(50)  # everything before it went
    assert store.pruned_before("daily") == day(50)
    # `old`: only its newest launch is left (run_from_job attaches to it).
    assert [f.remote_id for f in kept if f.job_id == "old"] == ["old-2"]
    # `stuck`: nothing at or after its open fire goes (its seq counts what is before it).
    stuck = sorted(f.scheduled_for for f in kept if f.job_id == "stuck")
    assert stuck[0] == day(20) and len(stuck) == 10
    assert store.pruned_before("stuck") == day(20)
    assert store.success_count("stuck", before=day(20)) == 20  # unchanged: days 0 to 19

    # Pruning again finds nothing more; everything still answers the same.
    again = store.prune_history(older_than=day(50), now=NOW, batch=7)
    assert again.rows == 0 and answers(store) == before


def test_a_dry_run_counts_and_deletes_nothing(store: Store) -> None:
    fill(store)
    rows = len(store.history(limit=None))
    dry = store.prune_history(older_than=day(50), now=NOW, dry_run=True, batch=11)
    assert len(store.history(limit=None)) == rows
    assert store.pruned_before("daily") is None
    real = store.prune_history(older_than=day(50), now=NOW, batch=11)
    assert (dry.rows, dry.by_job) == (real.rows, real.by_job)


def test_a_prune_stops_between_batches_when_asked(store: Store) -> None:
    fill(store)
    asked = iter([True, True, False])
    report = store.prune_history(
        older_than=day(50), now=NOW, batch=5, keep_going=lambda: next(asked)
    )
    assert (report.complete, report.rows) == (False, 10)
    assert store.success_count("daily", before=day(60)) == answers(store)["seq"][("daily", 60)]


def test_one_daemon_at_a_time_holds_the_prune_lease(store: Store) -> None:
    ttl = timedelta(minutes=5)
    assert store.take_lease("prune", "a", now=NOW, ttl=ttl)
    assert not store.take_lease("prune", "b", now=NOW + timedelta(minutes=1), ttl=ttl)
    assert store.take_lease("prune", "a", now=NOW + timedelta(minutes=2), ttl=ttl)  # renewed
    assert not store.take_lease("prune", "b", now=NOW + timedelta(minutes=6), ttl=ttl)
    assert store.take_lease("prune", "b", now=NOW + timedelta(minutes=8), ttl=ttl)  # ran out
    store.release_lease("prune", "a")  # not a's any more: nothing happens
    assert not store.take_lease("prune", "a", now=NOW + timedelta(minutes=9), ttl=ttl)
    store.release_lease("prune", "b")
    assert store.take_lease("prune", "a", now=NOW + timedelta(minutes=9), ttl=ttl)


def test_the_daemons_pruner_prunes_alone_and_only_when_retention_is_on(store: Store) -> None:
    fill(store)
    retention = timedelta(days=150)  # NOW - 150d is day(50)

    def pruner(daemon_id: str, keep: timedelta) -> Pruner:
        settings = Settings(store=StoreSettings(url="unused", history_retention=keep))
        return Pruner(
            store,
            clock=FakeClock(NOW),
            daemon_id=daemon_id,
            settings_of=lambda: settings,
            threaded=False,
            pause=0,
        )

    assert pruner("a", timedelta(0)).prune_once() is None  # "0" keeps everything
    assert store.pruned_before("daily") is None
    # Another daemon is pruning (it holds the lease): this one leaves it to them.
    assert store.take_lease(LEASE, "b", now=NOW, ttl=LEASE_TTL)
    assert pruner("a", retention).prune_once() is None
    assert store.pruned_before("daily") is None
    store.release_lease(LEASE, "b")
    rows = pruner("a", retention).prune_once()
    assert rows and store.pruned_before("daily") == day(50)
    assert store.take_lease(LEASE, "b", now=NOW, ttl=LEASE_TTL)  # given back when done
