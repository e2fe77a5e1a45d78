"""Job files -> validated, frozen Jobs, with every error of every file collected.

Two entry points, one set of checks (shared/spec/jobs.md, "Validation"):

- `load_job_files(paths, settings, now)` for `jobs validate` and `jobs apply`: reads TOML files
  (a folder means the `*.toml` files directly inside it, sorted by name; sub-folders are not
  searched), checks every key, type and value, then renders every template and resolves every
  time expression for the job's next fire after `now`, and raises one `DefinitionError` whose
  Problems name the file, the line (when it can be found), the dotted key and the value.
- `job_from_document(doc, settings)` for the daemon: a stored canonical document (see
  `Job.to_document`) back to a Job, with the same structural checks but no rendering, so that
  loading 100,000 stored jobs stays cheap (parsed templates and time expressions are shared
  through small caches: they are immutable).
"""

from __future__ import annotations

import difflib
import json
import math
import re
import sys
import tomllib
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from scheduler.clock import parse_instant, to_utc
from scheduler.config import CatchUpPolicy, Settings, is_valid_zone
from scheduler.cron import parse_schedule
from scheduler.durations import format_duration, parse_duration
from scheduler.errors import (
    DefinitionError,
    InvalidInput,
    Problem,
    Problems,
    ScheduleError,
    problem,
)
from scheduler.job import (
    Action,
    At,
    CreateTask,
    Job,
    LaunchProcess,
    Owners,
    Passthrough,
    PrerunValue,
    StepOverride,
    TaskType,
)
from scheduler.templates import FIRE_NAMES, Template, fire_values, parse_template
from scheduler.timeexpr import BusinessCalendar, TimeExpression, parse_time_expression

JOB_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
HEX_ID = re.compile(r"[0-9a-f]{32}")
EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")
NAME_MAX_LENGTH = 550  # POST /runs rejects longer names (tallyfy-api.md 2.1)
# A fire's delay is meant to spread load, not to move it to another day; a longer one would
# also make mapping a jittered fire time back to its instant scan a huge stretch of instants.
MAX_JITTER = timedelta(days=1)
# About ten years, like a time expression's terms: `now - window` must stay a representable date.
MAX_CATCH_UP_WINDOW = timedelta(days=3660)
TITLE_MAX_LENGTH = 600  # POST /tasks rejects longer titles (tallyfy-api.md 3.1)
TEXT_MAX_LENGTH = 30_000  # summaries and kick-off text: the API's longest text field (textarea)
SHOWN_MAX_LENGTH = 200  # a longer value is shown cut short in a message (the file has it all)
WINDOW_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)  # start_at and end_at lie in [this, LATEST)
WINDOW_LATEST = datetime(9000, 1, 1, tzinfo=UTC)
DEFAULT_STARTED_AT = "+0"  # a task starts at the fire's scheduled instant

# `deadline` is a create_task value; a launch has no single deadline to offer its templates.
LAUNCH_NAMES = FIRE_NAMES - {"deadline"}
TASK_NAMES = FIRE_NAMES

JOB_KEYS = tuple(
    "id description schedule timezone enabled catch_up catch_up_window jitter start_at end_at "
    "max_fires action".split()
)
ACTION_TYPES = ("launch_process", "create_task")
LAUNCH_KEYS = tuple("type checklist_id name summary tags users groups prerun tasks".split())
TASK_BOOL_KEYS = tuple(
    "separate_task_for_each_assignee everyone_must_complete can_complete_only_assignees "
    "prevent_guest_comment top_secret".split()
)
TASK_KEYS = (
    *"type title task_type summary owners started_at deadline run_from_job run_id".split(),
    *"tags form_fields webhook max_assignable".split(),
    *TASK_BOOL_KEYS,
)
OWNERS_KEYS = ("users", "groups", "guests")
STEP_KEYS = ("deadline", "owners")
FORM_FIELD_REQUIRED = ("label", "field_type", "required")

Path_ = tuple[str, ...]
_ABSENT: Any = object()  # a key not in its table (`_Reader.get`)
T = TypeVar("T")


# -- public API ---------------------------------------------------------------------------------


def job_files(paths: Sequence[Path]) -> tuple[list[Path], list[Problem]]:
    """The job files named by `paths`: files as given, folders as their `*.toml` (sorted).

    Folders are not searched recursively. A path named twice counts once.
    """
    files: list[Path] = []
    problems: list[Problem] = []
    seen: set[Path] = set()
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.glob("*.toml") if p.is_file())
            if not found:
                problems.append(problem("no job files (*.toml) in this folder", file=str(path)))
        elif path.is_file():
            found = [path]
        else:
            problems.append(problem("no such file or folder", file=str(path)))
            continue
        for file in found:
            if file.resolve() not in seen:
                seen.add(file.resolve())
                files.append(file)
    return files, problems


