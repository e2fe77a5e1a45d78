"""Templates are not code: every attack on the formatter is refused when a job is validated.

A template is user text. Python's `str.format` would read attributes and globals from it
(`{0.__globals__}`), call `__format__` with user-chosen specs (`{job:>999999999}` allocates a
gigabyte) and `strftime` passes unknown directives to the C library. The scheduler's own
tokenizer (scheduler/templates.py) accepts only `{NAME}` and `{INSTANT:strftime}`; these tests
prove each attack is refused by `jobs validate` with exit 1, naming the file and the key, and
that nothing was evaluated on the way: no class, function or global shows in any output, the
output stays proportional to the input, the store stays unchanged, and a definition that
bypassed validation (written straight into the store) is refused by the daemon's own gate
(`job_from_document`) before anything is rendered or sent.
"""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner, Result

from scheduler.cli import App, cli
from scheduler.clock import FakeClock
from scheduler.config import Settings, StoreSettings
from scheduler.definitions import job_from_document, load_job_files
from scheduler.errors import DefinitionError, TemplateError
from scheduler.job import schedule_key
from scheduler.store import JobDocument, Store
from scheduler.templates import FIRE_NAMES, fire_values, parse_template

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
HEX = "beeffbdddf558869a18556731b2da7c2"
FIELD = "16e27d901362e3abffae5c18ea1a8d12"

# (template, what the refusal says). Each is refused wherever a template is allowed.
ATTACKS = [
    ("{fire.__class__}", "attribute and index access are not allowed"),
    ("{job[0]}", "attribute and index access are not allowed"),
    ("{0.__globals__}", "attribute and index access are not allowed"),
    ("{fire.__init__.__globals__[os]}", "attribute and index access are not allowed"),
    ("{fire_utc.tzinfo.__class__.__mro__}", "attribute and index access are not allowed"),
    ("{job!r}", "conversions such as '!r' are not allowed"),
    ("{fire!s:%Y}", "conversions such as '!r' are not allowed"),
    ("{job:>999999999}", "a format is allowed only on instants"),
    ("{seq:,}", "a format is allowed only on instants"),
    ("{iso_week:{fire}}", "a placeholder cannot contain '{'"),
    ("{fire:%Q}", "'%Q' is not an allowed directive"),
    ("{fire:%-d}", "'%-' is not an allowed directive"),
    ("{fire:%c}", "'%c' is not an allowed directive"),
    ("{fire:%}", "a lone '%' at the end"),
    ("{fire:}", "empty format"),
    ("{fire:%Y" + "%Y" * 60 + "}", "format longer than 100 characters"),
    ("{fire:{job}}", "a placeholder cannot contain '{'"),
    ("{fire:>{seq}}", "a placeholder cannot contain '{'"),
    ("{{{job}}}}", "single '}'"),
    ("Review {fire", "is not closed"),
    ("Review }", "single '}'"),
    ("{}", "positional placeholders are not allowed"),
    ("{0}", "positional placeholders are not allowed"),
    ("{ fire }", "not a placeholder name"),
    ("{__import__}", "unknown name '__import__'"),
    ("{self}", "unknown name 'self'"),
    ("x" * 30_001, "characters: at most 30000"),
]
ATTACK_IDS = [
    "dunder-class",
    "index",
    "positional-globals",
    "globals-chain",
    "mro-chain",
    "conversion-r",
    "conversion-s-with-format",
    "format-spec-width",
    "format-spec-on-int",
    "nested-in-format",
    "directive-Q",
    "glibc-flag",
    "locale-directive",
    "lone-percent",
    "empty-format",
    "huge-strftime",
    "nested-braces",
    "format-spec-injection",
    "unbalanced-close",
    "unclosed",
    "lone-close",
    "empty-positional",
    "numbered-positional",
    "spaces",
    "builtin-name",
    "unknown-name",
    "very-long",
]

# Where templates live, and the key a refusal must name.
PLACES = {
    "name": ("launch_process", "action.name"),
    "summary": ("launch_process", "action.summary"),
    "prerun": ("launch_process", f"action.prerun.{FIELD}"),
    "title": ("create_task", "action.title"),
}
# Evidence that something was evaluated: a repr of a class, function, module or datetime.
EVALUATED = re.compile(r"<class |<function |<module |<built-in|__builtins__|datetime\.datetime\(")


