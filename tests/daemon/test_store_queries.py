"""`Store.fires_touching`, the query the daemon cuts skip ranges with, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from scheduler.lifecycle import Trigger
from scheduler.store import Skip, Store

NOW = datetime(2026, 5, 4, 12, tzinfo=UTC)


def at(minute: int) -> datetime:
    return datetime(2026, 5, 4, 10, minute, tzinfo=UTC)


def test_it_finds_the_rows_and_ranges_that_touch_a_span(store: Store) -> None:
    store.claim([("j", at(1), Trigger.SCHEDULE)], now=NOW)
    store.record_skips([Skip("j", at(3), reason="r", count=4, until=at(6))], now=NOW)
    store.claim([("j", at(9), Trigger.MANUAL), ("other", at(5), Trigger.SCHEDULE)], now=NOW)

    def touching(first: int, last: int) -> list[datetime]:
        return [f.scheduled_for for f in store.fires_touching("j", at(first), at(last))]

    assert touching(2, 8) == [at(3)]  # the range, by its span
    assert touching(5, 5) == [at(3)]  # inside the range
    assert touching(0, 10) == [at(1), at(3), at(9)]
    assert touching(7, 8) == []
    assert touching(6, 9) == [at(3), at(9)]  # both ends inclusive
    assert store.fires_touching("j", at(9) + timedelta(seconds=1), at(20)) == []
