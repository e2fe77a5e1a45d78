"""Generated job files: `jobs validate` and `jobs apply` never crash, and a refusal stores nothing.

Hypothesis writes job files of several kinds: random TOML documents (random keys, types and
nesting), near-valid mutations of the example jobs in jobs/ (alone, and beside the examples),
random bytes and damaged TOML, and the example jobs with a generated cron expression, time
expression, template, start_at/end_at instant, duration or count in place of theirs (from
grammars that mix the valid forms with the attacks, the edges of what datetime holds, and junk).
Each file goes through `jobs validate`, `jobs apply --dry-run` and `jobs apply` (click's
CliRunner, a SQLite store under the module's tmp dir that already holds the example jobs).
Every run must:

- end with exit code 0 or 1, never a traceback (nor a click usage error: 2);
- on exit 1, print one line per problem, each naming the file, and the key unless the problem
  is the file itself (TOML syntax, not UTF-8);
- leave the store byte-for-byte as it was (a dump of every table before and after), except
  for an `apply` that succeeded; a validation refusal reads the same through `apply`;
- and what an `apply` did store, the daemon's gate loads (no job listed as invalid), and
  `next` and `preview` of it end without a crash.

A handful of the nastiest files also go through a real `python -m scheduler` subprocess.

CI runs a fixed number of examples per kind, derandomized (the same inputs every run, ~1 min
in all); `TALLYFY_RELIABILITY_SOAK=N` (or `--soak N`) multiplies the counts (at least by 10)
and draws fresh random inputs. Each test prints how many examples it tried.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import sqlite3
import subprocess
import sys
import tomllib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler.cli import App, cli
from scheduler.clock import FakeClock
from scheduler.definitions import JOB_KEYS, LAUNCH_KEYS, TASK_KEYS
from scheduler.templates import FIRE_NAMES, STRFTIME_DIRECTIVES

EXAMPLES = Path(__file__).resolve().parents[2] / "jobs"
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday
FUZZ_FILE = "fuzz-job.toml"  # a valid job id as a stem: the file name itself is not the fault

_SOAK_ENV = os.environ.get("TALLYFY_RELIABILITY_SOAK")  # read before the env is cleared
TRIED: Counter[str] = Counter()  # examples tried, by kind (printed by each test)


def scale(soak: int) -> int:
    """How many times CI's example counts to run: 1 in CI, at least 10 when soaking."""
    if soak > 1:
        return max(soak, 10)
    return 10 if _SOAK_ENV else 1


def fuzz(examples: int, soak: int) -> Callable[[Any], Any]:
    """Hypothesis settings: derandomized in CI (the same inputs each run), random when soaking."""
    factor = scale(soak)
    return settings(
        max_examples=examples * factor,
        derandomize=factor == 1,
        database=None,
        deadline=None,
        print_blob=True,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
    )


# -- TOML writing -------------------------------------------------------------------------------
_BARE = re.compile(r"[A-Za-z0-9_-]+")


def toml_string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_key(key: str) -> str:
    return key if _BARE.fullmatch(key) else toml_string(key)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def toml_document(doc: dict[str, Any]) -> str:
    """Top-level scalars first, then each top-level table as a `[section]` (nested: inline)."""
    lines = [f"{toml_key(k)} = {toml_value(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    for key, value in doc.items():
        if isinstance(value, dict):
            lines.append(f"\n[{toml_key(key)}]")
            lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()]
    return "\n".join(lines) + "\n"


# -- grammars -----------------------------------------------------------------------------------
# Any text a TOML file can hold (no lone surrogates: they cannot be written as UTF-8).
any_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)

HEX = "beeffbdddf558869a18556731b2da7c2"
ZONES = [
    "UTC",
    "Europe/London",
    "America/New_York",
    "Pacific/Chatham",
    "Mars/Olympus",
    "utc",
    " UTC",
    "",
    "../../etc/passwd",
    "/etc/localtime",
    "Europe/",
    "EST5EDT",
    "Etc/GMT+14",
]

