"""Checking jobs against Tallyfy itself: their templates and the organization's ids.

The offline validator (`definitions.py`) knows the shape of a job; only Tallyfy knows whether
its ids mean anything. The API drops unknown kick-off keys silently (tallyfy-api.md, section
2.2: the most common cause of broken launches), so a key that is a field's alias or label
launches a process with that field empty. This module reads the organization once and says,
before anything fires, which key, id or value Tallyfy would ignore or refuse, and what to write
instead.

Two entry points (`doctor.py` uses them to check a whole setup):

- `check_templates(targets, client, now=...)`: each job (its action table, as written in a
  file or stored) against its template (`GET /checklists/{id}?with=steps`, once per template)
  and the organization's users, groups and tags (once each). Returns a list of `Problem`s
  keyed like the offline validator's (`action.prerun.<id>`); it never raises for one job's
  fault, and an unreachable API is one problem ("cannot reach the API to check templates").
- `check_job_files(paths, settings, now, client)`: `jobs validate --online`, the offline
  checks and the online ones together, in one `DefinitionError`. A file that fails offline is
  still checked online as far as its TOML goes, so an alias key learns the id it should be.

What is checked against a template: every `prerun` key is a kick-off field id (an alias,
label or step id is named as such, with the id to use); required kick-off fields have a value;
each value fits its field type (text length after rendering for the next fire, dates, radio
text, dropdown `{id, text}` pairs, multiselect options, table widths, ...); every `tasks` key
is a step id; user, group and tag ids exist; a create_task's `run_from_job` names a
launch_process job. A template that is gone (404) or still a draft is one problem per job.

And against the organization: members named by email are members (owners, step assignees,
roles, process users, the owner and the starter); folders exist; a launch's `parent_id` is a
run; a task's run (`run_id`, or the latest launch of its `run_from_job` job when the caller
knows it) is still open and its template accepts one-off tasks (`can_add_oot`), as is the
template of the `run_from_job` job (`attach.py`). Folders and runs are read only when a job
names one.
"""

from __future__ import annotations

import difflib
import json
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeGuard

from scheduler.attach import read_run, refusal_of
from scheduler.client import TallyfyClient, parse_request_date
from scheduler.config import Settings
from scheduler.definitions import HEX_ID, job_files, key_lines, load_job_files
from scheduler.errors import (
    ApiError,
    AuthenticationFailed,
    DefinitionError,
    InvalidInput,
    PermanentApiError,
    Problem,
    Problems,
    problem,
)
from scheduler.job import Job, LaunchProcess
from scheduler.templates import Template, fire_values

Path_ = tuple[str, ...]

TEXT_MAX = 200  # characters in a `text` kick-off value (tallyfy-api.md 2.2)
TEXTAREA_MAX = 30_000  # characters in a `textarea` value
MAX_LISTED = 10  # fields, steps or options named in one message; more are summarised
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
LAUNCH = "launch_process"
CREATE_TASK = "create_task"
TOKEN_HELP = (
    "set TALLYFY_ACCESS_TOKEN (environment or .env), TALLYFY_ACCESS_TOKEN_FILE, or the "
    "systemd credential 'tallyfy-token'"
)
NEW_TOKEN_HELP = (
    "create a new personal access token in Tallyfy (Settings > Integrations > REST API) and "
    "put it in TALLYFY_ACCESS_TOKEN (environment or .env), TALLYFY_ACCESS_TOKEN_FILE, or the "
    "systemd credential 'tallyfy-token'"
)
ORG_HELP = "set [tallyfy] organization_id in the config file or TALLYFY_ORGANIZATION_ID"