def job_file(place: str, template: str) -> str:
    """A valid job, except for `template` at `place`."""
    quoted = _toml_string(template)
    if place == "title":
        return (
            'schedule = "0 8 * * MON-FRI"\ntimezone = "America/New_York"\n\n[action]\n'
            f'type = "create_task"\ntitle = {quoted}\n'
            'owners = { users = [1001] }\ndeadline = "+0@17:00"\n'
        )
    name = quoted if place == "name" else '"Review {fire:%d %b %Y}"'
    text = (
        'schedule = "0 9 * * MON"\ntimezone = "Europe/London"\n\n[action]\n'
        f'type = "launch_process"\nchecklist_id = "{HEX}"\nname = {name}\n'
    )
    if place == "summary":
        text += f"summary = {quoted}\n"
    if place == "prerun":
        text += f'\n[action.prerun]\n"{FIELD}" = {quoted}\n'
    return text


def _toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Cli:
    """`tallyfy-scheduler` in-process at a fixed instant, on a SQLite store under tmp_path."""

    def __init__(self, tmp_path: Path) -> None:
        self.db_path = tmp_path / "state" / "scheduler.db"
        self.config = tmp_path / "config.toml"
        self.config.write_text('[tallyfy]\norganization_id = "demo-org"\n')

    def __call__(self, *args: str) -> Result:
        result = CliRunner().invoke(
            cli,
            ["--config", str(self.config), "--db", f"sqlite:///{self.db_path}", *args],
            obj=App(clock=FakeClock(NOW)),
        )
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception  # a traceback is a crash, never an answer
        return result

    def dump(self) -> str:
        with sqlite3.connect(self.db_path) as conn:
            return "\n".join(conn.iterdump())


@pytest.fixture
def run(tmp_path: Path) -> Cli:
    runner = Cli(tmp_path)
    assert runner("init").exit_code == 0
    return runner


@pytest.mark.parametrize("place", sorted(PLACES))
@pytest.mark.parametrize(("template", "reason"), ATTACKS, ids=ATTACK_IDS)
def test_it_refuses_the_attack_at_validation_naming_file_and_key(
    run: Cli, tmp_path: Path, place: str, template: str, reason: str
) -> None:
    action, key = PLACES[place]
    path = tmp_path / "attack.toml"
    path.write_text(job_file(place, template), encoding="utf-8")

    result = run("jobs", "validate", str(path))

    assert result.exit_code == 1, result.output
    lines = result.stderr.rstrip("\n").split("\n")
    assert len(lines) == 1, lines
    assert re.match(rf"{re.escape(str(path))}:\d+: {re.escape(key)} = ", lines[0]), lines[0]
    assert reason in lines[0]
    assert not EVALUATED.search(result.output), result.output
    # Quoted back cut short: the output stays small whatever the input's size.
    assert len(result.output) < 1000


@pytest.mark.parametrize(("template", "reason"), ATTACKS, ids=ATTACK_IDS)
def test_the_template_parser_itself_refuses_it(template: str, reason: str) -> None:
    with pytest.raises(TemplateError) as caught:
        parse_template(template, allowed=FIRE_NAMES)
    assert reason in str(caught.value)
    assert not EVALUATED.search(str(caught.value))


