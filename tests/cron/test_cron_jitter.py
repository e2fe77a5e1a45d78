"""Jitter: a pure function of (job id, scheduled instant), in [0, max), whole milliseconds."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest

from scheduler.cron import jitter_delay

INSTANT = datetime(2026, 3, 8, 7, 0, tzinfo=UTC)

# Golden values: every replica, retry and release must compute these same delays.
GOLDEN = [
    ("weekly-report", INSTANT, timedelta(seconds=90)),
    ("weekly-report", INSTANT + timedelta(days=7), timedelta(seconds=90)),
    ("onboarding", INSTANT, timedelta(seconds=90)),
    ("onboarding", INSTANT, timedelta(hours=1)),
]


@pytest.mark.parametrize(
    ("job_id", "scheduled_for", "max_jitter"),
    GOLDEN,
    ids=[f"{j}@{s:%Y-%m-%d}<{m}" for j, s, m in GOLDEN],
)
def test_it_is_sha256_of_job_and_utc_instant_floored_to_milliseconds(
    job_id: str, scheduled_for: datetime, max_jitter: timedelta
) -> None:
    key = f"{job_id}|{scheduled_for.astimezone(UTC).isoformat()}".encode()
    fraction = int.from_bytes(hashlib.sha256(key).digest()[:8], "big") / 2**64
    expected_ms = int(fraction * max_jitter.total_seconds() * 1000)
    delay = jitter_delay(job_id, scheduled_for, max_jitter)
    assert delay == timedelta(milliseconds=expected_ms)
    assert delay == jitter_delay(job_id, scheduled_for, max_jitter)


def test_a_pinned_value_never_changes() -> None:
    delay = jitter_delay("weekly-report", INSTANT, timedelta(seconds=90))
    assert delay == timedelta(seconds=28, milliseconds=211)


def test_the_same_instant_in_another_offset_gives_the_same_delay() -> None:
    new_york = INSTANT.astimezone(timezone(timedelta(hours=-4)))
    assert jitter_delay("a", new_york, timedelta(minutes=5)) == jitter_delay(
        "a", INSTANT, timedelta(minutes=5)
    )


def test_it_stays_in_range_in_whole_milliseconds_and_spreads_evenly() -> None:
    limit = timedelta(seconds=90)
    delays = [jitter_delay("job", INSTANT + timedelta(minutes=i), limit) for i in range(2000)]
    assert all(timedelta(0) <= d < limit for d in delays)
    assert all(d.microseconds % 1000 == 0 for d in delays)
    mean = sum(d.total_seconds() for d in delays) / len(delays)
    assert 40 < mean < 50  # uniform on [0, 90) has mean 45
    assert len(set(delays)) > 1900


def test_different_jobs_at_the_same_instant_get_different_delays() -> None:
    delays = {jitter_delay(f"job-{i}", INSTANT, timedelta(minutes=10)) for i in range(100)}
    assert len(delays) > 95


def test_a_tiny_limit_still_stays_below_it() -> None:
    limit = timedelta(microseconds=1500)
    delays = {jitter_delay(f"job-{i}", INSTANT, limit) for i in range(200)}
    assert delays == {timedelta(0), timedelta(milliseconds=1)}


def test_zero_jitter_is_no_delay() -> None:
    assert jitter_delay("job", INSTANT, timedelta(0)) == timedelta(0)


def test_it_refuses_a_negative_limit_and_a_naive_instant() -> None:
    with pytest.raises(ValueError, match="negative"):
        jitter_delay("job", INSTANT, timedelta(seconds=-1))
    with pytest.raises(ValueError, match="naive"):
        jitter_delay("job", datetime(2026, 3, 8, 7, 0), timedelta(seconds=90))