# -- what to check ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One job to check against Tallyfy.

    `action` is the action table as written in the file or as stored (the two have the same
    shape); it is read as plain data, so a job that failed the offline checks can still be
    checked. `job` is the validated Job when there is one: string values are then rendered for
    its next fire (with `seq`) before their length and format are checked. `file` and `lines`
    (from `definitions.key_lines`) place each Problem.
    """

    job_id: str
    action: Mapping[str, Any]
    file: str | None = None
    lines: Mapping[Path_, int] | None = None
    job: Job | None = None
    seq: int = 1

    @property
    def kind(self) -> str | None:
        kind = self.action.get("type")
        return kind if isinstance(kind, str) else None


def check_templates(
    targets: Iterable[Target],
    client: TallyfyClient,
    *,
    now: datetime,
    known_jobs: Mapping[str, str] | None = None,
    launch_templates: Mapping[str, str] | None = None,
    latest_runs: Mapping[str, str] | None = None,
) -> list[Problem]:
    """Every problem Tallyfy would have with these jobs; [] when they all fit.

    Reads users, groups and tags once, each launch_process job's template once, and folders
    and runs once each when a job names them. `known_jobs` maps other job ids to their action
    type (for `run_from_job`), `launch_templates` other launch jobs to their template id, and
    `latest_runs` launch jobs to the run they launched last (the store knows it); the targets
    themselves are always known. An ApiError other than a missing template ends the check
    with one problem saying the API could not be reached.
    """
    targets = list(targets)
    if not targets:
        return []
    known = dict(known_jobs or {})
    known.update({t.job_id: t.kind or "" for t in targets})
    sources = dict(launch_templates or {})
    for target in targets:
        checklist_id = target.action.get("checklist_id")
        if target.kind == LAUNCH and isinstance(checklist_id, str):
            sources[target.job_id] = checklist_id
    context = _Context(known, sources, dict(latest_runs or {}))
    try:
        org = _Organization.read(client, folders=any(_names_folders(t) for t in targets))
        templates: dict[str, Mapping[str, Any] | str] = {}
        for checklist_id in _templates_to_read(targets, sources):
            templates[checklist_id] = _read_template(client, checklist_id)
        for run_id in _runs_to_read(targets, context.latest_runs):
            context.runs[run_id] = read_run(client, run_id)
    except ApiError as exc:
        return [problem(_unreachable(exc, client.organization_id))]
    problems: list[Problem] = []
    for target in targets:
        problems.extend(_JobCheck(target, org, templates, context, now).run())
    return problems


@dataclass
class _Context:
    """What one job's check may need of the others: job kinds, launch jobs' templates and
    latest runs, and the runs read (None: not found)."""

    known_jobs: Mapping[str, str]
    launch_templates: Mapping[str, str]
    latest_runs: Mapping[str, str]
    runs: dict[str, Mapping[str, Any] | None] = field(default_factory=dict)


def _names_folders(target: Target) -> bool:
    return target.kind == LAUNCH and isinstance(target.action.get("folders"), list)


def _templates_to_read(targets: Sequence[Target], sources: Mapping[str, str]) -> list[str]:
    """Each launch target's template, and each template a `run_from_job` depends on, once."""
    wanted: dict[str, None] = {}
    for target in targets:
        checklist_id: Any = None
        if target.kind == LAUNCH:
            checklist_id = target.action.get("checklist_id")
        elif target.kind == CREATE_TASK and isinstance(target.action.get("run_from_job"), str):
            checklist_id = sources.get(target.action["run_from_job"])
        if _is_hex(checklist_id):
            wanted[checklist_id] = None
    return list(wanted)


def _runs_to_read(targets: Sequence[Target], latest_runs: Mapping[str, str]) -> list[str]:
    """A launch's parent run, a task's run, the latest run of a `run_from_job`: each once."""
    wanted: dict[str, None] = {}
    for target in targets:
        action = target.action
        run_id: Any = None
        if target.kind == LAUNCH:
            run_id = action.get("parent_id")
        elif target.kind == CREATE_TASK:
            run_id = action.get("run_id")
            if isinstance(action.get("run_from_job"), str):
                run_id = latest_runs.get(action["run_from_job"])
        if _is_hex(run_id):
            wanted[run_id] = None
    return list(wanted)