def load_job_files(paths: Sequence[Path], settings: Settings, now: datetime) -> list[Job]:
    """Read, check and render every job file; the Jobs in file order, or one DefinitionError.

    `now` picks the fire every template and time expression is tried against (the next one).
    """
    files, problems = job_files(paths)
    checker = _RenderCheck(settings, now)
    jobs: list[Job] = []
    first_file: dict[str, str] = {}
    for file in files:
        label = str(file)
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            problems.append(problem(f"cannot read: {reason}", file=label))
            continue
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            problems.append(_toml_problem(exc, label, text))
            continue
        except RecursionError:  # tomllib parses nested arrays and tables recursively
            problems.append(problem("invalid TOML: arrays or tables nested too deeply", file=label))
            continue
        reader = _Reader(settings, file=label, lines=key_lines(text))
        job = reader.job(doc, default_id=file.stem, source=label)
        if job is not None:
            checker.check(job, reader)
        problems.extend(reader.problems)
        if reader.job_id is not None:
            if reader.job_id in first_file:
                problems.append(
                    problem(
                        f"duplicate job id: {first_file[reader.job_id]} defines it too",
                        file=label,
                        line=reader.line_of(("id",)),
                        key="id",
                        value=reader.job_id,
                    )
                )
                continue
            first_file[reader.job_id] = label
        if job is not None and not reader.problems:
            jobs.append(job)
    if problems:
        raise DefinitionError(problems)
    return jobs


def validate_documents(
    docs: Iterable[Mapping[str, Any]], settings: Settings, now: datetime
) -> list[Job]:
    """Like `load_job_files` for documents already parsed (each must carry its `id`)."""
    checker = _RenderCheck(settings, now)
    problems: list[Problem] = []
    jobs: list[Job] = []
    seen: set[str] = set()
    for index, doc in enumerate(docs):
        label = f"<job {doc.get('id', index)!s}>" if isinstance(doc, Mapping) else f"<{index}>"
        reader = _Reader(settings, file=label, lines=None)
        job = reader.job(doc, default_id=None, source=None)
        if job is not None:
            checker.check(job, reader)
        problems.extend(reader.problems)
        if job is not None and not reader.problems:
            if job.id in seen:
                problems.append(problem("duplicate job id", file=label, key="id", value=job.id))
            seen.add(job.id)
            jobs.append(job)
    if problems:
        raise DefinitionError(problems)
    return jobs


def job_from_document(doc: Mapping[str, Any], settings: Settings) -> Job:
    """A stored document back to a Job: structural checks only; DefinitionError if bad."""
    job = _common_stored_job(doc, settings)
    if job is not None:
        return job
    label = f"<stored job {doc.get('id')!s}>" if isinstance(doc, Mapping) else "<stored job>"
    reader = _Reader(settings, file=label, lines=None)
    job = reader.job(doc, default_id=None, source=None)
    if job is None or reader.problems:
        raise DefinitionError(reader.problems)
    return job


def check_run_from_job(
    jobs: Sequence[Job], stored: Iterable[Mapping[str, Any]], *, prune: bool = False
) -> None:
    """Every `run_from_job` must name a launch_process job that exists after the apply.

    `stored` are the definitions already in the store; with `prune` only `jobs` will remain.
    """
    kinds: dict[str, str] = {}
    if not prune:
        for definition in stored:
            action = definition.get("action")
            if isinstance(action, Mapping):
                kinds[str(definition.get("id"))] = str(action.get("type"))
    kinds.update({job.id: job.action.type for job in jobs})
    problems: list[Problem] = []
    for job in jobs:
        target = job.action.run_from_job if isinstance(job.action, CreateTask) else None
        if target is None:
            continue
        if target not in kinds:
            message = "no job has this id (in the files applied or in the store)"
        elif kinds[target] != LaunchProcess.type:
            message = f"names a {kinds[target]} job: it must name a launch_process job"
        else:
            continue
        problems.append(problem(message, file=job.source, key="action.run_from_job", value=target))
    if problems:
        raise DefinitionError(problems)


# -- the common stored document, checked in one pass ---------------------------------------------

# The daemon re-checks every stored document when it loads (100,000 at startup). `_Reader`
# records a Problem per fault and never stops early, which costs ~15 us a document in calls
# and bookkeeping even when there is no fault. `_common_stored_job` makes the same checks on
# the common shapes in one straight pass, with the same parsers, and gives up (None) at the
# first thing that is not plainly valid or that it does not handle (start_at, end_at,
# max_fires, step overrides, task extras, a run link, any value of an unexpected type): the
# full reader then decides and reports. So it accepts only documents the full reader
# accepts, and builds the same Job (tests/test_definitions.py checks both, on mutated
# documents). ~7 us a document.

_JOB_KEY_SET = frozenset(JOB_KEYS)
_LAUNCH_KEY_SET = frozenset(LAUNCH_KEYS)
_TASK_COMMON_KEYS = frozenset("type title task_type summary owners started_at deadline".split())
_OWNERS_KEY_SET = frozenset(OWNERS_KEYS)


def _hex_ids(values: Any) -> tuple[str, ...] | None:
    if type(values) is not list:
        return None
    for value in values:
        if type(value) is not str or not HEX_ID.fullmatch(value):
            return None
    return tuple(values)


def _user_ids(values: Any) -> tuple[int, ...] | None:
    if type(values) is not list:
        return None
    for value in values:
        if type(value) is not int or value <= 0:
            return None
    return tuple(values)


def _emails(values: Any) -> tuple[str, ...] | None:
    if type(values) is not list:
        return None
    for value in values:
        if type(value) is not str or not EMAIL.fullmatch(value):
            return None
    return tuple(values)


