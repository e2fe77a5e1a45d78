"""The frozen domain Job: one schedule and one action (docs/jobs.md).

A `Job` is built only from a validated document (`definitions.py` checks job files and stored
documents and is the one place that constructs Jobs from user input); once built it is
immutable and its compiled pieces (`cron`, `zone`) are computed once and cached.

`Job.to_document()` is the canonical JSON-able form stored in the database: every default
resolved, durations as strings (`1h30m`), instants as ISO 8601 in UTC, templates and time
expressions as the text the user wrote. `definitions.job_from_document` turns it back into a
Job.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from scheduler.config import DEFAULT_CATCH_UP, DEFAULT_CATCH_UP_WINDOW, CatchUpPolicy
from scheduler.cron import CronSchedule, parse_schedule
from scheduler.durations import format_duration
from scheduler.templates import Template
from scheduler.timeexpr import TimeExpression

# One microsecond: cron instants are whole seconds, so "strictly after start_at - 1 µs"
# includes start_at itself.
_TICK = timedelta(microseconds=1)


class TaskType(StrEnum):
    """The five kinds of one-off task the API accepts (tallyfy-api.md 3.1)."""

    TASK = "task"  # an ordinary to-do
    APPROVAL = "approval"  # approve or reject
    EXPIRING = "expiring"  # completes itself at the deadline unless acted on
    EMAIL = "email"  # a drafted email to send
    EXPIRING_EMAIL = "expiring_email"  # an email that is sent at the deadline


@dataclass(frozen=True, slots=True)
class Passthrough:
    """A JSON value sent as written (dropdown `{id, text}`, table rows, form fields, ...).

    Kept as canonical JSON text so the Job stays immutable; `value` is a fresh copy each time.
    """

    json: str

    @classmethod
    def of(cls, value: Any) -> Passthrough:
        return cls(json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False))

    @property
    def value(self) -> Any:
        return json.loads(self.json)


@dataclass(frozen=True, slots=True)
class At:
    """A kick-off value `{ at = "+2bd@17:00" }`: an instant computed for each fire."""

    at: TimeExpression


PrerunValue = Template | At | Passthrough


# A member of the organization: a user id, or the member's email, resolved to the id at fire
# time from the organization's members (`scheduler/members.py`).
Member = int | str


@dataclass(frozen=True, slots=True)
class Owners:
    """Assignees: members (user ids, or member emails), group ids (32 hex), guests (emails)."""

    users: tuple[Member, ...] = ()
    groups: tuple[str, ...] = ()
    guests: tuple[str, ...] = ()

    def is_empty(self) -> bool:
        return not (self.users or self.groups or self.guests)

    def to_json(self) -> dict[str, list[Any]]:
        """The API's shape; all three keys, always (`{"users", "guests", "groups"}`); member
        emails as written (`actions.py` sends them resolved to ids)."""
        return {"users": list(self.users), "guests": list(self.guests), "groups": list(self.groups)}


@dataclass(frozen=True, slots=True)
class StepOverride:
    """Per-step overrides at launch: a deadline and/or assignees for one template step."""

    deadline: TimeExpression | None = None
    owners: Owners | None = None


# Most jobs have no step overrides or extra task keys: one shared read-only empty mapping saves
# ~100 bytes per job (100,000 stored jobs are loaded at once; bench/README.md, figure 1).
_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _frozen(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if not mapping:
        return _EMPTY
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, slots=True)
class LaunchOptions:
    """The launch fields most jobs leave out (tallyfy-api.md 2.1), kept apart so that a launch
    without any costs one empty slot: roles (org role id -> its members), process folders, the
    owner and the starter (members), the parent run, and two flags."""

    roles: Mapping[str, Owners] = field(default_factory=lambda: _frozen(None))
    folders: tuple[str, ...] = ()
    owner_id: Member | None = None
    user_id: Member | None = None
    parent_id: str | None = None
    is_public: bool | None = None
    starred: bool | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "roles", _frozen(dict(sorted(self.roles.items()))))

    def to_document(self) -> dict[str, Any]:
        """The keys that are set, as a job file writes them."""
        doc: dict[str, Any] = {}
        if self.roles:
            doc["roles"] = {role: owners.to_json() for role, owners in self.roles.items()}
        if self.folders:
            doc["folders"] = list(self.folders)
        for key in ("owner_id", "user_id", "parent_id", "is_public", "starred"):
            value = getattr(self, key)
            if value is not None:
                doc[key] = value
        return doc


@dataclass(frozen=True, slots=True)
class LaunchProcess:
    """Launch a process from a template: POST /organizations/{org}/runs."""

    type: ClassVar[str] = "launch_process"

    checklist_id: str
    name: Template
    summary: Template | None = None
    tags: tuple[str, ...] = ()
    users: tuple[Member, ...] = ()
    groups: tuple[str, ...] = ()
    prerun: Mapping[str, PrerunValue] = field(default_factory=lambda: _frozen(None))
    tasks: Mapping[str, StepOverride] = field(default_factory=lambda: _frozen(None))
    options: LaunchOptions | None = None

    def __post_init__(self) -> None:
        # Read-only views, so the Job cannot change; sorted by id, so the request body is the
        # same whatever order a file or a database (PostgreSQL JSONB reorders keys) gave.
        object.__setattr__(self, "prerun", _frozen(dict(sorted(self.prerun.items()))))
        object.__setattr__(self, "tasks", _frozen(dict(sorted(self.tasks.items()))))

    def to_document(self) -> dict[str, Any]:
        prerun: dict[str, Any] = {}
        for key, value in self.prerun.items():
            if isinstance(value, At):
                prerun[key] = {"at": value.at.text}
            elif isinstance(value, Passthrough):
                prerun[key] = value.value
            else:
                prerun[key] = value.text
        tasks: dict[str, Any] = {}
        for step, override in self.tasks.items():
            entry: dict[str, Any] = {}
            if override.deadline is not None:
                entry["deadline"] = override.deadline.text
            if override.owners is not None:
                entry["owners"] = override.owners.to_json()
            tasks[step] = entry
        doc: dict[str, Any] = {"type": self.type, "checklist_id": self.checklist_id}
        doc["name"] = self.name.text
        if self.summary is not None:
            doc["summary"] = self.summary.text
        doc.update(
            tags=list(self.tags),
            users=list(self.users),
            groups=list(self.groups),
            prerun=prerun,
            tasks=tasks,
        )
        if self.options is not None:
            doc.update(self.options.to_document())
        return doc


@dataclass(frozen=True, slots=True)
class CreateTask:
    """Create a one-off task: POST /organizations/{org}/tasks.

    `extra` holds the keys passed through after validation (tags, form_fields, webhook,
    separate_task_for_each_assignee, max_assignable, everyone_must_complete,
    can_complete_only_assignees, prevent_guest_comment, top_secret, is_soft_start_date).
    `summary` is the task's text, written `summary` or `description` in a job file; it is sent
    under both names (`actions.py`).
    """

    type: ClassVar[str] = "create_task"

    title: Template
    owners: Owners
    deadline: TimeExpression
    started_at: TimeExpression
    task_type: TaskType = TaskType.TASK
    summary: Template | None = None
    run_from_job: str | None = None
    run_id: str | None = None
    extra: Mapping[str, Passthrough] = field(default_factory=lambda: _frozen(None))

    def __post_init__(self) -> None:
        object.__setattr__(self, "extra", _frozen(self.extra))

    def to_document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "type": self.type,
            "title": self.title.text,
            "task_type": self.task_type.value,
        }
        if self.summary is not None:
            doc["summary"] = self.summary.text
        doc["owners"] = self.owners.to_json()
        doc["started_at"] = self.started_at.text
        doc["deadline"] = self.deadline.text
        if self.run_from_job is not None:
            doc["run_from_job"] = self.run_from_job
        if self.run_id is not None:
            doc["run_id"] = self.run_id
        for key in sorted(self.extra):
            doc[key] = self.extra[key].value
        return doc


Action = LaunchProcess | CreateTask


@dataclass(frozen=True, slots=True)
class SkipOn:
    """`skip_on`: the days on which the job's instants are skipped, never fired.

    `holidays`: the `[calendar]` holidays (configured dates and the country's public holidays,
    not weekends); `dates`: blackout ranges (first, last), inclusive, as written (one date is a
    range of one day). Days are dates in the job's zone (`scheduler/skipdays.py` decides).
    """

    holidays: bool = False
    dates: tuple[tuple[date, date], ...] = ()

    def to_document(self) -> list[str]:
        """As a job file writes it: `"holidays"`, `"2026-12-24"`, `"2026-12-28/2027-01-01"`."""
        out = ["holidays"] if self.holidays else []
        for first, last in self.dates:
            out.append(first.isoformat() if first == last else f"{first}/{last}")
        return out


class Overlap(StrEnum):
    """What a fire does while what its job launched before is still open (docs/jobs.md,
    "overlap"): the Tallyfy-aware part of Temporal's overlap policies."""

    ALLOW = "allow"  # fire whatever is open (a generic scheduler's behaviour; the default)
    SKIP = "skip"  # record the instant skipped, naming the open run or task
    BUFFER_ONE = "buffer_one"  # hold the newest instant; send it once the open item closes