def check_job_files(
    paths: Sequence[Path],
    settings: Settings,
    now: datetime,
    client: TallyfyClient,
    *,
    stored: Iterable[Mapping[str, Any]] = (),
    latest_runs: Mapping[str, str] | None = None,
) -> list[Job]:
    """`jobs validate --online`: the offline checks, then every job against Tallyfy.

    Returns the Jobs (as `load_job_files` does) or raises one DefinitionError with every
    problem of both kinds. `stored` are the definitions already in the store, so that a
    `run_from_job` may name a job applied earlier; `latest_runs` the run each launch job
    launched last (from the store's history), whose state a `run_from_job` task depends on.
    """
    offline: list[Problem] = []
    try:
        jobs = load_job_files(paths, settings, now)
    except DefinitionError as exc:
        jobs, offline = [], list(exc.problems)
    valid = {job.source: job for job in jobs}
    files, _missing = job_files(paths)  # missing paths are among the offline problems
    targets = [
        t for t in (_file_target(f, settings, now, valid, bool(offline)) for f in files) if t
    ]
    stored = list(stored)
    known = {
        str(d.get("id")): str(d["action"].get("type"))
        for d in stored
        if isinstance(d.get("action"), Mapping)
    }
    sources = {
        str(d.get("id")): d["action"]["checklist_id"]
        for d in stored
        if isinstance(d.get("action"), Mapping)
        and d["action"].get("type") == LAUNCH
        and isinstance(d["action"].get("checklist_id"), str)
    }
    online = check_templates(
        targets,
        client,
        now=now,
        known_jobs=known,
        launch_templates=sources,
        latest_runs=latest_runs,
    )
    problems = merge_problems(offline, online)
    if problems:
        raise DefinitionError(problems)
    return jobs


def merge_problems(offline: Sequence[Problem], online: Sequence[Problem]) -> list[Problem]:
    """Offline and online problems, without saying the same thing twice.

    The offline validator can only say that a kick-off or step key is not a hex id, or that a
    user is not a number; when the online check explains the same key and value (it names the
    id to use), the offline line is dropped.
    """
    explained = {(p.file, p.key, _shown(p)) for p in online if p.key}
    kept = [
        p for p in offline if not (_superseded(p.key) and (p.file, p.key, _shown(p)) in explained)
    ]
    merged = kept + list(online)
    # One file's lines together, top to bottom (a stable sort keeps each file's own order).
    files: dict[str | None, int] = {}
    for p in merged:
        files.setdefault(p.file, len(files))
    return sorted(merged, key=lambda p: (files[p.file], p.line or 0))


def _superseded(key: str | None) -> bool:
    if not key:
        return False
    for prefix in ("action.prerun.", "action.tasks."):
        if key.startswith(prefix):
            return not HEX_ID.fullmatch(key[len(prefix) :])
    return key.endswith((".users", ".groups", ".tags"))


def _shown(p: Problem) -> str | None:
    return repr(p.value) if p.has_value else None


def _file_target(
    file: Path, settings: Settings, now: datetime, valid: Mapping[str | None, Job], retry: bool
) -> Target | None:
    """The Target for one job file, or None when its TOML cannot be read (offline says why)."""
    try:
        text = file.read_text(encoding="utf-8")
        doc = tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    action = doc.get("action")
    if not isinstance(action, dict):
        return None
    job = valid.get(str(file))
    if job is None and retry:
        # Another file's fault sank the whole batch: this one may still give a Job to render.
        try:
            job = load_job_files([file], settings, now)[0]
        except DefinitionError:
            job = None
    job_id = doc.get("id") if isinstance(doc.get("id"), str) else file.stem
    return Target(str(job_id), action, file=str(file), lines=key_lines(text), job=job)