def _opt_template(table: dict[str, Any], key: str, allowed: frozenset[str]) -> Any:
    """The parsed template, None when absent, _ABSENT when not a string (give up)."""
    text = table.get(key, _ABSENT)
    if text is _ABSENT:
        return None
    if type(text) is not str:
        return _ABSENT
    return _template(text, allowed)


def _common_launch(table: dict[str, Any]) -> LaunchProcess | None:
    if not _LAUNCH_KEY_SET.issuperset(table):
        return None
    checklist_id = table.get("checklist_id")
    name = table.get("name")
    if type(checklist_id) is not str or not HEX_ID.fullmatch(checklist_id):
        return None
    if type(name) is not str:
        return None
    summary = _opt_template(table, "summary", LAUNCH_NAMES)
    tags = _hex_ids(table.get("tags", []))
    users = _user_ids(table.get("users", []))
    groups = _hex_ids(table.get("groups", []))
    raw_prerun = table.get("prerun", {})
    tasks = table.get("tasks", {})
    if (
        summary is _ABSENT
        or tags is None
        or users is None
        or groups is None
        or type(raw_prerun) is not dict
        or type(tasks) is not dict
        or tasks
    ):
        return None
    prerun: dict[str, PrerunValue] = {}
    for key, value in raw_prerun.items():
        if not HEX_ID.fullmatch(key):
            return None
        kind = type(value)
        if kind is str:
            prerun[key] = _template(value, LAUNCH_NAMES)
        elif kind is dict and "at" in value:
            at = value["at"]
            if len(value) != 1 or type(at) is not str:
                return None
            prerun[key] = At(_time_expression(at))
        elif kind is not dict and isinstance(value, str | dict):
            return None  # a subclass: the full reader
        elif _json_problem(value) is None:
            prerun[key] = Passthrough.of(value)
        else:
            return None
    return LaunchProcess(
        checklist_id=checklist_id,
        name=_template(name, LAUNCH_NAMES),
        summary=summary,
        tags=tags,
        users=users,
        groups=groups,
        prerun=prerun,
    )


def _common_task(table: dict[str, Any]) -> CreateTask | None:
    if not _TASK_COMMON_KEYS.issuperset(table):
        return None  # extras and run links: the full reader
    title = table.get("title")
    kind = table.get("task_type", TaskType.TASK.value)
    owners_table = table.get("owners")
    started_at = table.get("started_at", DEFAULT_STARTED_AT)
    deadline = table.get("deadline")
    if (
        type(title) is not str
        or type(kind) is not str
        or type(owners_table) is not dict
        or type(started_at) is not str
        or type(deadline) is not str
        or not _OWNERS_KEY_SET.issuperset(owners_table)
    ):
        return None
    task_type = _TASK_TYPES.get(kind)
    summary = _opt_template(table, "summary", TASK_NAMES)
    users = _user_ids(owners_table.get("users", []))
    groups = _hex_ids(owners_table.get("groups", []))
    guests = _emails(owners_table.get("guests", []))
    if task_type is None or summary is _ABSENT or users is None or groups is None:
        return None
    if guests is None or not (users or groups or guests):
        return None
    return CreateTask(
        title=_template(title, TASK_NAMES),
        owners=Owners(users=users, groups=groups, guests=guests),
        deadline=_time_expression(deadline),
        started_at=_time_expression(started_at),
        task_type=task_type,
        summary=summary,
    )


def _common_stored_job(doc: Any, settings: Settings) -> Job | None:
    """The Job of a plainly valid stored document of a common shape, else None (see above)."""
    if type(doc) is not dict or not _JOB_KEY_SET.issuperset(doc):
        return None
    if "start_at" in doc or "end_at" in doc or "max_fires" in doc:
        return None
    job_id = doc.get("id")
    schedule = doc.get("schedule")
    description = doc.get("description", "")
    timezone = doc.get("timezone", _ABSENT)
    enabled = doc.get("enabled", True)
    policy = doc.get("catch_up", _ABSENT)
    window = doc.get("catch_up_window", _ABSENT)
    jitter = doc.get("jitter", _ABSENT)
    action = doc.get("action")
    if (
        type(job_id) is not str
        or type(schedule) is not str
        or type(description) is not str
        or type(enabled) is not bool
        or type(action) is not dict
        or not JOB_ID.fullmatch(job_id)
    ):
        return None
    scheduler = settings.scheduler
    if timezone is _ABSENT:
        timezone = scheduler.timezone
    elif type(timezone) is not str or not is_valid_zone(timezone):
        return None
    if policy is _ABSENT:
        policy = scheduler.catch_up
    elif type(policy) is not str or (policy := _CATCH_UP_POLICIES.get(policy)) is None:
        return None
    try:
        if window is _ABSENT:
            window = scheduler.catch_up_window
        elif type(window) is not str or (window := _duration(window)) > MAX_CATCH_UP_WINDOW:
            return None
        if jitter is _ABSENT:
            jitter = timedelta(0)
        elif type(jitter) is not str or (jitter := _duration(jitter)) > MAX_JITTER:
            return None
        kind = action.get("type")
        if kind == LaunchProcess.type:
            parsed: Action | None = _common_launch(action)
        elif kind == CreateTask.type:
            parsed = _common_task(action)
        else:
            return None
        if parsed is None:
            return None
        job = Job(
            id=job_id,
            schedule=sys.intern(schedule),
            timezone=sys.intern(timezone),
            action=parsed,
            description=description,
            enabled=enabled,
            catch_up=policy,
            catch_up_window=window,
            jitter=jitter,
        )
        job.cron  # noqa: B018 - compiled once, here: the cached schedule is the validation
    except ValueError:  # InvalidInput included: a template, expression, duration or schedule
        return None
    return job


