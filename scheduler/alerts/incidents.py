"""When an incident opens and when it clears: the rules, as pure functions over what the
ledger says (tests/alerts/test_incident_rules.py tables them).

`monitor.py` reads the store, asks these, and applies the answers to the store (where opening
and clearing are each exactly once, whatever daemon asks).

- Per job `failed`: open while the job's latest failure is newer than its latest success;
  an open one clears once a success is newer than the failure that opened it.
- Daemon-wide `late`, `uncertain`, `credentials`: open while any fire is affected; cleared
  once none is; while open, the list of jobs is kept up to date without a message.
- `late`: a fire still to send (`pending`, `retrying`) whose jittered instant is more than
  `late_after` ago. Not late: an instant held on purpose (its jitter), and a fire that waits
  for a renewed token (the `credentials` incident says so, once).
- `token_expiry`: open while the token expires within the warning.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from scheduler.lifecycle import FireStatus
from scheduler.runner import CREDENTIAL_STATUSES
from scheduler.store import Fire


class Verdict(StrEnum):
    """What to do with one incident subject."""

    OPEN = "open"
    CLEAR = "clear"
    UPDATE = "update"  # still open; what it lists changed (no message)
    KEEP = "keep"


def daemon_wide(is_open: bool, affected: Sequence[str], listed: Sequence[str]) -> Verdict:
    """A daemon-wide incident: `affected` are the jobs affected now, `listed` those the open
    incident lists."""
    if affected and not is_open:
        return Verdict.OPEN
    if not affected and is_open:
        return Verdict.CLEAR
    if is_open and sorted(affected) != sorted(listed):
        return Verdict.UPDATE
    return Verdict.KEEP


def job_failure(
    open_since: datetime | None, last_failure: Fire | None, last_success: datetime | None
) -> Verdict:
    """A job's `failed` incident. `open_since`: when the failure that opened the open one was
    recorded (None: none open); `last_failure`: the job's newest failed fire seen;
    `last_success`: when its newest success was recorded."""
    if open_since is not None:
        if last_success is not None and last_success > open_since:
            return Verdict.CLEAR
        return Verdict.KEEP
    if last_failure is None:
        return Verdict.KEEP
    if last_success is not None and last_success >= last_failure.updated_at:
        return Verdict.KEEP  # it failed, then succeeded: nothing to say any more
    return Verdict.OPEN


def held_by_credentials(fire: Fire) -> bool:
    """A fire that waits for a renewed token."""
    return fire.status is FireStatus.RETRYING and fire.http_status in CREDENTIAL_STATUSES


def late_fires(
    fires: Iterable[Fire],
    *,
    now: datetime,
    late_after: timedelta,
    jitter_of: Callable[[Fire], timedelta],
) -> list[Fire]:
    """Of fires still to send, those late (module docstring)."""
    return [
        fire
        for fire in fires
        if fire.status in (FireStatus.PENDING, FireStatus.RETRYING)
        and not held_by_credentials(fire)
        and fire.scheduled_for + jitter_of(fire) + late_after < now
    ]


def token_expiry(expires_at: datetime | None, *, now: datetime, warning: timedelta) -> bool:
    """Whether the token expires within `warning` (or has expired)."""
    return expires_at is not None and expires_at - now <= warning


@dataclass(frozen=True)
class JobSummary:
    """One job of a daemon-wide incident: its oldest affected instant and how many."""

    job: str
    zone: str
    instant: datetime
    count: int

    def to_json(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "zone": self.zone,
            "instant": self.instant.isoformat(),
            "count": self.count,
        }


def by_job(fires: Iterable[Fire], zone_of: Callable[[str], str]) -> list[JobSummary]:
    """The fires grouped by job, oldest instant first."""
    grouped: dict[str, list[Fire]] = {}
    for fire in fires:
        grouped.setdefault(fire.job_id, []).append(fire)
    summaries = [
        JobSummary(
            job_id,
            zone_of(job_id),
            min(f.scheduled_for for f in group),
            len(group),
        )
        for job_id, group in grouped.items()
    ]
    return sorted(summaries, key=lambda s: (s.instant, s.job))


def skip_groups(skips: Iterable[Fire]) -> Mapping[str, list[Fire]]:
    """Skip rows recorded by catch-up (never sent: no attempt), by job: one message each."""
    grouped: dict[str, list[Fire]] = {}
    for fire in skips:
        if fire.status is FireStatus.SKIPPED and fire.attempts == 0:
            grouped.setdefault(fire.job_id, []).append(fire)
    return grouped