# -- what Tallyfy knows -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Organization:
    """The organization's members, groups and tags, read once; its folders (process and
    template folders) when a job names one."""

    users: Mapping[int, Mapping[str, Any]]
    groups: Mapping[str, Mapping[str, Any]]
    tags: Mapping[str, Mapping[str, Any]]
    folders: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @classmethod
    def read(cls, client: TallyfyClient, *, folders: bool = False) -> _Organization:
        def by_id(items: list[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
            return {item["id"]: item for item in items if "id" in item}

        return cls(
            users=by_id(client.list_users()),
            groups=by_id(client.list_groups()),
            tags=by_id(client.list_tags()),
            folders=(
                by_id(client.list_folders("run") + client.list_folders("checklist"))
                if folders
                else {}
            ),
        )

    def member_of(self, email: str) -> int | None:
        """The id of the member with this email (letter case aside), if there is one."""
        wanted = email.casefold()
        for user_id, user in self.users.items():
            if str(user.get("email")).casefold() == wanted:
                return user_id
        return None


def _read_template(client: TallyfyClient, checklist_id: str) -> Mapping[str, Any] | str:
    """The template, or why it cannot be used (a 404 is the job's problem, not the API's)."""
    try:
        return client.get_checklist(checklist_id, with_steps=True)
    except PermanentApiError as exc:
        if isinstance(exc, AuthenticationFailed):
            raise
        if exc.status == 404:
            return f"template {checklist_id} not found (deleted or archived?)"
        return f"cannot read template {checklist_id}: {exc}"


def _unreachable(exc: ApiError, organization_id: str) -> str:
    if exc.status == 404:
        return (
            f"organization {organization_id!r} not found, or the token has no access to it "
            f"({exc}): {ORG_HELP}"
        )
    text = f"cannot reach the API to check templates: {exc}"
    if isinstance(exc, AuthenticationFailed):
        text += f" (the token is expired, revoked or wrong: {NEW_TOKEN_HELP})"
    return text


# -- one job ------------------------------------------------------------------------------------


class _JobCheck:
    """Checks one Target against what Tallyfy knows; collects Problems, never raises."""

    def __init__(
        self,
        target: Target,
        org: _Organization,
        templates: Mapping[str, Mapping[str, Any] | str],
        context: _Context,
        now: datetime,
    ) -> None:
        self.target = target
        self.org = org
        self.templates = templates
        self.context = context
        self.known_jobs = context.known_jobs
        self.now = now
        self.problems = Problems(target.file, lines=target.lines)
        self._values: Mapping[str, object] | None = None
        self._rendered_for: datetime | None = None

    def run(self) -> list[Problem]:
        action = self.target.action
        if self.target.kind == LAUNCH:
            self.launch(action)
        elif self.target.kind == CREATE_TASK:
            self.owners(action.get("owners"), ("action", "owners"))
            self.ids(action, ("action",), "tags")
            self.run_from_job(action.get("run_from_job"))
            run_id = action.get("run_id")
            if isinstance(run_id, str) and run_id in self.context.runs:
                refused = refusal_of(run_id, self.context.runs[run_id])
                if refused:
                    self.bad(("action", "run_id"), refused, run_id)
        return self.problems

    # - reporting -

    def bad(self, path: Path_, message: str, value: Any = ...) -> None:
        self.problems.add(path, message, value)

    # - launch_process -

    def launch(self, action: Mapping[str, Any]) -> None:
        checklist_id = action.get("checklist_id")
        found = self.templates.get(checklist_id) if isinstance(checklist_id, str) else None
        for key in ("users", "groups", "tags"):
            self.ids(action, ("action",), key)
        self.launch_options(action)
        if found is None:
            return  # no usable id: the offline validator says so
        where: Path_ = ("action", "checklist_id")
        if isinstance(found, str):
            self.bad(where, found, checklist_id)
            return
        template = _Template(found)
        if found.get("status") == "draft":
            self.bad(
                where,
                f"template {template.name} is a draft and cannot be launched: publish it in "
                "Tallyfy first",
                checklist_id,
            )
        elif found.get("status") == "archived" or found.get("archived_at"):
            self.bad(
                where,
                f"template {template.name} is archived and cannot be launched: restore it in "
                "Tallyfy or use another template",
                checklist_id,
            )
        prerun = action.get("prerun")
        self.prerun(prerun if isinstance(prerun, Mapping) else {}, template)
        tasks = action.get("tasks")
        if isinstance(tasks, Mapping) and template.steps is not None:
            self.tasks(tasks, template)

    def prerun(self, prerun: Mapping[str, Any], template: _Template) -> None:
        given: set[str] = set()  # fields with a value under some key (an alias counts)
        for key, value in prerun.items():
            where = ("action", "prerun", key)
            spec = template.fields.get(key)
            if spec is None:
                message, meant = template.explain_prerun_key(key)
                if meant is not None:
                    given.add(meant)
                self.bad(where, message, value)
                continue
            given.add(key)
            self.value(where, spec, value)
        for field_id, spec in template.fields.items():
            if spec.get("required") and field_id not in given:
                label = _label(spec)
                self.bad(
                    ("action", "prerun", field_id),
                    f"required kick-off field {label!r} (id {field_id}) has no value: the "
                    f'launch would be refused with "{label} is required"; add it under '
                    "[action.prerun]",
                )

    def value(self, where: Path_, spec: Mapping[str, Any], raw: Any) -> None:
        """One kick-off value against its field (tallyfy-api.md 2.2 and section 9 item 10)."""
        ftype = str(spec.get("field_type") or "")
        label = _label(spec)
        if ftype == "table" and raw in ("", []):
            self.bad(where, f"table field {label!r} refuses an empty value: leave the key out", raw)
            return
        if _is_blank(raw):
            if spec.get("required"):
                self.bad(
                    where,
                    f"required kick-off field {label!r} is blank: the launch would be refused "
                    f'with "{label} is required"',
                    raw,
                )
            return
        at = isinstance(raw, Mapping) and set(raw) == {"at"}
        if ftype in ("text", "textarea", "email"):
            if not (isinstance(raw, str) or at):
                self.bad(where, f"{ftype} field {label!r} takes a string", raw)
                return
            text = self.render(where, raw)
            limit = TEXTAREA_MAX if ftype == "textarea" else TEXT_MAX
            if text is not None and len(text) > limit:
                hint = " (a textarea field takes longer text)" if ftype == "text" else ""
                self.bad(
                    where,
                    f"{ftype} field {label!r} takes at most {limit} characters; this value is "
                    f"{len(text)} once rendered for the fire at {self.fire_text()}{hint}",
                    raw,
                )
            if ftype == "email" and text is not None and not EMAIL.fullmatch(text):
                self.bad(where, f"email field {label!r} takes an email address", raw)
        elif ftype == "date":
            if at:
                return
            text = self.render(where, raw) if isinstance(raw, str) else None
            if not isinstance(raw, str) or (text is not None and not _is_api_date(text)):
                self.bad(
                    where,
                    f"date field {label!r} takes an ISO 8601 instant such as "
                    '2026-03-02T17:00:00Z, or a computed one: { at = "+2bd@17:00" }',
                    raw,
                )
        elif ftype == "radio":
            self.radio(where, spec, raw)
        elif ftype == "dropdown":
            message = _choice_problem(spec, raw, "dropdown")
            if message:
                self.bad(where, message, raw)
        elif ftype in ("multiselect", "checklist"):
            self.multiselect(where, spec, raw)
        elif ftype == "table":
            self.table(where, spec, raw)
        elif ftype == "assignees_form":
            self.owners(raw, where, what=f"assignees field {label!r}")
        elif ftype == "file":
            ok = isinstance(raw, list) and all(
                isinstance(v, Mapping) and ("url" in v or "full_url" in v) for v in raw
            )
            if not ok:
                self.bad(
                    where,
                    f"file field {label!r} takes a list of files, each with a url: "
                    '[{ filename = "a.pdf", source = "url", url = "https://..." }]',
                    raw,
                )

    def radio(self, where: Path_, spec: Mapping[str, Any], raw: Any) -> None:
        label = _label(spec)
        options = _options(spec)
        texts = [str(o.get("text")) for o in options]
        text = self.render(where, raw) if isinstance(raw, str) else None
        if isinstance(raw, str) and (text is None or text in texts):
            return
        if isinstance(raw, Mapping) and isinstance(raw.get("text"), str) and raw["text"] in texts:
            self.bad(
                where, f"radio field {label!r} takes the option's text alone: {raw['text']!r}", raw
            )
            return
        close = _loose_match(str(text if text is not None else raw), texts)
        hint = f": did you mean {close!r}? (letter case and spaces count)" if close else ""
        self.bad(
            where,
            f"radio field {label!r} takes one option's exact text "
            f"({listed_names(repr(t) for t in texts)}){hint}",
            raw,
        )

    def multiselect(self, where: Path_, spec: Mapping[str, Any], raw: Any) -> None:
        label = _label(spec)
        if not isinstance(raw, list) or not all(isinstance(v, Mapping) for v in raw):
            self.bad(
                where,
                f"multiselect field {label!r} takes a list of options "
                f'[{{ id = 1, text = "...", selected = true }}, ...] '
                f"({listed_names(_pair(o) for o in _options(spec))})",
                raw,
            )
            return
        for item in raw:
            message = _choice_problem(spec, item, "multiselect")
            if message:
                self.bad(where, message, item)
            elif item.get("selected") is not True:
                self.bad(
                    where,
                    f"multiselect field {label!r}: option {item.get('text')!r} lacks "
                    "selected = true: Tallyfy stores it but shows it as empty",
                    item,
                )

    def table(self, where: Path_, spec: Mapping[str, Any], raw: Any) -> None:
        label = _label(spec)
        columns = [str(c.get("label")) for c in spec.get("columns") or [] if isinstance(c, Mapping)]
        shape = f"one flat list with one entry per column ({', '.join(columns)})"
        if not isinstance(raw, list) or any(isinstance(v, list | Mapping) for v in raw):
            self.bad(where, f"table field {label!r} takes {shape}", raw)
        elif len(raw) != len(columns):
            self.bad(
                where,
                f"table field {label!r} has {len(columns)} columns but this row has "
                f'{len(raw)} entries: the API refuses it ("Number of columns does not match '
                f'required columns"); write {shape}',
                raw,
            )

    def tasks(self, tasks: Mapping[str, Any], template: _Template) -> None:
        for key, override in tasks.items():
            where = ("action", "tasks", key)
            if template.step(key) is None:
                self.bad(where, template.explain_step_key(key), override)
                continue
            if isinstance(override, Mapping) and "owners" in override:
                self.owners(override["owners"], (*where, "owners"))

    def launch_options(self, action: Mapping[str, Any]) -> None:
        """Roles' members, the owner and the starter, folders and the parent run exist."""
        roles = action.get("roles")
        if isinstance(roles, Mapping):
            for role, members in roles.items():
                self.owners(members, ("action", "roles", str(role)))
        for key in ("owner_id", "user_id"):
            if key in action:
                message = self.org_id_problem("users", action[key])
                if message:
                    self.bad(("action", key), message, action[key])
        self.ids(action, ("action",), "folders")
        parent = action.get("parent_id")
        if (
            isinstance(parent, str)
            and parent in self.context.runs
            and not self.context.runs[parent]
        ):
            self.bad(("action", "parent_id"), "the organization has no run with this id", parent)

    # - ids in the organization -

    def owners(self, value: Any, where: Path_, what: str = "") -> None:
        if not isinstance(value, Mapping):
            if what:
                self.bad(where, f"{what} takes {{ users = [...], groups = [...], guests = [...] }}")
            return
        unknown = sorted(set(value) - {"users", "groups", "guests"})
        if what and unknown:
            self.bad(where, f"{what} takes only users, groups and guests, not {unknown}", value)
        self.ids(value, where, "users")
        self.ids(value, where, "groups")

    def ids(self, table: Mapping[str, Any], where: Path_, key: str) -> None:
        """Each user, group or tag id under `key` exists in the organization."""
        values = table.get(key)
        if not isinstance(values, list):
            return
        for value in values:
            message = self.org_id_problem(key, value)
            if message:
                self.bad((*where, key), message, value)

    def org_id_problem(self, key: str, value: Any) -> str | None:
        if key == "users":
            if isinstance(value, str):
                # A member's email stands for the id (resolved when the fire is sent).
                if self.org.member_of(value) is not None:
                    return None
                return "no member of the organization has this email"
            if value in self.org.users and not isinstance(value, bool):
                return None
            return "no member of the organization has this user id"
        items, noun, name_key = {
            "groups": (self.org.groups, "group", "name"),
            "tags": (self.org.tags, "tag", "title"),
            "folders": (self.org.folders, "folder", "name"),
        }[key]
        if value in items:
            return None
        for item_id, item in items.items():
            if isinstance(value, str) and value.casefold() == str(item.get(name_key)).casefold():
                return f"that is the {name_key} of {noun} {item_id}: use its id"
        return f"the organization has no {noun} with this id"

    def run_from_job(self, value: Any) -> None:
        if not isinstance(value, str):
            return
        kind = self.known_jobs.get(value)
        message: str | None
        if kind is None:
            message = "no job has this id (among the jobs checked and the stored ones)"
        elif kind != LAUNCH:
            message = f"names a {kind} job: it must name a launch_process job"
        else:
            message = self.attachable(value)
        if message is not None:
            self.bad(("action", "run_from_job"), message, value)

    def attachable(self, source: str) -> str | None:
        """Why tasks cannot attach to what `source` launches: its template refuses one-off
        tasks, or the run it launched last takes none now."""
        template = self.templates.get(self.context.launch_templates.get(source, ""))
        if isinstance(template, Mapping) and template.get("can_add_oot") is False:
            return (
                f"{source!r} launches template {_Template(template).name}, which does not "
                "accept one-off tasks on its processes (can_add_oot is off in its settings)"
            )
        run_id = self.context.latest_runs.get(source)
        if run_id is not None and run_id in self.context.runs:
            refused = refusal_of(run_id, self.context.runs[run_id])
            if refused:
                return f"the run {source!r} launched last: {refused}"
        return None

    # - rendering for the next fire -

    def render(self, where: Path_, raw: Any) -> str | None:
        """The text a string value becomes for the job's next fire; None when unknown."""
        if not isinstance(raw, str):  # a computed instant { at = ... } is a short ISO string
            return None
        job = self.target.job
        template = None
        if job is not None and isinstance(job.action, LaunchProcess):
            template = job.action.prerun.get(where[-1])
        if not isinstance(template, Template):
            # Without a validated job, only a value without placeholders is known for sure.
            return None if "{" in raw or "}" in raw else raw
        values = self.fire_values()
        if values is None:
            return None
        try:
            return template.render(values)
        except (InvalidInput, ValueError, OverflowError):
            return None  # the offline validator reports it

    def fire_values(self) -> Mapping[str, object] | None:
        job = self.target.job
        if job is None:
            return None
        if self._values is None:
            try:
                instant = job.next_fire(self.now) or job.cron.next_after(self.now)
            except (InvalidInput, ValueError, OverflowError):
                instant = None
            if instant is None:
                return None
            self._rendered_for = instant
            self._values = fire_values(job.id, instant, job.zone, self.target.seq)
        return self._values

    def fire_text(self) -> str:
        job = self.target.job
        if self._rendered_for is None or job is None:
            return "?"
        return self._rendered_for.astimezone(job.zone).isoformat()


class _Template:
    """A template as `GET /checklists/{id}?with=steps` returns it, with lookups for messages."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.id = str(data.get("id"))
        self.title = str(data.get("title") or "")
        self.name = f"{self.title!r} ({self.id})" if self.title else self.id
        self.fields: dict[str, Mapping[str, Any]] = {
            str(f["id"]): f
            for f in data.get("prerun") or []
            if isinstance(f, Mapping) and "id" in f
        }
        steps = data.get("steps")
        self.steps: list[Mapping[str, Any]] | None = (
            [s for s in steps if isinstance(s, Mapping) and "id" in s]
            if isinstance(steps, list)
            else None
        )

    def step(self, step_id: str) -> Mapping[str, Any] | None:
        return next((s for s in self.steps or [] if str(s["id"]) == step_id), None)

    def explain_prerun_key(self, key: str) -> tuple[str, str | None]:
        """Why `key` is not a kick-off field id, and the field it was meant for (if known)."""
        head = f"prerun key {key!r}"
        for kind, spec in _named(self.fields.values(), key, ("alias", "label")):
            field_id = str(spec["id"])
            return (
                f"{head} is the {kind} of kick-off field {_label(spec)!r}: use its id {field_id}",
                field_id,
            )
        step = self.step(key)
        if step is not None:
            return (
                f"{head} is the id of step {_title(step)!r}, not of a kick-off field: step "
                "overrides go under [action.tasks]",
                None,
            )
        names = {
            str(s.get(n)): s for s in self.fields.values() for n in ("alias", "label") if s.get(n)
        }
        close = difflib.get_close_matches(key, list(names), n=1, cutoff=0.75)
        hint = ""
        if close:
            spec = names[close[0]]
            hint = f"; did you mean {_label(spec)!r}? its id is {spec['id']}"
        fields = listed_names(f"{fid} {_label(s)!r}" for fid, s in self.fields.items())
        return (
            f"{head} is not a kick-off field of template {self.name}: the API would drop it "
            f"silently{hint} (kick-off fields: {fields or 'none'})",
            None,
        )

    def explain_step_key(self, key: str) -> str:
        head = f"step key {key!r}"
        for kind, step in _named(self.steps or [], key, ("alias", "title")):
            return f"{head} is the {kind} of step {_title(step)!r}: use its id {step['id']}"
        if key in self.fields:
            return (
                f"{head} is the id of kick-off field {_label(self.fields[key])!r}, not of a "
                "step: kick-off values go under [action.prerun]"
            )
        steps = listed_names(f"{s['id']} {_title(s)!r}" for s in self.steps or [])
        return (
            f"{head} is not a step of template {self.name}: the API would ignore this "
            f"override (steps: {steps or 'none'})"
        )


# -- small helpers ------------------------------------------------------------------------------


def _is_hex(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and HEX_ID.fullmatch(value) is not None


def _is_blank(value: Any) -> bool:
    """PHP `empty()`, as the API reads kick-off values: null, "", [], {}, false, 0."""
    if value is None or value is False:
        return True
    if isinstance(value, str | list | Mapping) and len(value) == 0:
        return True
    return isinstance(value, int | float) and not isinstance(value, bool) and value == 0


def _is_api_date(text: str) -> bool:
    try:
        parse_request_date(text)
    except ValueError:
        return False
    return True


def _label(spec: Mapping[str, Any]) -> str:
    return str(spec.get("label") or spec.get("alias") or spec.get("id"))


def _title(step: Mapping[str, Any]) -> str:
    return str(step.get("title") or step.get("alias") or step.get("id"))


def _named(
    items: Iterable[Mapping[str, Any]], key: str, attributes: Sequence[str]
) -> Iterable[tuple[str, Mapping[str, Any]]]:
    """(attribute, item) for items whose alias/label/title is `key` (exactly, then loosely)."""
    items = list(items)
    loose = " ".join(key.split()).casefold()
    for exact in (True, False):
        for item in items:
            for attribute in attributes:
                name = item.get(attribute)
                if not isinstance(name, str) or not name:
                    continue
                if name == key if exact else " ".join(name.split()).casefold() == loose:
                    yield attribute, item


def _options(spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [o for o in spec.get("options") or [] if isinstance(o, Mapping)]


def _pair(option: Mapping[str, Any]) -> str:
    """An option as the TOML users write: `{ id = 2, text = "Normal" }`."""
    return f"{{ id = {option.get('id')}, text = {json.dumps(option.get('text'))} }}"


def _loose_match(text: str, candidates: Sequence[str]) -> str | None:
    loose = " ".join(text.split()).casefold()
    return next((c for c in candidates if " ".join(c.split()).casefold() == loose), None)


def _choice_problem(spec: Mapping[str, Any], raw: Any, kind: str) -> str | None:
    """Why `raw` is not exactly one option `{id, text}` of a dropdown or multiselect field."""
    label = _label(spec)
    options = _options(spec)
    head = f"{kind} field {label!r}"
    listed = listed_names(_pair(o) for o in options)
    if not isinstance(raw, Mapping):
        for option in options:
            if raw == option.get("id") or (
                isinstance(raw, str) and _loose_match(raw, [str(option.get("text"))])
            ):
                return f"{head} takes an option object {{ id, text }}: use {_pair(option)}"
        return f"{head} takes an option object {{ id, text }} ({listed})"
    vid, vtext = raw.get("id"), raw.get("text")
    by_id = next((o for o in options if o.get("id") == vid and not isinstance(vid, bool)), None)
    by_text = next((o for o in options if o.get("text") == vtext), None)
    if by_id is not None and by_id is by_text:
        return None
    if by_id is not None and by_text is not None:
        return (
            f"{head}: id {vid} is option {by_id.get('text')!r} but text {vtext!r} is option "
            f"{by_text.get('id')}: use {_pair(by_id)} or {_pair(by_text)}"
        )
    if by_id is not None:
        return (
            f"{head}: text {vtext!r} is not the exact text of option {vid} "
            f"({by_id.get('text')!r}): use {_pair(by_id)}"
        )
    if by_text is not None:
        return (
            f"{head}: option {vtext!r} has id {by_text.get('id')}, not {vid!r}: "
            f"use {_pair(by_text)}"
        )
    loose = next(
        (
            o
            for o in options
            if isinstance(vtext, str) and _loose_match(vtext, [str(o.get("text"))])
        ),
        None,
    )
    if loose is not None:
        return f"{head}: no option is exactly {_pair(raw)}: did you mean {_pair(loose)}?"
    return f"{head}: no option has id {vid!r} or text {vtext!r} ({listed})"


def listed_names(items: Iterable[str]) -> str:
    items = list(items)
    if len(items) > MAX_LISTED:
        return ", ".join(items[:MAX_LISTED]) + f", ... ({len(items) - MAX_LISTED} more)"
    return ", ".join(items)
