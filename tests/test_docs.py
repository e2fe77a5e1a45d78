"""The reference in docs/ keeps up with the code: every key, command and option is documented.

The lists of what to look for come from the code itself, never from a copy kept here: the key
tuples `definitions.py` checks job files against, the key sets `load_settings` checks a config
file against, the environment variables the code reads, and the click command tree. A key,
command or option added to the code without its documentation turns this file red.

Each item is looked for in its own section of the page (a markdown heading and what follows it,
up to the next heading of the same or a higher level), so a key documented for one action does
not count for the other.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import click
import pytest

import scheduler.config
import scheduler.notify
from scheduler import definitions
from scheduler.cli import cli
from scheduler.config import CatchUpPolicy, load_settings
from scheduler.errors import ConfigError
from scheduler.job import TaskType
from scheduler.templates import FIRE_NAMES, STRFTIME_DIRECTIVES
from scheduler.timeexpr import UNITS
from tallyfy_sandbox import FAULT_KINDS, FaultRule

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PROG = "tallyfy-scheduler"

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$")


def page(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def _headings(lines: list[str]) -> Iterator[tuple[int, int, str]]:
    """(line index, level, title) of each heading outside fenced code blocks (whose `# ...`
    lines are shell comments, not headings)."""
    fenced = False
    for index, line in enumerate(lines):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else _HEADING.match(line)
        if match:
            yield index, len(match.group(1)), match.group(2)


def section(text: str, title_part: str) -> str:
    """The first section whose heading contains `title_part`, up to the next heading of the
    same or a higher level; fails the test, naming the heading it wanted, when there is none."""
    lines = text.splitlines()
    found = list(_headings(lines))
    for position, (start, level, title) in enumerate(found):
        if title_part in title:
            end = next((i for i, lv, _ in found[position + 1 :] if lv <= level), len(lines))
            return "\n".join(lines[start:end])
    pytest.fail(f"no heading containing {title_part!r}")


def code_span(text: str, word: str) -> bool:
    """Whether `word` appears as a code span of its own, quoted or not: `word` or `"word"`."""
    return re.search(rf'`"?{re.escape(word)}"?`', text) is not None


def token(text: str, word: str) -> bool:
    """Whether `word` (an option such as `--dry-run`) appears as a whole token."""
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text) is not None


def undocumented(text: str, words: Iterable[str]) -> list[str]:
    return [word for word in words if not code_span(text, word)]


# -- job files ----------------------------------------------------------------------------------


def test_every_job_file_key_is_in_the_jobs_reference() -> None:
    jobs = page("jobs.md")
    job_keys = section(jobs, "Job keys")
    launch = section(jobs, "Action `launch_process`")
    task = section(jobs, "Action `create_task`")
    missing = {
        "job keys": undocumented(job_keys, definitions.JOB_KEYS),
        "catch_up policies": undocumented(job_keys, [p.value for p in CatchUpPolicy]),
        "action types": undocumented(jobs, definitions.ACTION_TYPES),
        "launch_process keys": undocumented(launch, definitions.LAUNCH_KEYS),
        "step override keys": undocumented(
            section(jobs, "per-step overrides"), definitions.STEP_KEYS
        ),
        "create_task keys": undocumented(task, definitions.TASK_KEYS),
        "form field keys": undocumented(task, definitions.FORM_FIELD_REQUIRED),
        "task types": undocumented(task, [t.value for t in TaskType]),
        "owners keys": undocumented(section(jobs, "Owners"), definitions.OWNERS_KEYS),
    }
    assert {what: keys for what, keys in missing.items() if keys} == {}


def test_every_template_name_directive_and_time_unit_is_in_the_jobs_reference() -> None:
    jobs = page("jobs.md")
    templates = section(jobs, "Templates")
    expressions = section(jobs, "Time expressions")
    missing = {
        "template names": undocumented(templates, sorted(FIRE_NAMES)),
        "strftime directives": undocumented(templates, [f"%{d}" for d in STRFTIME_DIRECTIVES]),
        "time expression units": [u for u in UNITS if f"+N{u}" not in expressions],
    }
    assert {what: items for what, items in missing.items() if items} == {}


# -- the config file and the environment ---------------------------------------------------------

_PROBE = "zz_docs_probe"
_KNOWN = re.compile(r"\(known: ([^)]*)\)$")


def _known_keys(config_text: str, folder: Path) -> dict[str, list[str]]:
    """What `load_settings` says it knows, per table, when each table holds an unknown key.

    config.py keeps its known-key sets inside `load_settings` (they are not module data), so
    the function itself is asked: its "unknown key (known: ...)" problem lists them.
    """
    path = folder / "config.toml"
    path.write_text(config_text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={}, cwd=folder)
    known: dict[str, list[str]] = {}
    for problem in caught.value.problems:
        table, _, key = (problem.key or "").rpartition(".")
        if key == _PROBE:
            match = _KNOWN.search(problem.message)
            assert match, f"the unknown-key message changed shape: {problem.message!r}"
            known[table] = match.group(1).split(", ")
    return known


@pytest.fixture(scope="module")
def config_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """Every table of the config file and the keys it accepts, as `load_settings` checks them."""
    folder = tmp_path_factory.mktemp("config-probe")
    tables = _known_keys(f"{_PROBE} = 1\n", folder)[""]
    keys = _known_keys("".join(f"[{t}]\n{_PROBE} = 1\n" for t in tables), folder)
    assert sorted(keys) == sorted(tables) and all(keys.values())
    return keys


def test_every_config_key_is_in_the_configuration_reference(
    config_keys: dict[str, list[str]],
) -> None:
    configuration = page("configuration.md")
    missing = {
        table: undocumented(section(configuration, f"`[{table}]`"), keys)
        for table, keys in config_keys.items()
    }
    assert {table: keys for table, keys in missing.items() if keys} == {}


def test_every_config_key_is_in_the_example_config(config_keys: dict[str, list[str]]) -> None:
    example = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    missing = [f"[{table}]" for table in config_keys if f"[{table}]" not in example]
    for table, keys in config_keys.items():
        for key in keys:
            # The token is refused in the file: the example says so instead of showing a key.
            if key != "access_token" and not re.search(rf"^#?\s*{key}\s*=", example, re.M):
                missing.append(f"{table}.{key}")
    assert missing == []


def test_every_environment_variable_the_code_reads_is_in_the_configuration_reference() -> None:
    read = set()
    for module in (scheduler.config, scheduler.notify):
        source = inspect.getsource(module)
        read |= set(re.findall(r'\b(?:environ|env)(?:\.get\(|\[)\s*"([A-Z][A-Z0-9_]*)"', source))
        # Secrets read through `_secret_sources(NAME, ...)`: NAME and NAME_FILE, named in the
        # call or in a `..._VARIABLE = "NAME"` constant.
        secrets = re.findall(r'_secret_sources\(\s*"([A-Z][A-Z0-9_]*)"', source)
        secrets += re.findall(r'^[A-Z_]+_VARIABLE = "([A-Z][A-Z0-9_]*)"', source, re.M)
        read |= {name for secret in secrets for name in (secret, f"{secret}_FILE")}
    assert "TALLYFY_ACCESS_TOKEN" in read  # the pattern still finds what the code reads
    configuration = page("configuration.md")
    assert sorted(v for v in read if not token(configuration, v)) == []


# -- the command line ---------------------------------------------------------------------------


def _commands() -> Iterator[tuple[str, click.Command, click.Context]]:
    """Every command of the CLI, groups included, with its path (`jobs apply`; "" for the root)."""

    def walk(
        command: click.Command, path: list[str], parent: click.Context | None
    ) -> Iterator[tuple[str, click.Command, click.Context]]:
        name = path[-1] if path else PROG
        ctx = click.Context(command, info_name=name, parent=parent, **command.context_settings)
        yield " ".join(path), command, ctx
        if isinstance(command, click.Group):
            for sub_name, sub in sorted(command.commands.items()):
                yield from walk(sub, [*path, sub_name], ctx)

    yield from walk(cli, [], None)


def _what_to_find(command: click.Command) -> list[str]:
    """The options, argument names and choices of a command's own parameters."""
    words: list[str] = []
    for param in command.params:
        if isinstance(param, click.Option):
            words += [*param.opts, *param.secondary_opts]
        elif isinstance(param, click.Argument):
            words.append((param.metavar or param.name or "").strip("[].").upper())
        if isinstance(param.type, click.Choice):
            words += [str(choice) for choice in param.type.choices]
    return words


