"""What the sandbox accepts: request dates, launch bodies, one-off task bodies.

Pure functions over plain JSON values and a `Directory` of what exists in the organization.
Each check collects every fault as a `Problem` whose `key` is the dot path the API names in its
422 body (`prerun.<field id>`, `tasks.<step id>.owners.users.0`), and raises one `InvalidInput`
with all of them. Rules and messages follow tallyfy-api.md sections 2, 3 and 9.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tallyfy_sandbox.dates import InvalidDate, parse_request_date
from tallyfy_sandbox.errors import InvalidInput, Problem, problem

NAME_MAX = 550
TITLE_MAX = 600
TEXT_MAX = 200
TEXTAREA_MAX = 30000
TASK_TYPES = ("task", "approval", "expiring", "email", "expiring_email")
OWNER_BUCKETS = ("users", "guests", "groups")
FILE_SOURCES = ("local", "url")

# Request dates: the three forms of dates.py; anything else is a 422.
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


@dataclass(frozen=True)
class Directory:
    """What exists in the organization, for `exists` checks."""

    user_ids: frozenset[int]
    group_ids: frozenset[str]
    tag_ids: frozenset[str]
    folder_ids: frozenset[str] = frozenset()
    role_ids: frozenset[str] = frozenset()
    run_exists: Callable[[str], bool] = field(default=lambda _id: False)
    # Why no one-off task may be added to an existing run (it is complete or archived, or its
    # template does not accept ad-hoc tasks: `can_add_oot`), or None when one may.
    run_refuses_tasks: Callable[[str], str | None] = field(default=lambda _id: None)


@dataclass(frozen=True)
class LaunchRequest:
    """A valid POST /runs body, cleaned: unknown kick-off keys and step ids dropped."""

    checklist_id: str
    name: str | None
    summary: str | None
    prerun: dict[str, Any]
    step_overrides: dict[str, dict[str, Any]]  # step id -> {"owners"?: {...}, "deadline"?: dt}
    users: list[int]
    groups: list[str]
    roles: dict[str, dict[str, list[Any]]]  # org role id -> its members, as owners
    tags: list[str]
    folders: list[str]
    parent_id: str | None
    owner_id: int | None
    user_id: int | None  # the process starter, when not the token's user
    starred: bool
    is_public: bool


@dataclass(frozen=True)
class TaskRequest:
    """A valid POST /tasks body."""

    title: str
    task_type: str
    owners: dict[str, list[Any]]
    deadline: datetime
    started_at: datetime | None
    summary: str | None  # `summary`, or `description` when only that was sent: the task's text
    description: str | None  # `description` as sent (the seed page's name for the text)
    run_id: str | None
    tags: list[str]
    form_fields: list[dict[str, Any]]
    separate_task_for_each_assignee: bool
    extras: dict[str, Any]  # flags passed through as sent (max_assignable, webhook, ...)


class _Collector:
    """Problems in the order found; the first becomes the 422's `message`."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, key: str, message: str) -> None:
        self.problems.append(problem(message, key=key))

    def raise_if_any(self) -> None:
        if self.problems:
            raise InvalidInput(self.problems)


def is_blank(value: Any) -> bool:
    """PHP `empty()` as the API applies it to kick-off values: null, "", [], {}, false, 0."""
    if value is None or value is False:
        return True
    if isinstance(value, str | list | dict) and len(value) == 0:
        return True
    return isinstance(value, int | float) and not isinstance(value, bool) and value == 0


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_string(errs: _Collector, key: str, value: Any, max_len: int | None) -> bool:
    if not isinstance(value, str):
        errs.add(key, f"The {key} must be a string.")
        return False
    if max_len is not None and len(value) > max_len:
        errs.add(key, f"The {key} may not be greater than {max_len} characters.")
        return False
    return True


def _check_date(errs: _Collector, key: str, value: Any) -> datetime | None:
    try:
        return parse_request_date(value)
    except InvalidDate:
        errs.add(key, f"The {key} is not a valid date.")
        return None


def _check_ids(
    errs: _Collector, key: str, value: Any, exists: Callable[[Any], bool], kind: type
) -> list[Any]:
    """A list of ids of one type that must each exist; reports `key.N` per bad entry."""
    if value is None:
        return []
    if not isinstance(value, list):
        errs.add(key, f"The {key} must be an array.")
        return []
    good = []
    for i, item in enumerate(value):
        ok_type = _is_int(item) if kind is int else isinstance(item, kind)
        if not ok_type or not exists(item):
            errs.add(f"{key}.{i}", f"The selected {key}.{i} is invalid.")
        else:
            good.append(item)
    return good