CRON_NAMES = [
    *"JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split(),
    *"SUN MON TUE WED THU FRI SAT mon Fri".split(),
    *"JANUARY MONDAY FRIL 5L L LW W ? H H(0-29) H(30-0) H(5) 5#2 FRI#5 0#1 5#6 #".split(),
]
cron_atom = st.one_of(
    st.just("*"),
    st.integers(-3, 70).map(str),
    st.integers(0, 10**12).map(str),
    st.sampled_from(CRON_NAMES),
    st.builds(lambda a, b: f"H({a}-{b})", st.integers(-1, 70), st.integers(-1, 70)),
    st.builds(lambda d, n: f"{d}#{n}", st.integers(-1, 8), st.integers(-1, 6)),
    st.text("*-/,#LWH?0123456789 ", max_size=4),
)
cron_range = st.one_of(cron_atom, st.builds(lambda a, b: f"{a}-{b}", cron_atom, cron_atom))
cron_step = st.one_of(
    cron_range,
    st.builds(
        lambda r, s: f"{r}/{s}", cron_range, st.one_of(st.integers(-1, 100).map(str), cron_atom)
    ),
)
cron_field = st.lists(cron_step, min_size=1, max_size=3).map(",".join)
cron_expressions = st.one_of(
    st.lists(cron_field, min_size=4, max_size=7).map(" ".join),
    st.lists(cron_field, min_size=5, max_size=6).map("\t ".join),
    st.sampled_from(
        [
            "@yearly",
            "@annually",
            "@monthly",
            "@weekly",
            "@daily",
            "@midnight",
            "@hourly",
            "@reboot",
            "@every 5m",
            "@",
            "",
            " ",
            "0 0 30 2 *",
            "0 0 31 4 *",
            "* * * * * * *",
            "*/0 * * * *",
            "30-10 * * * *",
            "5/15 * * * *",
            "0 0 13 * FRI",
            "0 0 L * *",
            "0 0 * * 5L",
            "0 0 * * FRI#2",
            "H H(0-29) * * *",
            "0 30 2 * * *",
            "* * * * *\n* * * * *",
        ]
    ),
    any_text,
)

TIME_UNITS = ["m", "h", "d", "w", "mo", "bd", "", "M", "s", "y", "BD", "x", "mon"]
time_term = st.builds(
    lambda sign, n, unit: f"{sign}{n}{unit}",
    st.sampled_from(["+", "-", "", "++", "+-"]),
    st.one_of(st.integers(0, 40), st.integers(0, 10**20), st.just(5_270_401)),
    st.sampled_from(TIME_UNITS),
)
time_at = st.one_of(
    st.just(""),
    st.builds(lambda h, m: f"@{h:02d}:{m:02d}", st.integers(0, 30), st.integers(0, 70)),
    st.sampled_from(["@", "@9:00", "@24:00", "@23:59", "@xx:yy", "@17:00@17:00", "@ 17:00"]),
)
time_expressions = st.one_of(
    st.builds(lambda terms, at: "".join(terms) + at, st.lists(time_term, max_size=10), time_at),
    st.sampled_from(
        [
            "+0",
            "-0",
            "+0bd",
            "+1mo+0bd@09:00",
            "+3660d",
            "+3661d",
            "+120mo+120mo+120mo+120mo+120mo+120mo+120mo+120mo",
            "-120mo-120mo-120mo-120mo-120mo-120mo-120mo-120mo",
            "2026-03-08T09:00:00-05:00",
            "2026-03-08T09:00:00",
            "2026-03-08",
            "9999-12-31T23:59:59+00:00",
            "0001-01-01T00:00:00+00:00",
            "2026-13-01T00:00:00Z",
            " +1d ",
            "\n+1d",
        ]
    ),
    st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5))])).map(
        datetime.isoformat
    ),
    any_text,
)