def test_every_command_and_option_is_in_the_cli_reference() -> None:
    reference = page("cli.md")
    missing: dict[str, list[str]] = {}
    for path, command, ctx in _commands():
        if path:
            text = section(reference, f"`{path}`")
            words = _what_to_find(command)
        else:
            text = section(reference, "Global options")
            words = [*_what_to_find(command), *ctx.help_option_names]
        absent = [word for word in words if not token(text, word)]
        if absent:
            missing[path or PROG] = absent
    assert missing == {}


def test_the_cli_walk_sees_every_command() -> None:
    # Guards the test above against a walk that silently finds nothing.
    paths = {path for path, _command, _ctx in _commands()}
    assert {"", "init", "jobs", "jobs apply", "next", "run", "sandbox"} <= paths


# -- the sandbox ---------------------------------------------------------------------------------


def test_every_sandbox_fault_kind_and_rule_key_is_in_the_sandbox_reference() -> None:
    rules = section(page("sandbox.md"), "Fault rules")
    missing = {
        "fault kinds": undocumented(rules, FAULT_KINDS),
        "rule keys": undocumented(rules, [f.name for f in dataclasses.fields(FaultRule)]),
    }
    assert {what: items for what, items in missing.items() if items} == {}


# -- the way in ---------------------------------------------------------------------------------


def test_the_readme_sends_readers_to_docs_and_never_to_shared() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "shared/" not in readme
    assert "docs/README.md" in readme


def test_every_docs_page_is_linked_from_the_docs_index() -> None:
    index = page("README.md")
    pages = sorted(p.name for p in DOCS.glob("*.md") if p.name != "README.md")
    assert [name for name in pages if f"]({name})" not in index] == []