# How often a held instant asks again whether what it waits for has closed.
DEFAULT_OVERLAP_CHECK_EVERY = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Job:
    """One validated job: a cron schedule in a zone, an action, and the firing policy.

    Instants (`start_at`, `end_at`) are aware UTC. The window is inclusive at both ends: a
    scheduled instant fires when `start_at <= instant <= end_at`. `source` says where the job
    was defined (a file path); it is not part of the definition and not compared.

    Slotted (no per-instance `__dict__`): the daemon holds every stored job in memory.
    """

    id: str
    schedule: str
    timezone: str
    action: Action
    description: str = ""
    enabled: bool = True
    catch_up: CatchUpPolicy = DEFAULT_CATCH_UP
    catch_up_window: timedelta = DEFAULT_CATCH_UP_WINDOW
    jitter: timedelta = timedelta(0)
    start_at: datetime | None = None
    end_at: datetime | None = None
    max_fires: int | None = None
    alert: tuple[str, ...] = ()  # alert targets of its incidents (none: the default target)
    skip_on: SkipOn | None = None
    # Paused by the breaker after this many consecutive fires the API rejected (0: never).
    pause_after_failures: int = 0
    overlap: Overlap = Overlap.ALLOW
    overlap_check_every: timedelta = DEFAULT_OVERLAP_CHECK_EVERY
    source: str | None = field(default=None, compare=False)

    def __hash__(self) -> int:
        # The generated hash would fail on the action's read-only mappings; equal jobs share
        # an id, so hashing the id is consistent with ==.
        return hash(self.id)

    @property
    def zone(self) -> ZoneInfo:
        """The job's zone (schedule, templates and time expressions); ZoneInfo caches it."""
        return ZoneInfo(self.timezone)

    @property
    def cron(self) -> CronSchedule:
        """The compiled schedule (raises ScheduleError).

        Not kept on the job: `parse_schedule` keeps the recently used ones (a bounded cache),
        so 100,000 loaded jobs do not hold 100,000 compiled schedules (~0.5 KB each) while
        only the few about to fire need theirs. A job's schedule compiled again after
        eviction costs ~6 us, against a fire's ~1 ms.
        """
        return parse_schedule(self.schedule, self.zone, job_id=self.id)

    @property
    def schedule_key(self) -> str:
        """A hash of (schedule, timezone): it changes exactly when the instants may change."""
        return schedule_key(self.schedule, self.timezone)

    def fires_after(self, after: datetime) -> Iterator[datetime]:
        """Scheduled instants strictly after `after` inside [start_at, end_at], aware UTC."""
        start = after
        if self.start_at is not None and self.start_at - _TICK > after:
            start = self.start_at - _TICK
        for instant in self.cron.iter_after(start):
            if self.end_at is not None and instant > self.end_at:
                return
            yield instant

    def next_fire(self, after: datetime, *, fires_so_far: int = 0) -> datetime | None:
        """The next instant strictly after `after`, or None when the job is done.

        `fires_so_far` is the number of successful fires, checked against `max_fires`.
        """
        if self.max_fires is not None and fires_so_far >= self.max_fires:
            return None
        return next(self.fires_after(after), None)

    def in_window(self, instant: datetime) -> bool:
        """True when `instant` lies inside [start_at, end_at]."""
        if self.start_at is not None and instant < self.start_at:
            return False
        return self.end_at is None or instant <= self.end_at

    def to_document(self) -> dict[str, Any]:
        """The canonical JSON-able definition (defaults resolved); read back by
        `definitions.job_from_document`."""
        doc: dict[str, Any] = {
            "id": self.id,
            "description": self.description,
            "schedule": self.schedule,
            "timezone": self.timezone,
            "enabled": self.enabled,
            "catch_up": self.catch_up.value,
            "catch_up_window": format_duration(self.catch_up_window),
            "jitter": format_duration(self.jitter),
        }
        if self.start_at is not None:
            doc["start_at"] = self.start_at.isoformat()
        if self.end_at is not None:
            doc["end_at"] = self.end_at.isoformat()
        if self.max_fires is not None:
            doc["max_fires"] = self.max_fires
        if self.alert:
            doc["alert"] = list(self.alert)
        if self.skip_on is not None:
            doc["skip_on"] = self.skip_on.to_document()
        if self.pause_after_failures:  # absent when off: older stored documents stay equal
            doc["pause_after_failures"] = self.pause_after_failures
        if self.overlap is not Overlap.ALLOW:  # likewise
            doc["overlap"] = self.overlap.value
            doc["overlap_check_every"] = format_duration(self.overlap_check_every)
        doc["action"] = self.action.to_document()
        return doc


def schedule_key(schedule: str, timezone: str) -> str:
    """32 hex chars identifying (schedule, timezone); whitespace and letter case do not count."""
    canonical = " ".join(schedule.split()).upper() + "\n" + timezone
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]
