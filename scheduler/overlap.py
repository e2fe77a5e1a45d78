"""Overlap: whether what a job launched before is still open in Tallyfy (docs/jobs.md, "overlap").

A job with `overlap = "skip"` or `"buffer_one"` asks, before each fire is sent, about the
items its earlier fires created: the ledger's succeeded fires whose run (a launch) or task (a
one-off task) is not yet known to be closed, newest first (`Store.maybe_running`). Each is
read from the API (`GET /runs/{id}`, `GET /tasks/{id}`, through the rate limiter like any
request); a closed one (completed, archived, deleted, or gone: 404) is remembered as closed
(`Store.mark_closed`) and never asked about again, and the first one still open is the answer.
A fire still in flight (`sending`, `uncertain`: its request may have arrived) counts as open
without asking: its launch may exist already.

A look-up that fails raises its ApiError: the caller leaves the fire `retrying` and asks again
later, so a fire is never sent on a guess that the item is closed. The runner (`runner.py`)
turns the answer into the fire's fate: sent, skipped, or held.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from scheduler.attach import closed_state, unless_gone
from scheduler.client import TallyfyClient
from scheduler.clock import utc_iso
from scheduler.job import CreateTask, Job
from scheduler.lifecycle import FireStatus
from scheduler.store import Fire, Store

# A task in one of these statuses is closed (tallyfy-api.md: task statuses).
CLOSED_TASK_STATUSES = frozenset({"completed", "complete", "archived", "deleted"})


@dataclass(frozen=True, slots=True)
class Running:
    """An earlier fire of the job whose run or task is still open, and how to say so."""

    fire: Fire
    description: str


def find_running(
    store: Store, client: TallyfyClient, job: Job, fire: Fire, *, now: datetime
) -> Running | None:
    """The newest earlier fire of `job` (other than `fire`) whose item is still open, or None
    when every one is closed. Raises ApiError when a look-up fails (module docstring)."""
    kind = "task" if isinstance(job.action, CreateTask) else "run"
    closed: list[int] = []
    try:
        for earlier in store.maybe_running(job.id, exclude_fire_id=fire.id):
            when = utc_iso(earlier.scheduled_for)
            if earlier.status is not FireStatus.SUCCEEDED:
                return Running(
                    earlier, f"the fire of {when} is still {earlier.status} (its {kind} may exist)"
                )
            assert earlier.remote_id is not None  # maybe_running: succeeded ones have one
            item = _read(client, kind, earlier.remote_id)
            if item is None or _closed(kind, item):
                closed.append(earlier.id)
                continue
            name = item.get("name") if kind == "run" else item.get("title")
            return Running(
                earlier, f"{kind} {earlier.remote_id} ({name!r}, fired for {when}) is still open"
            )
        return None
    finally:
        if closed:
            store.mark_closed(closed, now=now)


def _read(client: TallyfyClient, kind: str, remote_id: str) -> Mapping[str, Any] | None:
    """The run or task as the API shows it now; None when it is gone (404)."""
    if kind == "run":
        return unless_gone(lambda: client.get_run(remote_id))
    return unless_gone(lambda: client.get_task(remote_id))


def _closed(kind: str, item: Mapping[str, Any]) -> bool:
    if kind == "run":
        return closed_state(item) is not None
    status = str(item.get("status") or "")
    return status in CLOSED_TASK_STATUSES or any(
        item.get(key) for key in ("completed_at", "archived_at", "deleted_at")
    )