# -- TOML positions -----------------------------------------------------------------------------

_PART = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
_DOTTED = rf"{_PART}(?:[ \t]*\.[ \t]*{_PART})*"
_HEADER = re.compile(rf"^\s*\[\[?\s*({_DOTTED})\s*\]\]?")
_ASSIGN = re.compile(rf"^\s*({_DOTTED})\s*=")
_AT_LINE = re.compile(r"\s*\(at line (\d+), column (\d+)\)")


def _key_parts(dotted: str) -> Path_:
    parts = []
    for raw in re.findall(_PART, dotted):
        if raw.startswith('"'):
            try:
                parts.append(str(json.loads(raw)))
            except ValueError:
                parts.append(raw[1:-1])
        elif raw.startswith("'"):
            parts.append(raw[1:-1])
        else:
            parts.append(raw)
    return tuple(parts)


def key_lines(text: str) -> dict[Path_, int]:
    """Best effort: the line (1-based) where each table header or `key =` of a TOML text is.

    Keys inside inline tables are not indexed; a Problem there gets its parent key's line.
    """
    lines: dict[Path_, int] = {}
    table: Path_ = ()
    in_multiline: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if in_multiline is not None:
            if line.count(in_multiline) % 2 == 1:
                in_multiline = None
            continue
        header = _HEADER.match(line)
        if header:
            table = _key_parts(header.group(1))
            lines.setdefault(table, number)
            continue
        assign = _ASSIGN.match(line)
        if assign:
            lines.setdefault(table + _key_parts(assign.group(1)), number)
            rest = line[assign.end() :]
            for quote in ('"""', "'''"):
                if rest.count(quote) % 2 == 1:
                    in_multiline = quote
    return lines


def _toml_problem(exc: tomllib.TOMLDecodeError, file: str, text: str) -> Problem:
    message = str(exc)
    line: int | None = None
    found = _AT_LINE.search(message)
    if found:
        line = int(found.group(1))
        message = message[: found.start()] + message[found.end() :]
    elif "end of document" in message:
        line = max(1, len(text.splitlines()))
        message = message.replace(" (at end of document)", "")
    return problem(f"invalid TOML: {message}", file=file, line=line)


# -- shared parsing caches: Templates and TimeExpressions are immutable ------------------------


@lru_cache(maxsize=8192)
def _template(text: str, allowed: frozenset[str]) -> Template:
    return parse_template(text, allowed=allowed)


@lru_cache(maxsize=8192)
def _time_expression(text: str) -> TimeExpression:
    return parse_time_expression(text)


@lru_cache(maxsize=1024)
def _duration(text: str) -> timedelta:
    return parse_duration(text)


def _nested(exc: InvalidInput) -> list[str]:
    """The messages of an error from a lower module, keeping any field/value they name.

    The value itself is not repeated: the Problem we record shows it.
    """
    out = []
    for p in exc.problems:
        if p.key:
            shown = f" = {p.value!r}" if p.has_value else ""
            out.append(f"{p.key}{shown}: {p.message}")
        else:
            out.append(p.message)
    return out or [str(exc)]


