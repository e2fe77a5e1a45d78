"""Jitter: a delay that is a pure function of (job id, scheduled instant) (schedules.md)."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from scheduler.clock import to_utc

_MICROSECOND = timedelta(microseconds=1)


def jitter_delay(job_id: str, scheduled_for: datetime, max_jitter: timedelta) -> timedelta:
    """A delay in [0, max_jitter), in whole milliseconds, the same in every process.

    sha256 of `"{job_id}|{scheduled_for in UTC, ISO 8601}"` gives a uniform fraction of
    `max_jitter`, floored to the millisecond; every replica and every retry computes the
    same delay. Zero when `max_jitter` is zero; ValueError when it is negative or when
    `scheduled_for` is naive.
    """
    if max_jitter < timedelta(0):
        raise ValueError(f"max_jitter must not be negative, got {max_jitter}")
    key = f"{job_id}|{to_utc(scheduled_for).isoformat()}"
    if not max_jitter:
        return timedelta(0)
    fraction = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    # Integer arithmetic: floor(fraction / 2**64 * max_jitter) exactly, then whole ms.
    micros = (fraction * (max_jitter // _MICROSECOND)) >> 64
    return timedelta(milliseconds=micros // 1000)