def check_owners(
    errs: _Collector, key: str, value: Any, directory: Directory
) -> dict[str, list[Any]]:
    """`{"users": [int], "guests": ["email"], "groups": ["id"]}`; every bucket optional."""
    if not isinstance(value, dict):
        errs.add(key, f"The {key} must be an object.")
        return {b: [] for b in OWNER_BUCKETS}
    for extra in sorted(set(value) - set(OWNER_BUCKETS)):
        errs.add(f"{key}.{extra}", f"The {key}.{extra} key is not allowed.")
    return {
        "users": _check_ids(
            errs, f"{key}.users", value.get("users"), directory.user_ids.__contains__, int
        ),
        "guests": _check_ids(
            errs,
            f"{key}.guests",
            value.get("guests"),
            lambda e: bool(_EMAIL.fullmatch(e)),
            str,
        ),
        "groups": _check_ids(
            errs, f"{key}.groups", value.get("groups"), directory.group_ids.__contains__, str
        ),
    }


def _check_bool(errs: _Collector, key: str, value: Any) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        errs.add(key, f"The {key} field must be true or false.")
        return False
    return value


# --- kick-off (prerun) values ---------------------------------------------------------------


def _option_texts(spec: Mapping[str, Any]) -> list[str]:
    return [str(o.get("text")) for o in spec.get("options") or []]


def check_form_value(spec: Mapping[str, Any], value: Any, strict: bool) -> str | None:
    """The error message for one non-blank kick-off value, or None if it is acceptable.

    `spec` is the field as `GET /checklists/{id}` returns it in `prerun[]`.
    """
    label = str(spec.get("label") or spec.get("alias") or spec.get("id"))
    ftype = spec.get("field_type")
    if ftype in ("text", "textarea", "email"):
        if not isinstance(value, str):
            return f"{label} must be a string."
        limit = TEXTAREA_MAX if ftype == "textarea" else TEXT_MAX
        if len(value) > limit:
            return f"{label} may not be greater than {limit} characters."
        if ftype == "email" and not _EMAIL.fullmatch(value):
            return f"{label} must be a valid email address."
        return None
    if ftype == "date":
        try:
            parse_request_date(value)
        except InvalidDate:
            return f"{label} is not a valid date."
        return None
    if ftype == "radio":
        if not isinstance(value, str) or value not in _option_texts(spec):
            return f"The selected {label} is invalid."
        return None
    if ftype == "dropdown":
        # id and text must name the same option; text compared byte for byte (section 2.2).
        if isinstance(value, dict):
            for option in spec.get("options") or []:
                if value.get("id") == option.get("id") and value.get("text") == option.get("text"):
                    return None
        return "Invalid dropdown choice selected."
    if ftype in ("multiselect", "checklist"):
        # Stored as sent; `selected` is not required (it only changes how it renders).
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            return f"{label} must be a list of option objects."
        return None
    if ftype == "table":
        if not isinstance(value, list):
            return "Invalid table field"
        if len(value) != len(spec.get("columns") or []):
            return "Number of columns does not match required columns"
        return None
    if ftype == "assignees_form":
        if not isinstance(value, dict) or set(value) - set(OWNER_BUCKETS):
            return f"{label} must be an object with users, guests and groups only."
        return None
    if ftype == "file":
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            return f"{label} must be a list of file objects."
        for item in value:
            if "url" not in item and "full_url" not in item:
                return f"{label} must give each file a url."
            if strict and item.get("source") not in FILE_SOURCES:
                return f"{label} must give each file a source (local or url)."
        return None
    return None  # a type the sandbox does not know: accept, as the API drops nothing here


def check_prerun(
    errs: _Collector, value: Any, fields_spec: list[dict[str, Any]], strict: bool
) -> dict[str, Any]:
    """Kick-off values keyed by field id -> the stored object (unknown keys dropped)."""
    if value is None:
        value = {}
    if isinstance(value, list):
        # The list form never works on the real API: keys become "0", "1", ... and match no
        # field id, so every value is dropped and required fields then fail (section 2.2).
        value = {str(i): v for i, v in enumerate(value)}
    if not isinstance(value, dict):
        errs.add("prerun", "The prerun must be an object.")
        return {}
    stored: dict[str, Any] = {}
    for spec in fields_spec:
        fid = str(spec["id"])
        key = f"prerun.{fid}"
        present = fid in value
        item = value.get(fid)
        label = str(spec.get("label") or spec.get("alias") or fid)
        table_blank = spec.get("field_type") == "table" and item is None
        if not present or (spec.get("field_type") != "table" and is_blank(item)) or table_blank:
            if spec.get("required"):
                errs.add(key, f"{label} is required")
            elif present:
                stored[fid] = item  # a blank value clears the field
            continue
        message = check_form_value(spec, item, strict)
        if message:
            errs.add(key, message)
        else:
            stored[fid] = item
    return stored