def _suggest(key: str, known: Collection[str]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    if close:
        return f"unknown key: did you mean {close[0]!r}?"
    return f"unknown key (known keys: {', '.join(known)})"


def _json_problem(value: Any) -> str | None:
    """Why `value` cannot be sent as JSON, or None if it can."""
    if isinstance(value, str | bool | int):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else "not a finite number"
    if isinstance(value, datetime | date | time):
        return "TOML dates and times are not JSON: write the value as a string"
    if isinstance(value, list):
        for item in value:
            reason = _json_problem(item)
            if reason:
                return reason
        return None
    if isinstance(value, dict):
        for item in value.values():
            reason = _json_problem(item)
            if reason:
                return reason
        return None
    return f"unsupported value of type {type(value).__name__}"


_TYPE_NAMES: dict[type, str] = {
    str: "a string",
    int: "a whole number",
    bool: "true or false",
    dict: "a table",
    list: "a list",
}


# -- one document -------------------------------------------------------------------------------


class _Reader:
    """Reads one job document into a Job, recording a Problem per fault (never stopping early)."""

    def __init__(self, settings: Settings, *, file: str, lines: Mapping[Path_, int] | None) -> None:
        self.settings = settings
        self.problems = Problems(file, lines=lines, shown_max=SHOWN_MAX_LENGTH)
        self.job_id: str | None = None

    # - reporting -

    def line_of(self, path: Path_) -> int | None:
        return self.problems.line_of(path)

    def bad(self, path: Path_, message: str, value: Any = ...) -> None:
        self.problems.add(path, message, value)

    def known(self, table: Mapping[str, Any], path: Path_, keys: Collection[str]) -> None:
        for key in table:
            if key not in keys:
                self.bad((*path, key), _suggest(key, keys), table[key])

    # - typed reads: None when absent or bad (a bad value is recorded) -

    def get(
        self,
        table: Mapping[str, Any],
        path: Path_,
        key: str,
        kind: type[T],
        *,
        required: str | None = None,
    ) -> T | None:
        value = table.get(key, _ABSENT)
        if type(value) is kind:  # the common case, answered first (a bool is not an int)
            return value
        if value is _ABSENT:
            if required is not None:
                self.bad((*path, key), f"required: {required}")
            return None
        # TOML booleans are Python ints: `max_fires = true` must not read as 1.
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            self.bad((*path, key), f"must be {_TYPE_NAMES.get(kind, kind.__name__)}", value)
            return None
        return value

    def parsed(
        self,
        table: Mapping[str, Any],
        path: Path_,
        key: str,
        parse: Callable[[str], T],
        *,
        required: str | None = None,
    ) -> T | None:
        """A string value through `parse`; its ValueError (or InvalidInput) becomes a Problem."""
        text = self.get(table, path, key, str, required=required)
        if text is None:
            return None
        try:
            return parse(text)
        except InvalidInput as exc:
            for message in _nested(exc):
                self.bad((*path, key), message, text)
        except ValueError as exc:
            self.bad((*path, key), str(exc), text)
        return None

    def template(
        self,
        table: Mapping[str, Any],
        path: Path_,
        key: str,
        allowed: frozenset[str],
        *,
        required: str | None = None,
    ) -> Template | None:
        return self.parsed(
            table, path, key, lambda text: _template(text, allowed), required=required
        )

    def time_expression(
        self, table: Mapping[str, Any], path: Path_, key: str, *, required: str | None = None
    ) -> TimeExpression | None:
        return self.parsed(table, path, key, _time_expression, required=required)

    def hex_id(
        self, table: Mapping[str, Any], path: Path_, key: str, *, required: str | None = None
    ) -> str | None:
        value = self.get(table, path, key, str, required=required)
        if value is not None and not HEX_ID.fullmatch(value):
            self.bad((*path, key), "must be a 32-character lowercase hex id", value)
            return None
        return value

    def hex_list(self, table: Mapping[str, Any], path: Path_, key: str) -> tuple[str, ...]:
        values = self.get(table, path, key, list) or []
        out = []
        for value in values:
            if isinstance(value, str) and HEX_ID.fullmatch(value):
                out.append(value)
            else:
                self.bad((*path, key), "each must be a 32-character lowercase hex id", value)
        return tuple(out)

    def user_list(self, table: Mapping[str, Any], path: Path_, key: str) -> tuple[int, ...]:
        values = self.get(table, path, key, list) or []
        out = []
        for value in values:
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                out.append(value)
            else:
                self.bad((*path, key), "each must be a user id (a whole number)", value)
        return tuple(out)

    def email_list(self, table: Mapping[str, Any], path: Path_, key: str) -> tuple[str, ...]:
        values = self.get(table, path, key, list) or []
        out = []
        for value in values:
            if isinstance(value, str) and EMAIL.fullmatch(value):
                out.append(value)
            else:
                self.bad((*path, key), "each must be an email address", value)
        return tuple(out)

    def instant(self, table: Mapping[str, Any], path: Path_, key: str) -> datetime | None:
        if key not in table:
            return None
        value = table[key]
        shown = value.isoformat() if isinstance(value, datetime) else value
        try:
            if isinstance(value, datetime):
                if value.tzinfo is None:
                    self.bad(
                        (*path, key), "needs a UTC offset, e.g. 2026-03-02T09:00:00-05:00", shown
                    )
                    return None
                instant = to_utc(value)
            elif isinstance(value, str):
                instant = parse_instant(value)
            else:
                self.bad((*path, key), "must be an ISO 8601 instant with an offset", value)
                return None
        except (ValueError, OverflowError) as exc:
            self.bad((*path, key), f"not an ISO 8601 instant with an offset: {exc}", shown)
            return None
        if not WINDOW_EARLIEST <= instant < WINDOW_LATEST:
            # Far from either end of what datetime holds, so the window arithmetic (one
            # microsecond before start_at, the next fire after end_at) cannot overflow.
            self.bad(
                (*path, key),
                f"must be from {WINDOW_EARLIEST.date()} to before {WINDOW_LATEST.date()} (UTC)",
                shown,
            )
            return None
        return instant

    def owners(self, value: Any, path: Path_) -> Owners | None:
        if not isinstance(value, dict):
            self.bad(
                path, "must be a table { users = [...], groups = [...], guests = [...] }", value
            )
            return None
        before = len(self.problems)
        self.known(value, path, OWNERS_KEYS)
        owners = Owners(
            users=self.user_list(value, path, "users"),
            groups=self.hex_list(value, path, "groups"),
            guests=self.email_list(value, path, "guests"),
        )
        if len(self.problems) > before:
            return None
        if owners.is_empty():
            self.bad(path, "needs at least one user, group or guest", value)
            return None
        return owners

    # - the job -

    def job(self, doc: Any, *, default_id: str | None, source: str | None) -> Job | None:
        if not isinstance(doc, Mapping):
            self.bad((), "a job must be a table of keys")
            return None
        self.known(doc, (), JOB_KEYS)
        job_id = self.get(doc, (), "id", str, required=None if default_id else "the job's id")
        if job_id is None and "id" not in doc and default_id is not None:
            job_id = default_id
            if not JOB_ID.fullmatch(job_id):
                self.bad(
                    ("id",),
                    f"the file name {job_id!r} is not a valid job id: set `id` "
                    "(lowercase letters, digits, '.', '_', '-'; at most 64)",
                )
                job_id = None
        elif job_id is not None and not JOB_ID.fullmatch(job_id):
            self.bad(("id",), "must match [a-z0-9][a-z0-9._-]{0,63}", job_id)
            job_id = None
        self.job_id = job_id
        description = self.get(doc, (), "description", str)
        schedule = self.get(doc, (), "schedule", str, required="a cron expression")
        timezone = self.get(doc, (), "timezone", str)
        if timezone is not None and not is_valid_zone(timezone):
            self.bad(
                ("timezone",),
                "unknown time zone (use an IANA name such as 'Europe/London')",
                timezone,
            )
            timezone = None
        zone_ok = timezone is not None or "timezone" not in doc
        timezone = timezone or self.settings.scheduler.timezone
        enabled = self.get(doc, (), "enabled", bool)
        catch_up = self.parsed(doc, (), "catch_up", _catch_up)
        window = self.at_most(doc, "catch_up_window", MAX_CATCH_UP_WINDOW)
        jitter = self.at_most(doc, "jitter", MAX_JITTER)
        start_at = self.instant(doc, (), "start_at")
        end_at = self.instant(doc, (), "end_at")
        if start_at is not None and end_at is not None and end_at <= start_at:
            self.bad(("end_at",), "must be later than start_at", doc["end_at"])
        max_fires = self.get(doc, (), "max_fires", int)
        if max_fires is not None and max_fires <= 0:
            self.bad(("max_fires",), "must be a whole number greater than 0", max_fires)
        action = self.action(doc)
        if self.problems or job_id is None or action is None or schedule is None:
            # Still report a bad schedule alongside the other faults of this file.
            if schedule is not None and zone_ok:
                self.schedule_problems(schedule, timezone, job_id or "")
            return None
        job = Job(
            id=job_id,
            # Interned: 100,000 loaded jobs share a few zones and many schedules (one string
            # each instead of one per job; bench/README.md, figure 1).
            schedule=sys.intern(schedule),
            timezone=sys.intern(timezone),
            action=action,
            description=description or "",
            enabled=True if enabled is None else enabled,
            catch_up=catch_up or self.settings.scheduler.catch_up,
            catch_up_window=(self.settings.scheduler.catch_up_window if window is None else window),
            jitter=timedelta(0) if jitter is None else jitter,
            start_at=start_at,
            end_at=end_at,
            max_fires=max_fires,
            source=source,
        )
        try:
            job.cron  # noqa: B018 - compiled once, here: the cached schedule is the validation
        except ScheduleError as exc:
            self.schedule_error(exc, schedule)
            return None
        return job

    def at_most(self, doc: Mapping[str, Any], key: str, limit: timedelta) -> timedelta | None:
        """A duration key, refused (recorded) above `limit`."""
        value = self.parsed(doc, (), key, _duration)
        if value is not None and value > limit:
            self.bad((key,), f"at most {format_duration(limit)}", doc[key])
            return None
        return value

    def schedule_problems(self, schedule: str, timezone: str, job_id: str) -> None:
        try:
            parse_schedule(schedule, timezone, job_id=job_id)
        except ScheduleError as exc:
            self.schedule_error(exc, schedule)

    def schedule_error(self, exc: ScheduleError, schedule: str) -> None:
        for message in _nested(exc):
            self.bad(("schedule",), message, schedule)

    def action(self, doc: Mapping[str, Any]) -> Action | None:
        table = self.get(
            doc,
            (),
            "action",
            dict,
            required="a table with type = 'launch_process' or 'create_task'",
        )
        if table is None:
            return None
        kind = self.get(
            table, ("action",), "type", str, required="'launch_process' or 'create_task'"
        )
        if kind == LaunchProcess.type:
            return self.launch_process(table)
        if kind == CreateTask.type:
            return self.create_task(table)
        if kind is not None:
            close = difflib.get_close_matches(kind, ACTION_TYPES, n=1, cutoff=0.6)
            hint = f": did you mean {close[0]!r}?" if close else ""
            self.bad(("action", "type"), f"must be 'launch_process' or 'create_task'{hint}", kind)
        return None

    def launch_process(self, table: Mapping[str, Any]) -> LaunchProcess | None:
        path: Path_ = ("action",)
        before = len(self.problems)
        self.known(table, path, LAUNCH_KEYS)
        checklist_id = self.hex_id(table, path, "checklist_id", required="the template's id")
        name = self.template(
            table,
            path,
            "name",
            LAUNCH_NAMES,
            required="the process name (a template such as 'Review {fire:%d %b %Y}')",
        )
        summary = self.template(table, path, "summary", LAUNCH_NAMES)
        tags = self.hex_list(table, path, "tags")
        users = self.user_list(table, path, "users")
        groups = self.hex_list(table, path, "groups")
        prerun = self.prerun(self.get(table, path, "prerun", dict) or {}, (*path, "prerun"))
        tasks = self.tasks(self.get(table, path, "tasks", dict) or {}, (*path, "tasks"))
        if len(self.problems) > before or checklist_id is None or name is None:
            return None
        return LaunchProcess(
            checklist_id=checklist_id,
            name=name,
            summary=summary,
            tags=tags,
            users=users,
            groups=groups,
            prerun=prerun,
            tasks=tasks,
        )

    def prerun(self, table: Mapping[str, Any], path: Path_) -> dict[str, PrerunValue]:
        out: dict[str, PrerunValue] = {}
        for key, value in table.items():
            where = (*path, key)
            if not HEX_ID.fullmatch(key):
                self.bad(
                    where,
                    "kick-off values are keyed by the field's 32-character hex id "
                    "(not its alias or label)",
                    value,
                )
                continue
            if isinstance(value, str):
                parsed = self.template(table, path, key, LAUNCH_NAMES)
                if parsed is not None:
                    out[key] = parsed
            elif isinstance(value, dict) and "at" in value:
                if set(value) != {"at"}:
                    self.bad(
                        where, 'a computed instant is exactly { at = "<time expression>" }', value
                    )
                    continue
                at = self.time_expression(value, where, "at")
                if at is not None:
                    out[key] = At(at)
            else:
                reason = _json_problem(value)
                if reason:
                    self.bad(where, reason, value)
                else:
                    out[key] = Passthrough.of(value)
        return out

    def tasks(self, table: Mapping[str, Any], path: Path_) -> dict[str, StepOverride]:
        out: dict[str, StepOverride] = {}
        for step, value in table.items():
            where = (*path, step)
            if not HEX_ID.fullmatch(step):
                self.bad(where, "steps are keyed by the step's 32-character hex id", value)
                continue
            if not isinstance(value, dict):
                self.bad(where, "must be a table { deadline = ..., owners = {...} }", value)
                continue
            before = len(self.problems)
            self.known(value, where, STEP_KEYS)
            deadline = self.time_expression(value, where, "deadline")
            owners = self.owners(value["owners"], (*where, "owners")) if "owners" in value else None
            if len(self.problems) == before:
                out[step] = StepOverride(deadline=deadline, owners=owners)
        return out

    def create_task(self, table: Mapping[str, Any]) -> CreateTask | None:
        path: Path_ = ("action",)
        before = len(self.problems)
        self.known(table, path, TASK_KEYS)
        title = self.template(
            table, path, "title", TASK_NAMES, required="the task's title (a template)"
        )
        task_type = self.parsed(table, path, "task_type", _task_type)
        summary = self.template(table, path, "summary", TASK_NAMES)
        owners = None
        if "owners" not in table:
            self.bad(
                (*path, "owners"),
                "required: { users = [...], groups = [...], guests = [...] } with at least one",
            )
        else:
            owners = self.owners(table["owners"], (*path, "owners"))
        started_at = self.time_expression(table, path, "started_at")
        if "started_at" not in table:
            started_at = _time_expression(DEFAULT_STARTED_AT)
        deadline = self.time_expression(
            table, path, "deadline", required="a time expression such as '+0@17:00'"
        )
        run_from_job = self.get(table, path, "run_from_job", str)
        if run_from_job is not None and not JOB_ID.fullmatch(run_from_job):
            self.bad((*path, "run_from_job"), "must be a job id", run_from_job)
        run_id = self.hex_id(table, path, "run_id")
        if "run_from_job" in table and "run_id" in table:
            self.bad((*path, "run_id"), "give run_from_job or run_id, not both", table["run_id"])
        extra = self.task_extra(table, path)
        if (
            len(self.problems) > before
            or title is None
            or owners is None
            or deadline is None
            or started_at is None
        ):
            return None
        return CreateTask(
            title=title,
            owners=owners,
            deadline=deadline,
            started_at=started_at,
            task_type=task_type or TaskType.TASK,
            summary=summary,
            run_from_job=run_from_job,
            run_id=run_id,
            extra=extra,
        )

    def task_extra(self, table: Mapping[str, Any], path: Path_) -> dict[str, Passthrough]:
        before = len(self.problems)
        extra: dict[str, Any] = {}
        if "tags" in table:
            extra["tags"] = list(self.hex_list(table, path, "tags"))
        for key in TASK_BOOL_KEYS:
            flag = self.get(table, path, key, bool)
            if flag is not None:
                extra[key] = flag
        limit = self.get(table, path, "max_assignable", int)
        if limit is not None:
            if limit < 0:
                self.bad((*path, "max_assignable"), "must be 0 (no limit) or more", limit)
            extra["max_assignable"] = limit
        webhook = self.get(table, path, "webhook", str)
        if webhook is not None:
            parts = urlsplit(webhook)
            if parts.scheme != "https" or not parts.hostname:
                self.bad((*path, "webhook"), "must be an https:// URL", webhook)
            extra["webhook"] = webhook
        fields = self.get(table, path, "form_fields", list)
        if fields is not None:
            for index, entry in enumerate(fields):
                self.form_field(entry, (*path, "form_fields", str(index)))
            extra["form_fields"] = fields
        if len(self.problems) > before:
            return {}  # recorded; and a refused value may not even be JSON (a TOML date)
        return {key: Passthrough.of(value) for key, value in extra.items()}

    def form_field(self, entry: Any, path: Path_) -> None:
        if not isinstance(entry, dict):
            self.bad(path, "must be a table with label, field_type and required", entry)
            return
        for key in FORM_FIELD_REQUIRED:
            if key not in entry:
                self.bad((*path, key), "required in every form field")
        for key, kind in (("label", str), ("field_type", str), ("required", bool)):
            if key in entry:
                self.get(entry, path, key, kind)
        reason = _json_problem(entry)
        if reason:
            self.bad(path, reason, entry)


# Value -> member: a dict lookup, where calling the enum costs ~1 us (100,000 stored jobs).
_CATCH_UP_POLICIES = {policy.value: policy for policy in CatchUpPolicy}
_TASK_TYPES = {task_type.value: task_type for task_type in TaskType}


def _catch_up(text: str) -> CatchUpPolicy:
    policy = _CATCH_UP_POLICIES.get(text)
    if policy is not None:
        return policy
    try:
        return CatchUpPolicy(text)
    except ValueError:
        raise ValueError(f"must be one of {', '.join(p.value for p in CatchUpPolicy)}") from None


def _task_type(text: str) -> TaskType:
    task_type = _TASK_TYPES.get(text)
    if task_type is not None:
        return task_type
    try:
        return TaskType(text)
    except ValueError:
        raise ValueError(f"must be one of {', '.join(t.value for t in TaskType)}") from None


# -- rendering for the next fire ----------------------------------------------------------------


class _RenderCheck:
    """Renders a job's templates and resolves its time expressions for its next fire.

    Errors that only show for real values (a strftime pattern, a deadline a time expression
    cannot reach, a name too long once rendered) surface at apply time, not at fire time.
    """

    def __init__(self, settings: Settings, now: datetime) -> None:
        self.settings = settings
        self.now = to_utc(now)
        self._calendar: BusinessCalendar | None = None

    @property
    def calendar(self) -> BusinessCalendar:
        if self._calendar is None:
            self._calendar = BusinessCalendar.from_settings(self.settings.calendar)
        return self._calendar

    def check(self, job: Job, reader: _Reader) -> None:
        instant = self.sample_instant(job, reader)
        if instant is None:
            return
        action = job.action
        deadline: datetime | None = None
        if isinstance(action, CreateTask):
            deadline = self.resolve(action.deadline, job, instant, reader, ("action", "deadline"))
            self.resolve(action.started_at, job, instant, reader, ("action", "started_at"))
        values = fire_values(job.id, instant, job.zone, 1, deadline=deadline)
        if isinstance(action, LaunchProcess):
            self.render(action.name, values, reader, ("action", "name"), NAME_MAX_LENGTH)
            if action.summary is not None:
                self.render(action.summary, values, reader, ("action", "summary"), TEXT_MAX_LENGTH)
            for key, value in action.prerun.items():
                where = ("action", "prerun", key)
                if isinstance(value, At):
                    self.resolve(value.at, job, instant, reader, (*where, "at"))
                elif not isinstance(value, Passthrough):
                    self.render(value, values, reader, where, TEXT_MAX_LENGTH)
            for step, override in action.tasks.items():
                if override.deadline is not None:
                    step_path = ("action", "tasks", step, "deadline")
                    self.resolve(override.deadline, job, instant, reader, step_path)
        else:
            self.render(action.title, values, reader, ("action", "title"), TITLE_MAX_LENGTH)
            if action.summary is not None:
                self.render(action.summary, values, reader, ("action", "summary"), TEXT_MAX_LENGTH)

    def sample_instant(self, job: Job, reader: _Reader) -> datetime | None:
        """The next fire after now; failing that (a finished window) the schedule's next one."""
        if job.start_at is not None and job.end_at is not None:
            first = job.next_fire(job.start_at - timedelta(microseconds=1))
            if first is None:
                reader.bad(
                    ("end_at",),
                    "the schedule never fires between start_at and end_at",
                    job.end_at.isoformat(),
                )
                return None
        instant = job.next_fire(self.now) or job.cron.next_after(self.now)
        if instant is None:
            reader.bad(("schedule",), "never fires after now", job.schedule)
        return instant

    def resolve(
        self,
        expression: TimeExpression,
        job: Job,
        instant: datetime,
        reader: _Reader,
        path: Path_,
    ) -> datetime | None:
        try:
            resolved = expression.resolve(instant, job.zone, self.calendar)
            resolved.astimezone(job.zone)  # templates show it in the job's zone: must exist there
            return resolved
        except InvalidInput as exc:
            for message in _nested(exc):
                reader.bad(path, message, expression.text)
        except (ValueError, OverflowError) as exc:
            reader.bad(
                path,
                f"cannot be computed for the fire at {instant.isoformat()}: {exc}",
                expression.text,
            )
        return None

    def render(
        self,
        template: Template,
        values: Mapping[str, object],
        reader: _Reader,
        path: Path_,
        max_length: int | None,
    ) -> None:
        try:
            text = template.render(values)
        except InvalidInput as exc:
            for message in _nested(exc):
                reader.bad(path, message, template.text)
            return
        except (ValueError, OverflowError) as exc:
            reader.bad(path, f"cannot be rendered: {exc}", template.text)
            return
        if max_length is not None and len(text) > max_length:
            reader.bad(
                path,
                f"is {len(text)} characters once rendered (at most {max_length})",
                template.text,
            )
