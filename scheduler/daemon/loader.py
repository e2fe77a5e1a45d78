"""The job loader: what changed among the stored jobs since the last look, as `Load` messages.

Runs on the daemon's main thread: reading and validating definitions (the costly part of a
reload) happens there, and the planner only swaps in the result. The loader remembers which
version (`updated_at`) of each job it handed over; that memory is its own, the planner's state
is the planner's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from scheduler.config import Settings
from scheduler.daemon.planner import Load, Loaded
from scheduler.definitions import job_from_document
from scheduler.errors import SchedulerError
from scheduler.store import Store

log = logging.getLogger(__name__)

ONE_MICROSECOND = timedelta(microseconds=1)
# Jobs per `Load` message: 100,000 definitions are never all held at once.
LOAD_BATCH = 1000


class JobLoader:
    """Turns the store's enabled jobs into `Load` messages for the planner; tells
    `on_quarantined(job id, reason)` of each stored job that no longer validates."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        on_quarantined: Callable[[str, str], None] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.on_quarantined = on_quarantined
        self._seen: dict[str, datetime] = {}  # job id -> `updated_at` of the version loaded
        self._revision = -1
        # Published for other threads (the metrics), replaced whole at each load: the ids
        # of the stored jobs that are not enabled (paused, or `enabled = false`).
        self.paused: frozenset[str] = frozenset()

    @property
    def revision(self) -> int:
        """The jobs revision last loaded (-1: none yet)."""
        return self._revision

    def changes(self, *, force: bool = False, plan: bool = False) -> Iterator[Load]:
        """`Load` messages for what changed since the last call (everything, the first time);
        nothing when the store's jobs revision has not moved, unless `force`.

        Consume it whole: the revision is recorded at the end, so a store failure half-way
        (StoreError) makes the next call look again. `plan` is passed on to each message.
        """
        revision = self.store.jobs_revision()
        if revision == self._revision and not force:
            return
        accounted: dict[str, datetime] | None = None
        watermarks: dict[str, datetime] = {}
        enabled: set[str] = set()
        paused: set[str] = set()
        batch: list[Loaded] = []
        for row in self.store.iter_jobs():
            if not row.enabled:
                paused.add(row.id)
                continue
            job_id = row.id
            enabled.add(job_id)
            if self._seen.get(job_id) == row.updated_at:
                continue
            try:
                job = job_from_document(row.definition, self.settings)
            except SchedulerError as exc:
                # Never delete a user's job on our own: leave it stored, say why it is idle.
                log.error("job quarantined job=%s: stored definition invalid: %s", job_id, exc)
                if self.on_quarantined is not None:
                    self.on_quarantined(job_id, str(exc))
                enabled.discard(job_id)
                continue
            floor = row.active_since
            if job.start_at is not None:
                floor = max(floor, job.start_at - ONE_MICROSECOND)
            if accounted is None:
                accounted = self.store.accounted_until()
                watermarks = self.store.watermarks()
            pruned_before = watermarks.get(job.id)
            if pruned_before is not None:
                # History retention: instants below the watermark are never claimed (history
                # no longer says whether they were sent).
                floor = max(floor, pruned_before - ONE_MICROSECOND)
            batch.append(Loaded(job, floor, accounted.get(job.id)))
            self._seen[job.id] = row.updated_at
            if len(batch) >= LOAD_BATCH:
                yield Load(batch, plan=plan)
                batch = []
        removed = [job_id for job_id in self._seen if job_id not in enabled]
        for job_id in removed:
            del self._seen[job_id]
        if batch or removed:
            yield Load(batch, removed, plan=plan)
        self._revision = revision
        self.paused = frozenset(paused)
        log.info("jobs loaded revision=%d jobs=%d", revision, len(self._seen))
