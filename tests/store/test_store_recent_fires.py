"""`recent_fires` and `history(offset=)`, the dashboard's reads, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from scheduler.lifecycle import Trigger
from scheduler.store import Store

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)


def test_recent_fires_gives_each_jobs_newest_first_capped(store: Store) -> None:
    claims = [
        (job, NOW - timedelta(minutes=n), Trigger.SCHEDULE)
        for job, count in (("a", 40), ("b", 3))
        for n in range(count)
    ]
    store.claim(claims, now=NOW)
    found = store.recent_fires(["a", "b", "none"], 30)
    assert [f.scheduled_for for f in found["a"]] == [NOW - timedelta(minutes=n) for n in range(30)]
    assert len(found["b"]) == 3 and found["none"] == []
    assert store.recent_fires([], 30) == {}


def test_history_pages_by_offset(store: Store) -> None:
    store.claim([("a", NOW - timedelta(minutes=n), Trigger.SCHEDULE) for n in range(25)], now=NOW)
    second = store.history("a", limit=10, offset=10)
    assert [f.scheduled_for for f in second] == [NOW - timedelta(minutes=n) for n in range(10, 20)]
    assert len(store.history("a", limit=10, offset=20)) == 5