# start_at / end_at: instants at the edges of what datetime holds, in far-off offsets.
far_offsets = st.sampled_from(
    [
        UTC,
        timezone(timedelta(hours=14)),
        timezone(timedelta(hours=-12)),
        timezone(-timedelta(minutes=1)),
    ]
)
instants = st.one_of(
    st.datetimes(timezones=far_offsets),
    st.datetimes(min_value=datetime(9998, 12, 1), timezones=far_offsets),
    st.datetimes(max_value=datetime(1, 2, 1), timezones=far_offsets),
    st.datetimes(timezones=st.none()),
    st.sampled_from(
        [
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-01:00",
            "9999-12-31T23:59:59.999999Z",
            "1970-01-01T00:00:00Z",
            "8999-12-31T23:59:59Z",
            "2026-03-02T12:00:00Z",
            "2026-03-02T12:00:00",
            "2026-02-30T00:00:00Z",
            "now",
        ]
    ),
    any_text,
)
durations = st.one_of(
    st.sampled_from(
        ["0", "0s", "1d", "25h", "86401s", "3660d", "3661d", "142857142w", "1h30m", "-1s", " 5m "]
    ),
    st.builds(
        lambda n, unit: f"{n}{unit}",
        st.one_of(st.integers(0, 100), st.integers(0, 10**25)),
        st.sampled_from(["s", "m", "h", "d", "w", "y", ""]),
    ),
    st.integers(-5, 10**6),
    any_text,
)

# Every attack the spec names, plus the placeholders around them.
TEMPLATE_ATTACKS = [
    "{fire.__class__}",
    "{job[0]}",
    "{0.__globals__}",
    "{job!r}",
    "{job:>999999999}",
    "{fire:%Q}",
    "{fire:{job}}",
    "{fire:%Y{job}}",
    "{fire:>{seq}}",
    "{{fire}}",
    "{fire}}",
    "{{{fire}",
    "{",
    "}",
    "{}",
    "{0}",
    "{ fire }",
    "{__import__}",
    "{fire.__init__.__globals__[os]}",
    "{fire:%Y" + "%Y" * 60 + "}",
    "{deadline:" + "%A" * 50 + "}",
    "{fire:%}",
    "{fire:%-d}",
    "{fire:%c}",
    "{seq:05}",
    "{fire_utc:%s}",
]
placeholder = st.builds(
    lambda name, conv, spec: "{" + name + conv + (":" + spec if spec is not None else "") + "}",
    st.one_of(
        st.sampled_from(sorted(FIRE_NAMES)),
        st.sampled_from(["", "0", "1", "x", "self", "fire.year", "job[0]", "fire.__class__"]),
        any_text.filter(lambda t: "{" not in t and "}" not in t),
    ),
    st.sampled_from(["", "", "", "!r", "!s", "!a", "!"]),
    st.one_of(
        st.none(),
        st.lists(
            st.one_of(
                st.sampled_from([f"%{d}" for d in STRFTIME_DIRECTIVES]),
                st.sampled_from(["%Q", "%E", "%O", "%-d", "%#d", "%", " ", "-", "/", ":"]),
            ),
            max_size=70,
        ).map("".join),
        st.sampled_from([">999999999", "0>10", ",", ".999999999f", "x<20", "%Y" * 500]),
    ),
)
templates = st.one_of(
    st.lists(
        st.one_of(
            any_text.filter(lambda t: "{" not in t and "}" not in t),
            placeholder,
            st.sampled_from(TEMPLATE_ATTACKS),
        ),
        max_size=8,
    ).map("".join),
    st.sampled_from(TEMPLATE_ATTACKS),
    st.builds(
        lambda piece, n: piece * n,
        st.sampled_from(["{fire:%Y}", "x", "{job}"]),
        st.integers(1, 3000),
    ),
    any_text,
)

# Random values and keys for whole documents.
KNOWN_KEYS = sorted({*JOB_KEYS, *LAUNCH_KEYS, *TASK_KEYS, "users", "groups", "guests", "at"})
keys = st.one_of(st.sampled_from(KNOWN_KEYS), any_text.map(lambda t: t[:12]), st.just(HEX))
interesting_strings = st.one_of(
    st.sampled_from([HEX, "launch_process", "create_task", "ops@example.com", "all", "latest"]),
    st.sampled_from(ZONES),
    st.sampled_from(["90s", "1h30m", "0", "-1s", "99999999999999999999w", "142857142w", "2d"]),
    cron_expressions,
    time_expressions,
    templates,
    any_text,
)
scalars = st.one_of(
    interesting_strings,
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from([0, -1, 1, 2**63 - 1, 10**30]),
    st.floats(),
    st.booleans(),
    st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.none()
    ),
    st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))])),
    st.dates(),
    st.times(),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=12,
)
documents = st.dictionaries(keys, values, max_size=8)


