"""Job files -> validated, frozen Jobs, with every error of every file collected.

Two entry points, one set of checks (docs/jobs.md, "Validation"):

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
import linecache
import math
import operator
import re
import sys
import tomllib
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache, partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from scheduler.clock import parse_instant, to_utc
from scheduler.config import TARGET_NAME, CatchUpPolicy, Settings, zone_problem
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
    LaunchOptions,
    LaunchProcess,
    Overlap,
    Owners,
    Passthrough,
    PrerunValue,
    SkipOn,
    StepOverride,
    TaskType,
)
from scheduler.skipdays import next_firing
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
MIN_OVERLAP_CHECK_EVERY = timedelta(seconds=1)
MAX_OVERLAP_CHECK_EVERY = timedelta(days=1)
WINDOW_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)  # start_at and end_at lie in [this, LATEST)
WINDOW_LATEST = datetime(9000, 1, 1, tzinfo=UTC)
DEFAULT_STARTED_AT = "+0"  # a task starts at the fire's scheduled instant

# `deadline` is a create_task value; a launch has no single deadline to offer its templates.
LAUNCH_NAMES = FIRE_NAMES - {"deadline"}
TASK_NAMES = FIRE_NAMES

JOB_KEYS = tuple(
    "id description schedule timezone enabled catch_up catch_up_window jitter start_at end_at "
    "max_fires alert skip_on pause_after_failures overlap overlap_check_every action".split()
)
ACTION_TYPES = ("launch_process", "create_task")
# The launch keys most jobs leave out: a Job keeps them together (`LaunchOptions`).
LAUNCH_OPTION_KEYS = tuple("roles folders owner_id user_id parent_id is_public starred".split())
LAUNCH_KEYS = (
    *"type checklist_id name summary tags users groups prerun tasks".split(),
    *LAUNCH_OPTION_KEYS,
)
TASK_BOOL_KEYS = tuple(
    "separate_task_for_each_assignee everyone_must_complete can_complete_only_assignees "
    "prevent_guest_comment top_secret is_soft_start_date".split()
)
TASK_KEYS = (
    *"type title task_type summary description owners started_at deadline".split(),
    *"run_from_job run_id".split(),
    *"tags form_fields webhook max_assignable".split(),
    *TASK_BOOL_KEYS,
)
OWNERS_KEYS = ("users", "groups", "guests")
STEP_KEYS = ("deadline", "owners")
FORM_FIELD_REQUIRED = ("label", "field_type", "required")

Path_ = tuple[str, ...]
_ABSENT: Any = object()  # a key not in its table (`_Reader.read`)


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
    """A stored document back to a Job: structural checks only; DefinitionError if bad.

    The same rules as a job file's (without rendering), so a stored document that no longer
    passes them (edited by hand, written by an older version) is refused with every Problem.
    """
    reader = _Reader(settings, file=None, lines=None)
    job = reader.job(doc, default_id=None, source=None)
    if job is None or reader.problems:
        # Named only now: most documents have no fault.
        label = f"<stored job {doc.get('id')!s}>" if isinstance(doc, Mapping) else "<stored job>"
        raise DefinitionError(list(reader.problems)).located(file=label)
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
def _template(allowed: frozenset[str], text: str) -> Template:
    return parse_template(text, allowed=allowed)


_launch_template = partial(_template, LAUNCH_NAMES)
_task_template = partial(_template, TASK_NAMES)


@lru_cache(maxsize=8192)
def _time_expression(text: str) -> TimeExpression:
    return parse_time_expression(text)


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


# -- the rules: what each key of each table may hold ---------------------------------------------

# Every check of a job document is declared once, in the tables at the end of this section
# (`_JOB`, `_LAUNCH`, `_TASK`, ...): for each key, the type of its value and what the value
# must be (a test, a parser, the reader of a nested table), what its absence means (a problem,
# or a default) and how it relates to the keys read before it. `_Reader` applies them to job
# files, to documents being applied and to the stored documents the daemon loads, through a
# reader compiled from each table (`_compile`): 100,000 stored documents are read at
# start-up, so a value that is fine costs one dict lookup, one type test and at most one
# call, most of them to cached parsers.


class _Refused(ValueError):
    """Raised by a parser that shows another value than the one it was given (an instant is
    shown as ISO 8601): (message, value shown) pairs, one Problem each."""

    def __init__(self, *faults: tuple[str, Any]) -> None:
        super().__init__(faults)
        self.faults = faults


# A rule's `parse`: the value (of the rule's type) -> what the Job keeps. It raises ValueError
# (its text is the problem, the value is shown), InvalidInput (each of its problems) or
# _Refused (problems showing other values).
Parse = Callable[[Any], Any]
# A rule's `read`, for a nested table or list: (reader, value, its path) -> what the Job keeps,
# or None; it records its own Problems.
Read = Callable[["_Reader", Any, Path_], Any]
# What a missing key means: (reader, its path) -> a default, or None (after recording why not).
Missing = Callable[["_Reader", Path_], Any]
# A rule relating a key to the table around it, after the key's own rule:
# (reader, the table, what was kept so far, the table's path); it records its own Problems.
After = Callable[["_Reader", Mapping[str, Any], dict[str, Any], Path_], None]


@dataclass(frozen=True, slots=True)
class _Key:
    """The rule of one key: its type, what its value must be, what its absence means."""

    kind: type | None  # None: any type (`parse` decides); a bool is never a whole number
    parse: Parse | None = None
    # Or the value is kept as it is when `test` passes, and refused with `message` if not;
    # with `item`, the value is a list and each item must be of that type (not a bool) and
    # pass `test` (each other item is refused with `message`); it is kept as a tuple.
    test: Callable[[Any], object] | None = None
    message: str = ""
    item: type | tuple[type, ...] | None = None
    read: Read | None = None
    missing: Missing | None = None  # None: the key is optional and has no default
    after: After | None = None
    wrong_type: str | None = None  # the message for a value of another type


class _Table:
    """The rules of one table, in the order its keys are read and their problems reported.

    `known` lists every key the table may hold, in the order a message names them (a key read
    elsewhere, such as an action's `type`, is listed but has no rule); None: any key. `read`
    is the table's reader, compiled from the rules (see `_compile`).
    """

    def __init__(
        self, name: str, rules: Mapping[str, _Key], known: tuple[str, ...] | None = None
    ) -> None:
        self.name = name
        self.rules = rules
        self.known = known
        self.keys = frozenset(rules)
        self.read = _compile(self)


TableReader = Callable[["_Reader", Mapping[str, Any], Path_], dict[str, Any]]


def _compile(table: _Table) -> TableReader:
    """The reader of `table`: its rules written out as straight-line Python, key by key.

    The function takes (reader, the table, its path) and returns what is kept, by key; a
    refused key is left out, its Problems recorded, in the order of the rules (unknown keys
    first). Written out, a key costs a dict lookup, a type test and its rule's one call, and
    nothing a rule does not have is tested for: a loop over the rules doing the same took
    ~1.6 times as long per stored document, the old hand-written copy of the common rules
    ~0.85 times (bench/README.md). The source is kept in `linecache`: tracebacks and
    debuggers show its lines (`<rules of create_task>`).
    """
    env: dict[str, Any] = {"ABSENT": _ABSENT, "TABLE": table, "suggest": _suggest}
    code = ["def read(reader, table, path):"]
    if table.known is not None:
        env["KNOWN"] = frozenset(table.known)
        code += [
            "    if not KNOWN.issuperset(table):",
            "        for key in table:",
            "            if key not in KNOWN:",
            "                reader.bad((*path, key), suggest(key, TABLE.known), table[key])",
        ]
    code += ["    kept = {}", "    get = table.get"]
    for n, (key, rule) in enumerate(table.rules.items()):
        env.update({f"rule{n}": rule, f"kind{n}": rule.kind, f"parse{n}": rule.parse})
        env.update({f"read{n}": rule.read, f"missing{n}": rule.missing, f"after{n}": rule.after})
        env[f"test{n}"] = rule.test
        at = f"(*path, {key!r})"
        if rule.item is not None:
            env[f"item{n}"] = rule.item
            keep = [
                "refused = False",
                "for item in value:",
                f"    if not (isinstance(item, item{n}) and type(item) is not bool"
                f" and test{n}(item)):",
                f"        reader.bad({at}, {rule.message!r}, item)",
                "        refused = True",
                "if not refused:",
                f"    kept[{key!r}] = tuple(value)",
            ]
        elif rule.test is not None:
            keep = [
                f"if test{n}(value):",
                f"    kept[{key!r}] = value",
                "else:",
                f"    reader.bad({at}, {rule.message!r}, value)",
            ]
        elif rule.parse is not None:
            keep = [
                "try:",
                f"    kept[{key!r}] = parse{n}(value)",
                "except ValueError as exc:  # InvalidInput and _Refused included",
                f"    reader.refused(exc, {at}, value)",
            ]
        elif rule.read is not None:
            keep = [
                f"value = read{n}(reader, value, {at})",
                "if value is not None:",
                f"    kept[{key!r}] = value",
            ]
        else:
            keep = [f"kept[{key!r}] = value"]
        keep = [f"        {line}" for line in keep]
        code.append(f"    value = get({key!r}, ABSENT)")
        if rule.kind is not None:  # the common case first: present, of exactly its type
            code += [f"    if type(value) is kind{n}:", *keep]
        code.append(
            "    elif value is ABSENT:" if rule.kind is not None else "    if value is ABSENT:"
        )
        if rule.missing is not None:
            code += [
                f"        value = missing{n}(reader, {at})",
                "        if value is not None:",
                f"            kept[{key!r}] = value",
            ]
        else:
            code.append("        pass")
        code += [f"    elif reader.of_kind(value, rule{n}, {at}):", *keep]
        if rule.after is not None:
            code += [f"    if {key!r} in table:", f"        after{n}(reader, table, kept, path)"]
    code.append("    return kept")
    source = "\n".join(code) + "\n"
    filename = f"<rules of {table.name}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), env)
    reader: TableReader = env["read"]
    return reader


def _required(what: str) -> Missing:
    """A required key: its absence is a problem saying what it must hold."""

    def missing(reader: _Reader, path: Path_) -> None:
        reader.bad(path, f"required: {what}")

    return missing


@lru_cache(maxsize=1024)  # a few durations serve every job
def _duration_up_to(limit: timedelta, text: str) -> timedelta:
    value = parse_duration(text)
    if value > limit:
        raise ValueError(f"at most {format_duration(limit)}")
    return value


def _at_most(limit: timedelta) -> Parse:
    """A duration no longer than `limit`."""
    return partial(_duration_up_to, limit)


@lru_cache(maxsize=1024)  # a few zones serve every job
def _zone(name: str) -> str:
    fault = zone_problem(name)  # the one rule of what a zone is (config.py)
    if fault:
        raise ValueError(fault)
    return name


@lru_cache(maxsize=8)
def _overlap(text: str) -> Overlap:
    try:
        return Overlap(text)
    except ValueError:
        raise ValueError(f"must be one of {', '.join(p.value for p in Overlap)}") from None


@lru_cache(maxsize=64)
def _check_every(text: str) -> timedelta:
    """`overlap_check_every`: from a second to a day (a held instant asks at this pace)."""
    value = _duration_up_to(MAX_OVERLAP_CHECK_EVERY, text)
    if value < MIN_OVERLAP_CHECK_EVERY:
        raise ValueError(f"at least {format_duration(MIN_OVERLAP_CHECK_EVERY)}")
    return value


@lru_cache(maxsize=64)  # cached: calling the enum costs ~1 us
def _catch_up(text: str) -> CatchUpPolicy:
    try:
        return CatchUpPolicy(text)
    except ValueError:
        raise ValueError(f"must be one of {', '.join(p.value for p in CatchUpPolicy)}") from None


@lru_cache(maxsize=64)
def _task_type(text: str) -> TaskType:
    try:
        return TaskType(text)
    except ValueError:
        raise ValueError(f"must be one of {', '.join(t.value for t in TaskType)}") from None


def _instant(value: Any) -> datetime:
    """An ISO 8601 instant with an offset (a TOML offset date-time, or a string), as UTC."""
    shown = value.isoformat() if isinstance(value, datetime) else value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise _Refused(("needs a UTC offset, e.g. 2026-03-02T09:00:00-05:00", shown))
    elif not isinstance(value, str):
        raise _Refused(("must be an ISO 8601 instant with an offset", value))
    try:
        instant = to_utc(value) if isinstance(value, datetime) else parse_instant(value)
    except (ValueError, OverflowError) as exc:
        raise _Refused((f"not an ISO 8601 instant with an offset: {exc}", shown)) from None
    if not WINDOW_EARLIEST <= instant < WINDOW_LATEST:
        # Far from either end of what datetime holds, so the window arithmetic (one
        # microsecond before start_at, the next fire after end_at) cannot overflow.
        message = f"must be from {WINDOW_EARLIEST.date()} to before {WINDOW_LATEST.date()} (UTC)"
        raise _Refused((message, shown))
    return instant


def _after_start(
    reader: _Reader, table: Mapping[str, Any], kept: dict[str, Any], path: Path_
) -> None:
    start_at, end_at = kept.get("start_at"), kept.get("end_at")
    if start_at is not None and end_at is not None and end_at <= start_at:
        reader.bad((*path, "end_at"), "must be later than start_at", table["end_at"])


def _not_with_run_from_job(
    reader: _Reader, table: Mapping[str, Any], kept: dict[str, Any], path: Path_
) -> None:
    if "run_from_job" in table:
        reader.bad((*path, "run_id"), "give run_from_job or run_id, not both", table["run_id"])


def _not_with_summary(
    reader: _Reader, table: Mapping[str, Any], kept: dict[str, Any], path: Path_
) -> None:
    if "summary" in table:
        reader.bad(
            (*path, "description"),
            "give summary or description, not both (the text is sent under both names)",
            table["description"],
        )


def _https_url(text: str) -> str:
    try:
        parts = urlsplit(text)
        ok = parts.scheme == "https" and bool(parts.hostname)
    except ValueError:  # a malformed host ("https://[::1"): not a URL at all
        ok = False
    if not ok:
        raise ValueError("must be an https:// URL")
    return text


def _setting(name: str) -> Missing:
    """A key that defaults to the `[scheduler]` setting of the same name."""
    return lambda reader, path: getattr(reader.settings.scheduler, name)


# Tests of one value, C functions all (no Python call per value): `_positive(n)` is 0 < n.
_positive = partial(operator.lt, 0)
_not_negative = partial(operator.le, 0)
_HEX_ID = "must be a 32-character lowercase hex id"
_RUN_ID = "must be a run's 32-character lowercase hex id"
# Lists of ids and addresses.
_HEX_IDS = _Key(
    list, item=str, test=HEX_ID.fullmatch, message="each must be a 32-character lowercase hex id"
)
_MEMBER_TEXT = "a user id (a whole number) or a member's email"


def _is_member(value: int | str) -> bool:
    """A user id (a whole number > 0), or an email that names a member (resolved when fired)."""
    if isinstance(value, int):
        return value > 0
    return EMAIL.fullmatch(value) is not None


def _member(value: Any) -> int | str:
    if isinstance(value, int | str) and type(value) is not bool and _is_member(value):
        return value
    raise ValueError(f"must be {_MEMBER_TEXT}")


# Members: user ids, or member emails (issue 13: owners, step assignees, roles, process users).
_MEMBERS = _Key(list, item=(int, str), test=_is_member, message=f"each must be {_MEMBER_TEXT}")
_ONE_MEMBER = _Key(None, _member)
_SKIP_ON_SHAPE = (
    'each must be "holidays", a date (2026-12-24 or "2026-12-24") or a range of dates '
    '("2026-12-24/2027-01-01")'
)
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _skip_day(text: str) -> date:
    if not _ISO_DATE.fullmatch(text):
        raise ValueError(text)
    day = date.fromisoformat(text)
    if not WINDOW_EARLIEST.date() <= day < WINDOW_LATEST.date():
        raise ValueError(text)
    return day


def _skip_on(items: list[Any]) -> SkipOn | None:
    """`skip_on`: "holidays" and blackout dates or ranges (None when the list is empty)."""
    holidays = False
    dates: list[tuple[date, date]] = []
    faults: list[tuple[str, Any]] = []
    for item in items:
        if item == "holidays":
            holidays = True
        elif type(item) is date:  # a TOML local date (a datetime is not a date here)
            try:
                dates.append((_skip_day(item.isoformat()), item))
            except ValueError:
                faults.append((_SKIP_ON_SHAPE, item.isoformat()))
        elif isinstance(item, str):
            first_text, slash, last_text = item.partition("/")
            try:
                first = _skip_day(first_text)
                last = _skip_day(last_text) if slash else first
            except ValueError:
                faults.append((_SKIP_ON_SHAPE, item))
                continue
            if last < first:
                faults.append(("a range of dates must end on or after its first day", item))
            else:
                dates.append((first, last))
        else:
            faults.append((_SKIP_ON_SHAPE, item))
    if faults:
        raise _Refused(*faults)
    return SkipOn(holidays, tuple(dates)) if holidays or dates else None


_EMAILS = _Key(list, item=str, test=EMAIL.fullmatch, message="each must be an email address")

# The tables themselves follow `_Reader`, whose methods read the nested tables.


# -- one document -------------------------------------------------------------------------------


class _Reader:
    """Reads one job document into a Job by the rules above, recording a Problem per fault (never
    stopping early): `problems` says what is wrong, `job_id` the valid id once read."""

    __slots__ = ("default_id", "file", "job_id", "lines", "problems", "settings")

    def __init__(
        self, settings: Settings, *, file: str | None, lines: Mapping[Path_, int] | None
    ) -> None:
        self.settings = settings
        self.file = file
        self.lines = lines
        # The collector is made at the first fault (most documents have none): () till then.
        self.problems: Sequence[Problem] = ()
        self.job_id: str | None = None
        self.default_id: str | None = None

    def collector(self) -> Problems:
        problems = self.problems
        if not isinstance(problems, Problems):
            problems = Problems(self.file, lines=self.lines, shown_max=SHOWN_MAX_LENGTH)
            self.problems = problems
        return problems

    def line_of(self, path: Path_) -> int | None:
        return self.collector().line_of(path)

    def bad(self, path: Path_, message: str, value: Any = ...) -> None:
        self.collector().add(path, message, value)

    def of_kind(self, value: Any, rule: _Key, path: Path_) -> bool:
        """Whether `value` may go on to `rule`'s parse (a subclass may); if not, say so."""
        kind = rule.kind
        if kind is None or (isinstance(value, kind) and (kind is bool or type(value) is not bool)):
            return True
        self.bad(path, rule.wrong_type or f"must be {_TYPE_NAMES.get(kind, kind.__name__)}", value)
        return False

    def refused(self, exc: ValueError, path: Path_, value: Any) -> None:
        """The Problems of a value a rule refused."""
        if isinstance(exc, _Refused):
            for message, shown in exc.faults:
                self.bad(path, message, shown)
        elif isinstance(exc, InvalidInput):
            for message in _nested(exc):
                self.bad(path, message, value)
        else:
            self.bad(path, str(exc), value)

    # - the job -

    def job(self, doc: Any, *, default_id: str | None, source: str | None) -> Job | None:
        """The Job of `doc` (None, with the Problems recorded, when it has a fault).

        `default_id` is the id of a document without one (a job file's name); `source` says
        where the job was defined.
        """
        if type(doc) is not dict and not isinstance(doc, Mapping):
            self.bad((), "a job must be a table of keys")
            return None
        self.default_id = default_id
        kept = _JOB.read(self, doc, ())
        self.job_id = kept.get("id")
        schedule = kept.get("schedule")
        if self.problems or "id" not in kept or "action" not in kept or schedule is None:
            # Still report a bad schedule alongside the other faults of this document (unless
            # its zone is unknown: the schedule cannot be read without one).
            if schedule is not None and "timezone" in kept:
                try:
                    parse_schedule(schedule, kept["timezone"], job_id=kept.get("id") or "")
                except ScheduleError as exc:
                    self.schedule_error(exc, schedule)
            return None
        # Interned: 100,000 loaded jobs share a few zones and many schedules (one string each
        # instead of one per job; bench/README.md, figure 1).
        kept["schedule"] = sys.intern(schedule)
        kept["timezone"] = sys.intern(kept["timezone"])
        job = Job(**kept, source=source)
        try:
            job.cron  # noqa: B018 - compiled here: a schedule that never compiles is a fault
        except ScheduleError as exc:
            self.schedule_error(exc, schedule)
            return None
        return job

    def id_from_file_name(self, path: Path_) -> str | None:
        """A job without an id: a job file's is its name; a document must have one."""
        if self.default_id is None:
            self.bad(path, "required: the job's id")
            return None
        if not JOB_ID.fullmatch(self.default_id):
            self.bad(
                path,
                f"the file name {self.default_id!r} is not a valid job id: set `id` "
                "(lowercase letters, digits, '.', '_', '-'; at most 64)",
            )
            return None
        return self.default_id

    def schedule_error(self, exc: ScheduleError, schedule: str) -> None:
        for message in _nested(exc):
            self.bad(("schedule",), message, schedule)

    def action(self, table: dict[str, Any], path: Path_) -> Action | None:
        """The action, by the rules of its type: `launch_process` or `create_task`."""
        kind = table.get("type", _ABSENT)
        if kind == LaunchProcess.type:
            return self.launch_process(table, path)
        if kind == CreateTask.type:
            return self.create_task(table, path)
        _ACTION_TYPE.read(self, table, path)
        if isinstance(kind, str):
            close = difflib.get_close_matches(kind, ACTION_TYPES, n=1, cutoff=0.6)
            hint = f": did you mean {close[0]!r}?" if close else ""
            self.bad((*path, "type"), f"must be 'launch_process' or 'create_task'{hint}", kind)
        return None

    def launch_process(self, table: dict[str, Any], path: Path_) -> LaunchProcess | None:
        before = len(self.problems)
        kept = _LAUNCH.read(self, table, path)
        if len(self.problems) > before:
            return None
        options = {key: kept.pop(key) for key in LAUNCH_OPTION_KEYS if key in kept}
        if options:
            kept["options"] = LaunchOptions(**options)
        return LaunchProcess(**kept)

    def create_task(self, table: dict[str, Any], path: Path_) -> CreateTask | None:
        before = len(self.problems)
        kept = _TASK.read(self, table, path)
        if "description" in kept:  # the seed page's name for the text; one Job field for both
            kept["summary"] = kept.pop("description")
        # Passed through to the API as they are, once checked.
        if not _TASK_EXTRA.keys.isdisjoint(table):
            extra = _TASK_EXTRA.read(self, table, path)
            if len(self.problems) == before:  # (a refused value may not even be JSON: a date)
                kept["extra"] = {key: Passthrough.of(value) for key, value in extra.items()}
        if len(self.problems) > before:
            return None
        return CreateTask(**kept)

    def owners(self, table: dict[str, Any], path: Path_) -> Owners | None:
        before = len(self.problems)
        owners = Owners(**_OWNERS.read(self, table, path))
        if len(self.problems) > before:
            return None
        if owners.is_empty():
            self.bad(path, "needs at least one user, group or guest", table)
            return None
        return owners

    def prerun(self, table: dict[str, Any], path: Path_) -> dict[str, PrerunValue]:
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
            elif isinstance(value, str):
                try:
                    out[key] = _launch_template(value)
                except ValueError as exc:
                    self.refused(exc, where, value)
            elif isinstance(value, dict) and "at" in value:
                at = value["at"]
                if len(value) != 1:
                    self.bad(
                        where, 'a computed instant is exactly { at = "<time expression>" }', value
                    )
                elif type(at) is str or self.of_kind(at, _AT, (*where, "at")):
                    try:
                        out[key] = At(_time_expression(at))
                    except ValueError as exc:
                        self.refused(exc, (*where, "at"), at)
            else:
                reason = _json_problem(value)
                if reason:
                    self.bad(where, reason, value)
                else:
                    out[key] = Passthrough.of(value)
        return out

    def roles(self, table: dict[str, Any], path: Path_) -> dict[str, Owners]:
        """`roles`: org role id (32 hex) -> its members, an owners table."""
        out: dict[str, Owners] = {}
        for role, value in table.items():
            where = (*path, role)
            if not HEX_ID.fullmatch(role):
                self.bad(where, "roles are keyed by the org role's 32-character hex id", value)
            elif not isinstance(value, dict):
                self.bad(where, _OWNERS_TYPE, value)
            else:
                owners = self.owners(value, where)
                if owners is not None:
                    out[role] = owners
        return out

    def steps(self, table: dict[str, Any], path: Path_) -> dict[str, StepOverride]:
        out: dict[str, StepOverride] = {}
        for step, value in table.items():
            where = (*path, step)
            if not HEX_ID.fullmatch(step):
                self.bad(where, "steps are keyed by the step's 32-character hex id", value)
            elif not isinstance(value, dict):
                self.bad(where, "must be a table { deadline = ..., owners = {...} }", value)
            else:
                before = len(self.problems)
                kept = _STEP.read(self, value, where)
                if len(self.problems) == before:
                    out[step] = StepOverride(**kept)
        return out

    def form_fields(self, fields: list[Any], path: Path_) -> list[Any]:
        for index, entry in enumerate(fields):
            where = (*path, str(index))
            if not isinstance(entry, dict):
                self.bad(where, "must be a table with label, field_type and required", entry)
                continue
            for key in FORM_FIELD_REQUIRED:
                if key not in entry:
                    self.bad((*where, key), "required in every form field")
            _FORM_FIELD.read(self, entry, where)
            reason = _json_problem(entry)
            if reason:
                self.bad(where, reason, entry)
        return fields


# -- the rule tables (see "the rules" above) -----------------------------------------------------

_OWNERS_TYPE = "must be a table { users = [...], groups = [...], guests = [...] }"
_OWNERS = _Table(
    "owners",
    {
        "users": _MEMBERS,
        "groups": _HEX_IDS,
        "guests": _EMAILS,
    },
    known=OWNERS_KEYS,
)
_JOB = _Table(
    "a job",
    {
        "id": _Key(
            str,
            test=JOB_ID.fullmatch,
            message="must match [a-z0-9][a-z0-9._-]{0,63}",
            missing=_Reader.id_from_file_name,
        ),
        "description": _Key(str),
        "schedule": _Key(str, missing=_required("a cron expression")),
        "timezone": _Key(str, _zone, missing=_setting("timezone")),
        "enabled": _Key(bool),
        "catch_up": _Key(str, _catch_up, missing=_setting("catch_up")),
        "catch_up_window": _Key(
            str, _at_most(MAX_CATCH_UP_WINDOW), missing=_setting("catch_up_window")
        ),
        "jitter": _Key(str, _at_most(MAX_JITTER)),
        "start_at": _Key(None, _instant),
        "end_at": _Key(None, _instant, after=_after_start),
        "max_fires": _Key(int, test=_positive, message="must be a whole number greater than 0"),
        # The failure breaker (docs/jobs.md, "pause_after_failures"): 0 is off.
        "pause_after_failures": _Key(
            int,
            test=_not_negative,
            message="must be 0 (off) or a whole number above 0",
            missing=_setting("pause_after_failures"),
        ),
        # Which alert targets hear of the job's incidents; whether each is configured is
        # checked when the job is applied (`_RenderCheck`), never when a stored job loads: a
        # target removed from the config must not quarantine the jobs naming it.
        "alert": _Key(
            list,
            item=str,
            test=TARGET_NAME.fullmatch,
            message="each must be an alert target's name (lowercase letters, digits, '_', '-')",
        ),
        "skip_on": _Key(list, _skip_on),
        # Overlap with what the job launched before (docs/jobs.md, "overlap").
        "overlap": _Key(str, _overlap),
        "overlap_check_every": _Key(str, _check_every),
        "action": _Key(
            dict,
            read=_Reader.action,
            missing=_required("a table with type = 'launch_process' or 'create_task'"),
        ),
    },
    known=JOB_KEYS,
)
_ACTION_TYPE = _Table(
    "an action's type", {"type": _Key(str, missing=_required("'launch_process' or 'create_task'"))}
)
_LAUNCH = _Table(
    "launch_process",
    {
        "checklist_id": _Key(
            str, test=HEX_ID.fullmatch, message=_HEX_ID, missing=_required("the template's id")
        ),
        "name": _Key(
            str,
            _launch_template,
            missing=_required("the process name (a template such as 'Review {fire:%d %b %Y}')"),
        ),
        "summary": _Key(str, _launch_template),
        "tags": _HEX_IDS,
        "users": _MEMBERS,
        "groups": _HEX_IDS,
        "prerun": _Key(dict, read=_Reader.prerun),
        "tasks": _Key(dict, read=_Reader.steps),
        "roles": _Key(dict, read=_Reader.roles),
        "folders": _HEX_IDS,
        "owner_id": _ONE_MEMBER,
        "user_id": _ONE_MEMBER,
        "parent_id": _Key(str, test=HEX_ID.fullmatch, message=_RUN_ID),
        "is_public": _Key(bool),
        "starred": _Key(bool),
    },
    known=LAUNCH_KEYS,
)
_TASK = _Table(
    "create_task",
    {
        "title": _Key(str, _task_template, missing=_required("the task's title (a template)")),
        "task_type": _Key(str, _task_type),
        "summary": _Key(str, _task_template),
        "description": _Key(str, _task_template, after=_not_with_summary),
        "owners": _Key(
            dict,
            read=_Reader.owners,
            missing=_required(
                "{ users = [...], groups = [...], guests = [...] } with at least one"
            ),
            wrong_type=_OWNERS_TYPE,
        ),
        "started_at": _Key(
            str, _time_expression, missing=lambda reader, path: _time_expression(DEFAULT_STARTED_AT)
        ),
        "deadline": _Key(
            str, _time_expression, missing=_required("a time expression such as '+0@17:00'")
        ),
        "run_from_job": _Key(str, test=JOB_ID.fullmatch, message="must be a job id"),
        "run_id": _Key(str, test=HEX_ID.fullmatch, message=_HEX_ID, after=_not_with_run_from_job),
    },
    known=TASK_KEYS,
)
_TASK_EXTRA = _Table(
    "create_task's extra keys",
    {
        "tags": _HEX_IDS,
        **{key: _Key(bool) for key in TASK_BOOL_KEYS},
        "max_assignable": _Key(int, test=_not_negative, message="must be 0 (no limit) or more"),
        "webhook": _Key(str, _https_url),
        "form_fields": _Key(list, read=_Reader.form_fields),
    },
)
_STEP = _Table(
    "a step",
    {
        "deadline": _Key(str, _time_expression),
        "owners": _Key(dict, read=_Reader.owners, wrong_type=_OWNERS_TYPE),
    },
    known=STEP_KEYS,
)
_AT = _Key(str, _time_expression)
_FORM_FIELD = _Table(
    "a form field", {"label": _Key(str), "field_type": _Key(str), "required": _Key(bool)}
)


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
        self.alert_targets(job, reader)
        instant = self.sample_instant(job, reader)
        if instant is None:
            return
        if (
            job.skip_on is not None
            and job.next_fire(self.now) is not None  # a window already over says so itself
            and next_firing(job, self.now, self.calendar) is None
        ):
            reader.bad(
                ("skip_on",),
                "every instant the schedule has left (or in the next ten years) falls on a skip "
                "day: the job would never fire",
                job.skip_on.to_document(),
            )
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

    def alert_targets(self, job: Job, reader: _Reader) -> None:
        """Every target the job names is one the config knows."""
        known = self.settings.alerts.target_names
        for name in job.alert:
            if name not in known:
                reader.bad(
                    ("alert",),
                    f"no alert target of this name: the config knows {', '.join(known)} "
                    "([alerts.targets] adds more)",
                    name,
                )

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
