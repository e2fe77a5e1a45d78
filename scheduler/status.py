"""What `status` and `jobs list` report: daemons alive, each job's next fire and last outcome,
fires waiting for a retry, fires whose outcome is uncertain, and a credentials problem."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from scheduler.config import Settings, is_valid_zone
from scheduler.definitions import job_from_document
from scheduler.describe import describe
from scheduler.errors import InvalidInput
from scheduler.lifecycle import FireStatus
from scheduler.skipdays import next_firing
from scheduler.store import JobMark, Store, StoredJob
from scheduler.timeexpr import BusinessCalendar

OPEN_LIST_LIMIT = 100  # retrying/uncertain fires listed in full; the counts are exact


def zone_of(definition: dict[str, Any]) -> ZoneInfo:
    """A stored job's zone (UTC if the stored value is unusable)."""
    name = definition.get("timezone")
    return ZoneInfo(name) if isinstance(name, str) and is_valid_zone(name) else ZoneInfo("UTC")


def iso_in(instant: datetime | None, zone: ZoneInfo) -> str | None:
    return None if instant is None else instant.astimezone(zone).isoformat()


def paused_fields(stored: StoredJob, mark: JobMark | None) -> dict[str, Any]:
    """Who paused a job and why (`paused_by`: breaker, operator or job_file; None while it
    is enabled), as `jobs list`, `jobs show` and `status` report them."""
    if stored.enabled:
        return {"paused_by": None, "pause_reason": None}
    if mark is None or mark.paused_by is None:
        return {"paused_by": "job_file", "pause_reason": "enabled = false in its job file"}
    return {"paused_by": mark.paused_by, "pause_reason": mark.pause_reason}


def paused_cell(row: dict[str, Any]) -> str:
    """The ENABLED cell of a job's line: `yes`, or `paused (by ...)`."""
    if row["enabled"]:
        return "yes"
    return f"paused (by {row['paused_by']})" if row.get("paused_by") else "paused"


def job_row(
    stored: StoredJob,
    settings: Settings,
    now: datetime,
    fires_so_far: int,
    mark: JobMark | None = None,
) -> dict[str, Any]:
    """One job: the stored definition's essentials, who paused it and why, and its next fire
    (or why it has none)."""
    definition = stored.definition
    zone = zone_of(definition)
    action = definition.get("action")
    row: dict[str, Any] = {
        "id": stored.id,
        "enabled": stored.enabled,
        "schedule": definition.get("schedule"),
        "schedule_words": None,
        "timezone": definition.get("timezone"),
        "action": action.get("type") if isinstance(action, dict) else None,
        "next_fire": None,
        **paused_fields(stored, mark),
    }
    try:
        job = job_from_document(definition, settings)
        row["schedule_words"] = describe(job.schedule, job_id=job.id)
        if stored.enabled:
            # The next instant that fires: one on a skip day is passed over (`next` lists it).
            calendar = BusinessCalendar.from_settings(settings.calendar) if job.skip_on else None
            upcoming = (
                next_firing(job, now, calendar, fires_so_far=fires_so_far)
                if calendar is not None
                else job.next_fire(now, fires_so_far=fires_so_far)
            )
            row["next_fire"] = iso_in(upcoming, zone)
    except InvalidInput as exc:
        row["error"] = "; ".join(p.message for p in exc.problems)
    return row


def last_outcome(store: Store, job_id: str, zone: ZoneInfo) -> dict[str, Any] | None:
    last = store.history(job_id, limit=1)
    if not last:
        return None
    return {
        "status": str(last[0].status),
        "scheduled_for": iso_in(last[0].scheduled_for, zone),
        "error": last[0].error,
    }


def job_rows(store: Store, settings: Settings, now: datetime) -> list[dict[str, Any]]:
    """Every stored job with its next fire and last outcome (`jobs list`, `status`)."""
    counts = store.success_counts()
    marks = store.job_marks()
    rows = []
    for stored in store.list_jobs():
        row = job_row(stored, settings, now, counts.get(stored.id, 0), marks.get(stored.id))
        row["last_outcome"] = last_outcome(store, stored.id, zone_of(stored.definition))
        rows.append(row)
    return rows


def build_status(store: Store, settings: Settings, now: datetime) -> dict[str, Any]:
    """The `status --json` document."""
    utc = ZoneInfo("UTC")
    dead_before = now - settings.scheduler.dead_after
    daemons = [
        {
            "id": d.id,
            "hostname": d.hostname,
            "pid": d.pid,
            "state": d.state,
            "alive": d.state != "stopped" and d.last_seen >= dead_before,
            "started_at": iso_in(d.started_at, utc),
            "last_seen": iso_in(d.last_seen, utc),
            "next_fire_at": iso_in(d.next_fire_at, utc),
        }
        for d in store.daemons()
    ]
    rows = job_rows(store, settings, now)
    zones = {row["id"]: zone_of({"timezone": row["timezone"]}) for row in rows}
    open_fires = {}
    for status in (FireStatus.RETRYING, FireStatus.UNCERTAIN, FireStatus.HELD):
        fires = store.history(status=status, limit=OPEN_LIST_LIMIT)
        open_fires[status.value] = [f.to_json(zones.get(f.job_id, utc)) for f in fires]
    recent = store.history(limit=20)
    # A fire waiting for a renewed token (401/403: `retrying`), or refused before this release.
    credentials_problem = any(
        f.http_status in (401, 403) and f.status in (FireStatus.FAILED, FireStatus.RETRYING)
        for f in [*recent, *store.history(status=FireStatus.RETRYING, limit=OPEN_LIST_LIMIT)]
    )
    return {
        "now": iso_in(now, utc),
        "alive": any(d["alive"] for d in daemons),
        "daemons": daemons,
        "jobs": rows,
        "retrying": open_fires["retrying"],
        "uncertain": open_fires["uncertain"],
        "held": open_fires["held"],
        "credentials_problem": credentials_problem,
    }