def _example_docs() -> list[dict[str, Any]]:
    return [tomllib.loads(p.read_text()) for p in sorted(EXAMPLES.glob("*.toml"))]


EXAMPLE_DOCS = _example_docs()
# Which generator suits a key: the fuzzed value is still of the kind the key expects, mostly.
LEAF_GRAMMAR: dict[str, st.SearchStrategy[Any]] = {
    "schedule": cron_expressions,
    "deadline": time_expressions,
    "started_at": time_expressions,
    "at": time_expressions,
    "name": templates,
    "title": templates,
    "summary": templates,
    "timezone": st.sampled_from(ZONES),
    "start_at": instants,
    "end_at": instants,
    "jitter": durations,
    "catch_up_window": durations,
}


def _paths(node: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every key path in a parsed document (tables included)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*prefix, key)
            yield from _paths(value, (*prefix, key))


def _parent(doc: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    node: Any = doc
    for part in path[:-1]:
        node = node[part]
    return node


@st.composite
def near_valid_documents(draw: st.DrawFn) -> dict[str, Any]:
    """An example job with one to four mutations: a key deleted, renamed, added, or a value
    replaced (by a generated expression/template for keys that hold one, else anything)."""
    doc = copy.deepcopy(draw(st.sampled_from(EXAMPLE_DOCS)))
    for _ in range(draw(st.integers(1, 4))):
        paths = list(_paths(doc))
        op = draw(st.sampled_from(["delete", "rename", "insert", "replace", "replace", "leaf"]))
        if not paths:
            op = "insert"
        if op == "insert":
            tables = [()] + [p for p in paths if isinstance(_value_at(doc, p), dict)]
            table = draw(st.sampled_from(tables))
            target = _value_at(doc, table) if table else doc
            key = draw(st.one_of(keys, st.sampled_from(sorted(LEAF_GRAMMAR))))
            use_grammar = key in LEAF_GRAMMAR and draw(st.booleans())
            target[key] = draw(LEAF_GRAMMAR[key]) if use_grammar else draw(values)
            continue
        path = draw(st.sampled_from(paths))
        parent = _parent(doc, path)
        if op == "delete":
            del parent[path[-1]]
        elif op == "rename":
            parent[draw(keys)] = parent.pop(path[-1])
        elif op == "leaf" and path[-1] in LEAF_GRAMMAR:
            parent[path[-1]] = draw(LEAF_GRAMMAR[path[-1]])
        else:
            parent[path[-1]] = draw(values)
    return doc


def _value_at(doc: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = doc
    for part in path:
        node = node[part]
    return node


def with_leaf(path: tuple[str, ...], grammar: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """An example job (the first with a table at `path[:-1]`), a generated value at `path`."""
    base = next(d for d in EXAMPLE_DOCS if _has(d, path[:-1]))

    def build(value: Any) -> dict[str, Any]:
        doc = copy.deepcopy(base)
        _parent(doc, path)[path[-1]] = value
        return doc

    return grammar.map(build)


def _has(doc: dict[str, Any], path: tuple[str, ...]) -> bool:
    try:
        _value_at(doc, path)
    except (KeyError, TypeError):
        return False
    return True


@st.composite
def damaged_text(draw: st.DrawFn) -> bytes:
    """An example file with bytes inserted, deleted or swapped: mostly TOML syntax errors."""
    text = bytearray(draw(st.sampled_from(sorted(EXAMPLES.glob("*.toml")))).read_bytes())
    for _ in range(draw(st.integers(1, 5))):
        at = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["insert", "delete", "dup"]))
        if op == "insert":
            text[at:at] = draw(
                st.one_of(
                    st.sampled_from([b"[", b"]", b'"', b"=", b"\n", b"\x00", b"\xff", b"{"]),
                    st.binary(max_size=4),
                )
            )
        elif op == "delete":
            del text[at : at + draw(st.integers(1, 40))]
        else:
            text[at:at] = text[at : at + draw(st.integers(1, 80))]
    return bytes(text)


# -- the bench: a CLI and a store under the module's tmp dir -------------------------------------
# The key of a problem line: dotted bare keys, or quoted ones where the key needs quotes.
_KEY_PART = r'(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*")'
_KEY_PATH = re.compile(rf"{_KEY_PART}(?:\.{_KEY_PART})*(?: = |: )")
FILE_PROBLEMS = ("invalid TOML: ", "cannot read: ")  # about the file as a whole: no key


class Bench:
    """Runs `tallyfy-scheduler` commands in-process and checks every outcome (module doc)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.db_path = root / "state" / "scheduler.db"
        self.db_url = f"sqlite:///{self.db_path}"
        self.config = root / "config.toml"
        self.config.write_text('[tallyfy]\norganization_id = "demo-org"\n')
        self.case = root / "case"
        self.case.mkdir()
        self.outcomes: Counter[str] = Counter()
        assert self.invoke("init").exit_code == 0
        # The examples are stored, so a generated job may change one, or point at one.
        assert self.invoke("jobs", "apply", str(EXAMPLES)).exit_code == 0
        self.baseline = self.dump()

    def invoke(self, *args: str) -> Result:
        return CliRunner().invoke(
            cli,
            ["--config", str(self.config), "--db", self.db_url, *args],
            obj=App(clock=FakeClock(NOW)),
        )

    def dump(self) -> str:
        """Every table of the store, row by row, as SQL text."""
        with sqlite3.connect(self.db_path) as conn:
            return "\n".join(conn.iterdump())

    # one example
    def try_file(self, content: bytes | str, kind: str) -> None:
        TRIED[kind] += 1
        path = self.case / FUZZ_FILE
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_bytes(content)
        self.try_paths([path])

    def try_paths(self, paths: Sequence[Path]) -> None:
        files = [str(p) for p in paths]
        validate = self.check(self.invoke("jobs", "validate", *files), files)
        dry = self.check(self.invoke("jobs", "apply", "--dry-run", *files), files)
        assert self.dump() == self.baseline, "validate or a dry run changed the store"
        applied = self.check(self.invoke("jobs", "apply", *files), files)
        if validate.exit_code == 1:
            # A validation refusal is the same refusal through apply, word for word.
            assert (dry.exit_code, applied.exit_code) == (1, 1)
            assert applied.stderr == validate.stderr == dry.stderr
        if applied.exit_code == 1:
            assert self.dump() == self.baseline, "a refused apply changed the store"
        else:
            assert validate.exit_code == 0
            self.baseline = self.dump()
            self.check_stored(applied.stdout)
        self.outcomes["refused" if applied.exit_code else "stored"] += 1

    def check_stored(self, plan: str) -> None:
        """What apply stored, the daemon can load (its gate: no job listed as invalid), and
        `next` and `preview` handle it without a crash."""
        listed = self.invoke("jobs", "list", "--json")
        assert listed.exit_code == 0, listed.output
        for row in json.loads(listed.stdout)["jobs"]:
            assert "error" not in row, row
        touched = [
            job_id
            for line in plan.splitlines()
            if line.startswith(("added: ", "changed: "))
            for job_id in line.split(": ", 1)[1].split(", ")
            if job_id != "-"
        ]
        for job_id in touched:
            for args in (("next", job_id, "--count", "3"), ("preview", job_id, "--json")):
                result = self.invoke(*args)
                if result.exception is not None and not isinstance(result.exception, SystemExit):
                    raise result.exception
                assert result.exit_code in (0, 1) and "Traceback" not in result.output

    def check(self, result: Result, files: Sequence[str]) -> Result:
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception  # a traceback is a crash, never an answer
        assert result.exit_code in (0, 1), (result.exit_code, result.output)
        assert "Traceback" not in result.output
        if result.exit_code == 1:
            assert_problem_lines(result.stderr, files)
        return result


def assert_problem_lines(stderr: str, files: Sequence[str]) -> None:
    """Each stderr line names one of `files` and (unless about the whole file) a key."""
    lines = stderr.rstrip("\n").split("\n")
    assert lines and all(lines), repr(stderr)
    for line in lines:
        file = next((f for f in files if line.startswith(f + ":")), None)
        assert file is not None, f"names no file: {line!r}"
        rest = re.sub(r"^:\d+", "", line[len(file) :])
        assert rest.startswith(": "), line
        rest = rest[2:]
        assert rest.startswith(FILE_PROBLEMS) or _KEY_PATH.match(rest), f"names no key: {line!r}"


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Bench:
    return Bench(tmp_path_factory.mktemp("fuzz"))


def report(kind: str, bench: Bench) -> None:
    print(f"\n[fuzz] {kind}: {TRIED[kind]} examples tried; so far {dict(bench.outcomes)}")
    assert TRIED[kind] > 0


# -- the tests ----------------------------------------------------------------------------------


def test_random_toml_documents_never_crash_and_a_refusal_stores_nothing(
    bench: Bench, soak: int
) -> None:
    @fuzz(300, soak)
    @given(doc=documents)
    def run(doc: dict[str, Any]) -> None:
        bench.try_file(toml_document(doc), "random documents")

    run()
    report("random documents", bench)


def test_mutated_example_jobs_never_crash_and_a_refusal_stores_nothing(
    bench: Bench, soak: int
) -> None:
    @fuzz(500, soak)
    @given(doc=near_valid_documents())
    def run(doc: dict[str, Any]) -> None:
        bench.try_file(toml_document(doc), "mutated examples")

    run()
    report("mutated examples", bench)


def test_a_mutated_job_beside_the_examples_is_all_or_nothing(bench: Bench, soak: int) -> None:
    """Three files applied together: one bad file means none of them is stored."""
    folder = bench.root / "together"
    folder.mkdir()
    for example in EXAMPLES.glob("*.toml"):
        (folder / example.name).write_text(example.read_text().replace("Acme", "Acme Ltd"))

    @fuzz(150, soak)
    @given(doc=near_valid_documents())
    def run(doc: dict[str, Any]) -> None:
        TRIED["mutated beside the examples"] += 1
        (folder / FUZZ_FILE).write_text(toml_document(doc), encoding="utf-8")
        bench.try_paths([folder / FUZZ_FILE, *sorted(folder.glob("[!f]*.toml"))])

    run()
    report("mutated beside the examples", bench)


def test_random_bytes_and_damaged_toml_never_crash(bench: Bench, soak: int) -> None:
    @fuzz(300, soak)
    @given(content=st.one_of(st.binary(max_size=300), damaged_text()))
    def run(content: bytes) -> None:
        bench.try_file(content, "bytes and damaged TOML")

    run()
    report("bytes and damaged TOML", bench)


def test_generated_cron_expressions_are_accepted_or_refused_naming_the_schedule(
    bench: Bench, soak: int
) -> None:
    """And `next --cron` (the same engine) refuses exactly the expressions validation refuses."""

    @fuzz(400, soak)
    @given(doc=with_leaf(("schedule",), cron_expressions))
    def run(doc: dict[str, Any]) -> None:
        doc["timezone"] = "UTC"
        bench.try_file(toml_document(doc), "cron expressions")
        validated = bench.invoke("jobs", "validate", str(bench.case / FUZZ_FILE))
        preview = bench.invoke(
            "next", f"--cron={doc['schedule']}", "--tz=UTC", "--after=2026-03-02T12:00:00Z"
        )
        if preview.exception is not None and not isinstance(preview.exception, SystemExit):
            raise preview.exception
        assert preview.exit_code in (0, 1) and "Traceback" not in preview.output
        schedule_refused = any(
            re.match(rf"{re.escape(str(bench.case / FUZZ_FILE))}(:\d+)?: schedule( = |: )", line)
            for line in validated.stderr.split("\n")
        )
        assert schedule_refused == (preview.exit_code == 1), (validated.stderr, preview.output)

    run()
    report("cron expressions", bench)


@pytest.mark.parametrize(
    "path",
    [
        ("action", "deadline"),
        ("action", "started_at"),
        ("action", "prerun", "2024ec22c6346de494cc419191bb01aa", "at"),
        ("action", "tasks", "2f09054af7c94eda191606832f6775b8", "deadline"),
    ],
    ids=["deadline", "started_at", "prerun-at", "step-deadline"],
)
def test_generated_time_expressions_never_crash(
    bench: Bench, soak: int, path: tuple[str, ...]
) -> None:
    kind = f"time expressions at {'.'.join(path[:2])}"

    @fuzz(120, soak)
    @given(doc=with_leaf(path, time_expressions))
    def run(doc: dict[str, Any]) -> None:
        bench.try_file(toml_document(doc), kind)

    run()
    report(kind, bench)


@pytest.mark.parametrize(
    ("key", "grammar"),
    [
        ("start_at", instants),
        ("end_at", instants),
        ("jitter", durations),
        ("catch_up_window", durations),
        ("max_fires", st.one_of(st.integers(), st.sampled_from([0, -1, 2**63 - 1, 10**30]))),
    ],
    ids=["start_at", "end_at", "jitter", "catch_up_window", "max_fires"],
)
def test_generated_windows_durations_and_counts_never_crash(
    bench: Bench, soak: int, key: str, grammar: st.SearchStrategy[Any]
) -> None:
    kind = f"values of {key}"

    @fuzz(80, soak)
    @given(doc=with_leaf((key,), grammar), other=st.one_of(st.none(), instants))
    def run(doc: dict[str, Any], other: Any) -> None:
        if other is not None and key in ("start_at", "end_at"):
            doc["end_at" if key == "start_at" else "start_at"] = other
        bench.try_file(toml_document(doc), kind)

    run()
    report(kind, bench)


@pytest.mark.parametrize(
    "path",
    [
        ("action", "name"),
        ("action", "title"),
        ("action", "summary"),
        ("action", "prerun", "16e27d901362e3abffae5c18ea1a8d12"),
    ],
    ids=["name", "title", "summary", "prerun-value"],
)
def test_generated_templates_never_crash(bench: Bench, soak: int, path: tuple[str, ...]) -> None:
    kind = f"templates at {'.'.join(path[:2])}"

    @fuzz(150, soak)
    @given(doc=with_leaf(path, templates))
    def run(doc: dict[str, Any]) -> None:
        bench.try_file(toml_document(doc), kind)

    run()
    report(kind, bench)


# -- a real process -----------------------------------------------------------------------------
NASTY_FILES: list[tuple[str, bytes]] = [
    ("not-utf8", b'schedule = "* * * * *"\n\xff\xfe\n'),
    ("newline-in-key", b'"a\\nb\\u2028c" = 1\nschedule = "0 9 * * MON"\n'),
    (
        "globals-template",
        toml_document(
            {
                **EXAMPLE_DOCS[-1],
                "action": {**EXAMPLE_DOCS[-1]["action"], "name": "{0.__globals__}"},
            }
        ).encode(),
    ),
    (
        "huge-durations",
        b'schedule = "* * * * * *"\njitter = "142857142w"\ncatch_up_window = "9'
        + b"9" * 5000
        + b'w"\n',
    ),
    ("toml-bomb", b"a = " + b"[" * 2000 + b"]" * 2000 + b"\n"),
]


@pytest.mark.parametrize(("name", "content"), NASTY_FILES, ids=[name for name, _ in NASTY_FILES])
def test_a_real_process_refuses_nasty_files_cleanly(
    tmp_path: Path, name: str, content: bytes
) -> None:
    db = f"sqlite:///{tmp_path / 'scheduler.db'}"
    config = tmp_path / "config.toml"
    config.write_text("")
    job = tmp_path / f"{name}.toml"
    job.write_bytes(content)

    def cli_(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "scheduler", "--config", str(config), "--db", db, *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={k: v for k, v in os.environ.items() if not k.startswith("TALLYFY_")},
            check=False,
        )

    assert cli_("init").returncode == 0
    before = sqlite3.connect(tmp_path / "scheduler.db")
    dump = "\n".join(before.iterdump())
    before.close()
    result = cli_("jobs", "apply", str(job))
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    assert_problem_lines(result.stderr, [str(job)])
    with sqlite3.connect(tmp_path / "scheduler.db") as after:
        assert "\n".join(after.iterdump()) == dump
    assert json.loads(cli_("jobs", "list", "--json").stdout) == {"jobs": []}