def test_a_refused_apply_stores_nothing_and_names_every_file(run: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "attacks"
    folder.mkdir()
    files = []
    for index, (template, _reason) in enumerate(ATTACKS):
        path = folder / f"attack-{index:02d}.toml"
        path.write_text(job_file("name", template), encoding="utf-8")
        files.append(str(path))
    before = run.dump()

    result = run("jobs", "apply", str(folder))

    assert result.exit_code == 1
    lines = result.stderr.rstrip("\n").split("\n")
    assert sorted(line.split(":", 1)[0] for line in lines) == files  # one line per file
    assert run.dump() == before
    assert run("jobs", "list", "--json").stdout.strip() == '{"jobs": []}'


def test_a_long_template_that_renders_too_long_is_refused_before_it_is_sent(
    run: Cli, tmp_path: Path
) -> None:
    """Valid placeholders only, but a name the API would refuse (> 550 once rendered)."""
    path = tmp_path / "long.toml"
    path.write_text(job_file("name", "{fire:%A %d %B %Y} " * 40), encoding="utf-8")

    result = run("jobs", "validate", str(path))

    assert result.exit_code == 1
    assert "action.name = " in result.stderr
    assert "characters once rendered (at most 550)" in result.stderr


def test_a_summary_that_renders_past_the_apis_longest_text_is_refused(
    run: Cli, tmp_path: Path
) -> None:
    """Under 30,000 characters as written, over 30,000 once every `%A` became a day name."""
    template = "{fire:" + "%A" * 50 + "}"
    path = tmp_path / "summary.toml"
    path.write_text(job_file("summary", template * (29_000 // len(template))), encoding="utf-8")

    result = run("jobs", "validate", str(path))

    assert result.exit_code == 1
    assert "action.summary = " in result.stderr
    assert "characters once rendered (at most 30000)" in result.stderr
    assert len(result.output) < 1000


# -- a definition that bypassed validation --------------------------------------------------------


def _settings() -> Settings:
    return Settings(store=StoreSettings(url="sqlite://"))


def _valid_document(tmp_path: Path) -> dict[str, object]:
    path = tmp_path / "valid.toml"
    path.write_text(job_file("name", "Review {fire:%d %b %Y}"), encoding="utf-8")
    [job] = load_job_files([path], _settings(), NOW)
    return job.to_document()


@pytest.mark.parametrize(("template", "reason"), ATTACKS[:8], ids=ATTACK_IDS[:8])
def test_the_daemons_gate_refuses_a_stored_attack(
    tmp_path: Path, template: str, reason: str
) -> None:
    """`job_from_document` (what the daemon loads stored jobs with) re-parses every template."""
    document = _valid_document(tmp_path)
    document["action"] = {**document["action"], "name": template}  # type: ignore[dict-item]

    with pytest.raises(DefinitionError) as caught:
        job_from_document(document, _settings())

    [problem] = caught.value.problems
    assert problem.key == "action.name"
    assert reason in problem.message


def test_preview_and_fire_refuse_a_stored_attack_before_rendering_or_sending(
    run: Cli, tmp_path: Path
) -> None:
    """Written straight into the store (as an older version or a hand edit could leave it)."""
    document = _valid_document(tmp_path)
    document["id"] = "tampered"
    document["action"] = {**document["action"], "name": "{0.__globals__}"}  # type: ignore[dict-item]
    store = Store.open(f"sqlite:///{run.db_path}")
    try:
        store.apply(
            [JobDocument("tampered", document, schedule_key("0 9 * * MON", "Europe/London"))],
            prune=False,
            now=NOW,
        )
    finally:
        store.close()

    for args in (
        ("preview", "tampered", "--at", "2026-03-09T09:00:00Z"),
        ("fire", "tampered", "--at", "2026-03-09T09:00:00Z"),
    ):
        result = run(*args)
        assert result.exit_code == 1, (args, result.output)
        assert "action.name = '{0.__globals__}'" in result.stderr
        assert "attribute and index access are not allowed" in result.stderr
        assert not EVALUATED.search(result.output)
    assert run("history", "--json").stdout.strip() == '{"fires": []}'  # nothing was claimed
    listed = run("jobs", "list", "--json")
    assert listed.exit_code == 0
    assert "attribute and index access are not allowed" in listed.stdout


# -- rendering never hands user text to a formatter ------------------------------------------------


class _NoFormatting(datetime):
    """An instant that fails the test if anything formats it the Python way."""

    def __format__(self, spec: str) -> str:
        raise AssertionError(f"format() was called with {spec!r}")

    def strftime(self, fmt: str) -> str:
        raise AssertionError(f"strftime() was called with {fmt!r}")


class _NoFormattingText(str):
    def __format__(self, spec: str) -> str:
        raise AssertionError(f"format() was called with {spec!r}")


def test_rendering_uses_the_schedulers_own_directives_never_format_or_strftime() -> None:
    zone = ZoneInfo("Europe/London")
    values = fire_values("weekly-review", datetime(2026, 3, 9, 9, tzinfo=UTC), zone, 3)
    instant = values["fire"]
    assert isinstance(instant, datetime)
    values["fire"] = _NoFormatting.fromtimestamp(instant.timestamp(), zone)
    values["job"] = _NoFormattingText("weekly-review")
    template = parse_template(
        "{job} #{seq} {fire:%a %d %b %Y %H:%M %Z %z} {fire} week {iso_week} {{x}}"
    )

    assert template.render(values) == (
        "weekly-review #3 Mon 09 Mar 2026 09:00 GMT +0000 2026-03-09T09:00:00+00:00 "
        "week 2026-W11 {x}"
    )