# --- POST /runs ---------------------------------------------------------------------------


def require_object(body: Any) -> dict[str, Any]:
    """The request body as an object; a 422 naming `body` otherwise."""
    if not isinstance(body, dict):
        raise InvalidInput(problem("The request body must be a JSON object.", key="body"))
    return body


def check_launch_head(body: Any) -> str:
    """The checklist id of a launch body, checked before the template is looked up."""
    data = require_object(body)
    errs = _Collector()
    cid = data.get("checklist_id")
    if cid is None or cid == "":
        errs.add("checklist_id", "The checklist_id field is required.")
    elif not isinstance(cid, str):
        errs.add("checklist_id", "The checklist_id must be a string.")
    errs.raise_if_any()
    assert isinstance(cid, str)
    return cid


def check_launch(
    body: dict[str, Any], checklist: Mapping[str, Any], directory: Directory, strict: bool
) -> LaunchRequest:
    """Every rule of section 9 items 9-11 for a launch of `checklist` (found, not draft)."""
    errs = _Collector()

    name = body.get("name")
    if name is None or name == "":
        if strict:
            errs.add("name", "The name field is required.")
        name = None
    elif not _check_string(errs, "name", name, NAME_MAX):
        name = None

    summary = body.get("summary")
    if summary is not None and not _check_string(errs, "summary", summary, None):
        summary = None

    prerun = check_prerun(errs, body.get("prerun"), list(checklist.get("prerun") or []), strict)

    overrides: dict[str, dict[str, Any]] = {}
    tasks = body.get("tasks")
    if tasks is not None and tasks != []:
        if not isinstance(tasks, dict):
            errs.add("tasks", "The tasks must be an object.")
        else:
            step_ids = {str(s["id"]) for s in checklist.get("steps") or []}
            for sid, override in tasks.items():
                if sid not in step_ids:
                    continue  # unknown step ids are ignored (section 9 item 11)
                key = f"tasks.{sid}"
                if not isinstance(override, dict):
                    errs.add(key, f"The {key} must be an object.")
                    continue
                clean: dict[str, Any] = {}
                if override.get("owners") is not None:
                    clean["owners"] = check_owners(
                        errs, f"{key}.owners", override["owners"], directory
                    )
                if override.get("deadline") is not None:
                    deadline = _check_date(errs, f"{key}.deadline", override["deadline"])
                    if deadline is not None:
                        clean["deadline"] = deadline
                overrides[sid] = clean

    users = _check_ids(errs, "users", body.get("users"), directory.user_ids.__contains__, int)
    groups = _check_ids(errs, "groups", body.get("groups"), directory.group_ids.__contains__, str)
    tags = _check_ids(errs, "tags", body.get("tags"), directory.tag_ids.__contains__, str)
    folders = _check_ids(
        errs, "folders", body.get("folders"), directory.folder_ids.__contains__, str
    )

    parent_id = body.get("parent_id")
    if parent_id is not None and (
        not isinstance(parent_id, str) or not directory.run_exists(parent_id)
    ):
        errs.add("parent_id", "The selected parent_id is invalid.")
        parent_id = None

    members: dict[str, int | None] = {"owner_id": None, "user_id": None}
    for key in members:
        value = body.get(key)
        if value is None:
            continue
        if not _is_int(value) or value not in directory.user_ids:
            errs.add(key, f"The selected {key} is invalid.")
        else:
            members[key] = value

    roles: dict[str, dict[str, list[Any]]] = {}
    raw_roles = body.get("roles")
    if raw_roles is not None and raw_roles != []:
        if not isinstance(raw_roles, dict):
            errs.add("roles", "The roles must be an object.")
        else:
            for role_id, assigned in raw_roles.items():
                if role_id not in directory.role_ids:
                    errs.add(f"roles.{role_id}", f"The selected roles.{role_id} is invalid.")
                else:
                    roles[role_id] = check_owners(errs, f"roles.{role_id}", assigned, directory)

    starred = _check_bool(errs, "starred", body.get("starred"))
    is_public = _check_bool(errs, "is_public", body.get("is_public"))

    errs.raise_if_any()
    return LaunchRequest(
        checklist_id=str(checklist["id"]),
        name=name,
        summary=summary,
        prerun=prerun,
        step_overrides=overrides,
        users=users,
        groups=groups,
        roles=roles,
        tags=tags,
        folders=folders,
        parent_id=parent_id,
        owner_id=members["owner_id"],
        user_id=members["user_id"],
        starred=starred,
        is_public=is_public,
    )


# --- POST /tasks --------------------------------------------------------------------------

_PASSTHROUGH = (
    "max_assignable",
    "everyone_must_complete",
    "can_complete_only_assignees",
    "prevent_guest_comment",
    "top_secret",
    "is_soft_start_date",
    "webhook",
)


def check_task(body: Any, directory: Directory, strict: bool) -> TaskRequest:
    """Every rule of section 9 item 13 for a one-off task."""
    data = require_object(body)
    errs = _Collector()

    title = data.get("title")
    if title is None or title == "":
        errs.add("title", "The title field is required.")
    elif not _check_string(errs, "title", title, TITLE_MAX):
        title = None

    task_type = data.get("task_type")
    if task_type is None or task_type == "":
        errs.add("task_type", "The task_type field is required.")
    elif task_type not in TASK_TYPES:
        errs.add("task_type", "The selected task_type is invalid.")

    owners: dict[str, list[Any]] = {b: [] for b in OWNER_BUCKETS}
    if data.get("owners") is None:
        errs.add("owners", "The owners field is required.")
    else:
        owners = check_owners(errs, "owners", data["owners"], directory)
        if strict and not any(owners.values()) and not errs.problems:
            errs.add("owners", "At least one assignee is required.")

    deadline = None
    if data.get("deadline") in (None, ""):
        errs.add("deadline", "The deadline field is required.")
    else:
        deadline = _check_date(errs, "deadline", data["deadline"])

    started_at = None
    if data.get("started_at") not in (None, ""):
        started_at = _check_date(errs, "started_at", data["started_at"])

    # `description` is what the seed page calls the text; every client sends `summary` (3.1).
    # Both are kept as sent; the task's text is `summary`, else `description`.
    texts: dict[str, str | None] = {}
    for key in ("summary", "description"):
        text = data.get(key)
        texts[key] = text if text is None or _check_string(errs, key, text, None) else None
    summary = texts["summary"] if "summary" in data else texts["description"]

    run_id = data.get("run_id")
    if run_id is not None and (not isinstance(run_id, str) or not directory.run_exists(run_id)):
        errs.add("run_id", "The selected run_id is invalid.")
        run_id = None
    elif run_id is not None:
        refused = directory.run_refuses_tasks(run_id)
        if refused:
            errs.add("run_id", refused)
            run_id = None

    tags = _check_ids(errs, "tags", data.get("tags"), directory.tag_ids.__contains__, str)

    form_fields: list[dict[str, Any]] = []
    raw_fields = data.get("form_fields")
    if raw_fields is not None:
        if not isinstance(raw_fields, list):
            errs.add("form_fields", "The form_fields must be an array.")
        else:
            for i, ff in enumerate(raw_fields):
                key = f"form_fields.{i}"
                if not isinstance(ff, dict):
                    errs.add(key, f"The {key} must be an object.")
                    continue
                for needed in ("label", "field_type", "required"):
                    if ff.get(needed) is None or ff.get(needed) == "":
                        errs.add(f"{key}.{needed}", f"The {key}.{needed} field is required.")
                form_fields.append(ff)

    separate = _check_bool(
        errs, "separate_task_for_each_assignee", data.get("separate_task_for_each_assignee")
    )
    # Without it, a `started_at` in the future is a hard start: the task stays hidden until then.
    _check_bool(errs, "is_soft_start_date", data.get("is_soft_start_date"))
    max_assignable = data.get("max_assignable")
    if max_assignable is not None and (not _is_int(max_assignable) or max_assignable < 0):
        errs.add("max_assignable", "The max_assignable must be an integer of at least 0.")

    errs.raise_if_any()
    assert isinstance(title, str) and isinstance(task_type, str) and deadline is not None
    return TaskRequest(
        title=title,
        task_type=task_type,
        owners=owners,
        deadline=deadline,
        started_at=started_at,
        summary=summary,
        description=texts["description"],
        run_id=run_id,
        tags=tags,
        form_fields=form_fields,
        separate_task_for_each_assignee=separate,
        extras={k: data[k] for k in _PASSTHROUGH if k in data},
    )


def field_errors(exc: InvalidInput) -> dict[str, list[str]]:
    """`InvalidInput` -> the 422 `errors` map (dot path -> messages, in order found)."""
    out: dict[str, list[str]] = {}
    for p in exc.problems:
        out.setdefault(p.key or "body", []).append(p.message)
    return out
