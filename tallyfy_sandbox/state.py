"""The sandbox's organization: the fixture it starts from and every run and task created since.

One `SandboxState` holds everything behind one lock. Records are built once and never mutated
afterwards, so a reader may serialize a record it got from a query after the lock is released:
`reset` replaces the containers, and a change of a run's or a task's status (`set_run_status`,
`set_task_status`: what a person completing, archiving, reopening or deleting it in Tallyfy does)
replaces its record with a changed copy.

A deleted run or task keeps its record (status `deleted`, a `deleted_at` stamp), so the admin
views (`snapshot`, `/_sandbox/runs`) still count everything created; the API no longer finds it
(404 as for an unknown id, absent from every list), nor the tasks of a deleted run.
"""

from __future__ import annotations

import calendar
import copy
import importlib.resources
import json
import threading
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tallyfy_sandbox.clock import Clock
from tallyfy_sandbox.dates import format_response_date
from tallyfy_sandbox.errors import InvalidInput, ResourceNotFound, problem
from tallyfy_sandbox.tokens import expires_at
from tallyfy_sandbox.validation import (
    OWNER_BUCKETS,
    Directory,
    LaunchRequest,
    TaskRequest,
    check_launch,
    check_launch_head,
    check_task,
)

Record = dict[str, Any]

# A run's statuses: `active` while open; completing or archiving it closes it to new tasks.
RUN_STATUSES = ("active", "complete", "archived")
CLOSED_RUN_STATUSES = ("complete", "archived")
# A task's statuses a person can set: reopen (`not-started`), complete or archive it.
TASK_STATUSES = ("not-started", "completed", "archived")
TASK_STATUS_LABELS = {
    "not-started": "Not started",
    "completed": "Completed",
    "archived": "Archived",
    "deleted": "Deleted",
}
# Deleting, as a person does in Tallyfy, is one more status for both; the API then answers 404.
DELETED = "deleted"


def load_fixture(source: Path | str | Mapping[str, Any] | None) -> dict[str, Any]:
    """The organization fixture as a fresh dict: a path, a mapping, or None (the demo org).

    Raises InvalidInput naming what is missing or malformed.
    """
    if source is None:
        text = importlib.resources.files("tallyfy_sandbox").joinpath("demo_org.json").read_text()
        data: Any = json.loads(text)
    elif isinstance(source, Mapping):
        data = copy.deepcopy(dict(source))
    else:
        path = Path(source)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InvalidInput(problem(f"cannot read the fixture: {exc}", file=str(path))) from exc
    file = None if source is None or isinstance(source, Mapping) else str(source)
    bad = []
    if not isinstance(data, dict):
        raise InvalidInput(problem("the fixture must be a JSON object", file=file))
    org = data.get("organization")
    if not isinstance(org, dict) or not isinstance(org.get("id"), str):
        bad.append(problem("must be an object with a string id", file=file, key="organization"))
    tokens = data.get("tokens")
    if not isinstance(tokens, list) or not tokens or not all(isinstance(t, str) for t in tokens):
        bad.append(problem("must be a non-empty list of strings", file=file, key="tokens"))
    if not isinstance(data.get("me"), dict) or not isinstance(data["me"].get("id"), int):
        bad.append(problem("must be an object with an integer id", file=file, key="me"))
    for key in ("users", "guests", "groups", "tags", "folders", "roles", "checklists"):
        if not isinstance(data.setdefault(key, []), list):
            bad.append(problem("must be a list", file=file, key=key))
    id_types = {"users": int, "groups": str, "tags": str, "folders": str, "checklists": str}
    for key, id_type in id_types.items():
        for i, item in enumerate(data[key] if isinstance(data[key], list) else []):
            if not isinstance(item, dict) or not isinstance(item.get("id"), id_type):
                msg = f"must be an object with a {id_type.__name__} id"
                bad.append(problem(msg, file=file, key=f"{key}[{i}]"))
    for i, checklist in enumerate(
        data["checklists"] if isinstance(data["checklists"], list) else []
    ):
        for part in ("prerun", "steps"):
            items = checklist.get(part) if isinstance(checklist, dict) else None
            if items is not None and not all(isinstance(x, dict) and "id" in x for x in items):
                bad.append(problem("entries need an id", file=file, key=f"checklists[{i}].{part}"))
    for i, guest in enumerate(data["guests"] if isinstance(data["guests"], list) else []):
        if not isinstance(guest, dict) or not isinstance(guest.get("email"), str):
            bad.append(problem("must be an object with an email", file=file, key=f"guests[{i}]"))
    if bad:
        raise InvalidInput(bad)
    return data


def _new_id() -> str:
    """32 lowercase hex characters, random, like every Tallyfy timeline id."""
    return uuid.uuid4().hex


def _add_months(instant: datetime, months: int) -> datetime:
    month0 = instant.month - 1 + months
    year, month = instant.year + month0 // 12, month0 % 12 + 1
    day = min(instant.day, calendar.monthrange(year, month)[1])
    return instant.replace(year=year, month=month, day=day)


def step_deadline(rule: Any, start: datetime) -> datetime | None:
    """A template step's relative deadline (`{value, unit, option: "from", step: "start_run"}`)."""
    if not isinstance(rule, dict) or not isinstance(rule.get("value"), int):
        return None
    value, unit = rule["value"], str(rule.get("unit", "days")).rstrip("s")
    if unit == "month":
        return _add_months(start, value)
    seconds = {"minute": 60, "hour": 3600, "day": 86400, "week": 604800}.get(unit)
    return None if seconds is None else start + timedelta(seconds=value * seconds)


def _text_match(query: str | None, *values: Any) -> bool:
    if not query:
        return True
    needle = query.casefold()
    return any(needle in str(v).casefold() for v in values if v is not None)


def _is_archived(checklist: Mapping[str, Any]) -> bool:
    return checklist.get("status") == "archived" or bool(checklist.get("archived_at"))


class SandboxState:
    """The organization, its tokens, and what the API created; thread-safe behind `lock`."""

    def __init__(self, fixture: Mapping[str, Any], clock: Clock) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.fixture = fixture
        self.organization: Record = dict(fixture["organization"])
        self.organization_id: str = self.organization["id"]
        self.me: Record = dict(fixture["me"])
        self.users: dict[int, Record] = {u["id"]: self._user_view(u) for u in fixture["users"]}
        self.guests: dict[str, Record] = {g["email"]: dict(g) for g in fixture["guests"]}
        self.groups: dict[str, Record] = {g["id"]: dict(g) for g in fixture["groups"]}
        self.tags: dict[str, Record] = {t["id"]: dict(t) for t in fixture["tags"]}
        self.folders: dict[str, Record] = {f["id"]: dict(f) for f in fixture["folders"]}
        self.roles: dict[str, Record] = {str(r["id"]): dict(r) for r in fixture["roles"]}
        self.checklists: dict[str, Record] = {c["id"]: dict(c) for c in fixture["checklists"]}
        self.directory = Directory(
            user_ids=frozenset(self.users),
            group_ids=frozenset(self.groups),
            tag_ids=frozenset(self.tags),
            folder_ids=frozenset(self.folders),
            role_ids=frozenset(self.roles),
            run_exists=self._run_exists,
            run_refuses_tasks=self._run_refuses_tasks,
        )
        self.reset()

    def reset(self) -> None:
        """Forget every run and task created, and restore the fixture's tokens."""
        with self.lock:
            self.tokens: set[str] = set(self.fixture["tokens"])
            self.expired: set[str] = set()
            self.runs: dict[str, Record] = {}
            self.tasks: dict[str, Record] = {}
            self.run_tasks: dict[str, list[str]] = {}
            self.run_tags: dict[str, list[str]] = {}
            self.run_seq = 0
            self.task_seq = 0

    # --- tokens -------------------------------------------------------------------------

    def token_valid(self, token: str) -> bool:
        """Known, not expired by `expire_token`, and not past the `exp` it carries (a JWT)."""
        with self.lock:
            if token not in self.tokens or token in self.expired:
                return False
        exp = expires_at(token)
        return exp is None or self.clock.now().timestamp() < exp

    def add_token(self, token: str) -> None:
        """Accept `token` from now on (also revives an expired one)."""
        with self.lock:
            self.tokens.add(token)
            self.expired.discard(token)

    def expire_token(self, token: str) -> None:
        """Refuse `token` with 401 from now on, as after a logout or the 6-month expiry."""
        with self.lock:
            self.expired.add(token)

    # --- views --------------------------------------------------------------------------

    def _user_view(self, user: Mapping[str, Any]) -> Record:
        view = {
            "status": "active",
            "timezone": self.me_timezone(),
            **user,
        }
        view["full_name"] = f"{user.get('first_name', '')} {user.get('last_name', '')}".strip()
        return view

    def me_timezone(self) -> Any:
        me = self.fixture.get("me")
        return me.get("timezone", "UTC") if isinstance(me, dict) else "UTC"

    def checklist_view(self, checklist: Mapping[str, Any], with_steps: bool) -> Record:
        """A template as GET /checklists/{id} shows it: `prerun` always, `steps` when asked."""
        view: Record = {
            "summary": None,
            "type": "procedure",
            "owner_id": self.me["id"],
            "is_public_kickoff": False,
            "default_process_name_format": None,
            "archived_at": None,
            "automated_actions": [],
            "can_add_oot": True,  # one-off tasks may be added to its processes
            **{k: v for k, v in checklist.items() if k != "steps"},
        }
        view.setdefault("prerun", [])
        if with_steps:
            view["steps"] = list(checklist.get("steps") or [])
        return view

    # --- lookups ------------------------------------------------------------------------

    def _run_exists(self, run_id: str) -> bool:
        run = self.runs.get(run_id)
        return run is not None and run["status"] != DELETED

    def _task_visible(self, task: Mapping[str, Any]) -> bool:
        """Not deleted, and not a task of a deleted run (deleting a run deletes its tasks)."""
        if task["status"] == DELETED:
            return False
        run = self.runs.get(str(task["run_id"])) if task["run_id"] is not None else None
        return run is None or run["status"] != DELETED

    def _run_refuses_tasks(self, run_id: str) -> str | None:
        run = self.runs[run_id]
        if run["status"] in CLOSED_RUN_STATUSES:
            return f"One-off tasks cannot be added to a {run['status']} process."
        checklist = self.checklists.get(str(run.get("checklist_id")))
        if checklist is not None and checklist.get("can_add_oot", True) is False:
            return "This template does not allow one-off tasks to be added to its processes."
        return None

    def set_run_status(self, run_id: str, status: str) -> Record:
        """Complete, archive, reopen or delete a run, as a person does in Tallyfy; the changed run.

        `status` is one of `RUN_STATUSES` or `deleted`; the record is replaced, never changed in
        place. A deleted run (and with it its tasks) is then unknown to the API: 404, in no list.
        Raises ResourceNotFound for an unknown or deleted run.
        """
        _check_status(status, RUN_STATUSES)
        with self.lock:
            run = dict(self.run(run_id))
            stamp = format_response_date(self.clock.now())
            run["status"] = status
            run["last_updated"] = stamp
            if status == DELETED:
                run["deleted_at"] = stamp
            else:
                run["completed_at"] = stamp if status == "complete" else None
                run["archived_at"] = stamp if status == "archived" else None
            self.runs[run_id] = run
            return run

    def set_task_status(self, task_id: str, status: str) -> Record:
        """Complete, archive, reopen or delete a task (a one-off task or a run's step), as a
        person does in Tallyfy; the changed task.

        `status` is one of `TASK_STATUSES` or `deleted`; the record is replaced, never changed
        in place. A deleted task is then unknown to the API: 404, in no list.
        Raises ResourceNotFound for an unknown or deleted task, or a task of a deleted run.
        """
        _check_status(status, TASK_STATUSES)
        with self.lock:
            task = dict(self.task(task_id))
            stamp = format_response_date(self.clock.now())
            task["status"] = status
            task["status_label"] = TASK_STATUS_LABELS[status]
            task["last_updated"] = stamp
            if status == DELETED:
                task["deleted_at"] = stamp
            else:
                task["completed_at"] = stamp if status == "completed" else None
                task["archived_at"] = stamp if status == "archived" else None
            self.tasks[task_id] = task
            return task

    def check_org(self, org_id: str) -> None:
        if org_id != self.organization_id:
            raise ResourceNotFound("organization", org_id)

    def checklist(self, checklist_id: str) -> Record:
        found = self.checklists.get(checklist_id)
        if found is None or _is_archived(found):
            raise ResourceNotFound("checklist", checklist_id)
        return found

    def run(self, run_id: str) -> Record:
        """The run; ResourceNotFound for an unknown or deleted one."""
        with self.lock:
            found = self.runs.get(run_id)
        if found is None or found["status"] == DELETED:
            raise ResourceNotFound("run", run_id)
        return found

    def task(self, task_id: str) -> Record:
        """The task; ResourceNotFound for an unknown or deleted one, or one of a deleted run."""
        with self.lock:
            found = self.tasks.get(task_id)
            if found is None or not self._task_visible(found):
                raise ResourceNotFound("task", task_id)
        return found

    def tasks_of(self, run_id: str) -> list[Record]:
        with self.lock:
            self.run(run_id)
            tasks = [self.tasks[t] for t in self.run_tasks.get(run_id, [])]
            return [t for t in tasks if t["status"] != DELETED]

    def tags_of(self, run_id: str) -> list[Record]:
        with self.lock:
            return [self.tags[t] for t in self.run_tags.get(run_id, [])]

    # --- queries ------------------------------------------------------------------------

    def list_runs(
        self,
        q: str | None = None,
        status: str | None = None,
        checklist_id: str | None = None,
        tag: str | None = None,
        descending: bool = True,
    ) -> list[Record]:
        """Runs matching every given filter, newest first unless `descending` is False."""
        with self.lock:
            runs = [
                r
                for r in self.runs.values()
                if r["status"] != DELETED
                and _text_match(q, r["name"])
                and (status is None or r["status"] == status)
                and (checklist_id is None or r["checklist_id"] == checklist_id)
                and (tag is None or tag in self.run_tags.get(r["id"], []))
            ]
        # increment_id orders runs created within the same second (created_at has no fraction).
        runs.sort(key=lambda r: r["increment_id"], reverse=descending)
        return runs

    def list_tasks(
        self, q: str | None = None, status: str | None = None, is_oneoff: bool | None = None
    ) -> list[Record]:
        """Every task (process steps and one-off tasks) matching the filters, oldest first."""
        with self.lock:
            tasks = [t for t in self.tasks.values() if self._task_visible(t)]
        return [
            t
            for t in tasks
            if _text_match(q, t["title"])
            and (is_oneoff is None or t["is_oneoff_task"] == is_oneoff)
            and _status_match(status, t["status"])
        ]

    def list_checklists(self, q: str | None = None, status: str | None = None) -> list[Record]:
        return [
            self.checklist_view(c, with_steps=False)
            for c in self.checklists.values()
            if not _is_archived(c)
            and _text_match(q, c.get("title"))
            and (status is None or c.get("status") == status)
        ]

    def list_users(self, q: str | None = None) -> list[Record]:
        return [
            u
            for u in self.users.values()
            if _text_match(q, u.get("first_name"), u.get("last_name"), u.get("email"))
        ]

    def list_guests(self, q: str | None = None) -> list[Record]:
        return [g for g in self.guests.values() if _text_match(q, g.get("email"))]

    def guest(self, email: str) -> Record:
        found = self.guests.get(email)
        if found is None:
            raise ResourceNotFound("guest", email)
        return found

    def list_groups(self, q: str | None = None) -> list[Record]:
        return [g for g in self.groups.values() if _text_match(q, g.get("name"))]

    def list_tags(self, q: str | None = None) -> list[Record]:
        return [t for t in self.tags.values() if _text_match(q, t.get("title"))]

    def list_folders(self, folder_type: str | None) -> list[Record]:
        wanted = folder_type or "checklist"
        return [f for f in self.folders.values() if f.get("folder_type", "checklist") == wanted]

    def snapshot(self) -> tuple[list[Record], list[Record]]:
        """Deep copies of every run and every task, in creation order (deleted ones too)."""
        with self.lock:
            return copy.deepcopy(list(self.runs.values())), copy.deepcopy(list(self.tasks.values()))

    # --- creation -----------------------------------------------------------------------

    def launch(self, body: Any, strict: bool) -> Record:
        """POST /runs: validate (404 / 422 as section 9 says), then create the run and its tasks.

        Raises ResourceNotFound for an unknown or archived template and InvalidInput otherwise.
        """
        checklist_id = check_launch_head(body)
        checklist = self.checklist(checklist_id)
        if checklist.get("status") == "draft":
            raise InvalidInput(
                problem(
                    "A draft template cannot be launched; publish it first.", key="checklist_id"
                )
            )
        with self.lock:
            request = check_launch(body, checklist, self.directory, strict)
            return self._create_run(request, checklist)

    def _create_run(self, req: LaunchRequest, checklist: Mapping[str, Any]) -> Record:
        now = self.clock.now()
        stamp = format_response_date(now)
        run_id = _new_id()
        self.run_seq += 1
        steps = sorted(checklist.get("steps") or [], key=lambda s: s.get("position", 0))
        tasks = [self._step_task(run_id, checklist, step, req, now, stamp) for step in steps]
        deadlines = [t["deadline"] for t in tasks if t["deadline"]]
        run: Record = {
            "id": run_id,
            "increment_id": self.run_seq,
            "checklist_id": checklist["id"],
            "checklist_title": checklist.get("title"),
            "name": req.name or f"{checklist.get('title')} - {now:%Y-%m-%d}",
            "summary": req.summary,
            "status": "active",
            "progress": {"complete": 0, "total": len(tasks), "percent": 0},
            "whole_progress": 0,
            "started_by": req.user_id if req.user_id is not None else self.me["id"],
            "owner_id": req.owner_id if req.owner_id is not None else self.me["id"],
            "prerun": req.prerun,
            "prerun_status": "complete",
            "starred": req.starred,
            "created_at": stamp,
            "started_at": stamp,
            "last_updated": stamp,
            "archived_at": None,
            "completed_at": None,
            "due_date": max(deadlines) if deadlines else None,
            "due_date_passed": False,
            "due_soon": False,
            "late_tasks": 0,
            "collaborators": [],
            "type": checklist.get("type", "procedure"),
            "is_public": req.is_public,
            "users": req.users,
            "groups": req.groups,
            "roles": req.roles,
            "folders": req.folders,
            "parent_id": req.parent_id,
            "has_open_issue": False,
        }
        self.runs[run_id] = run
        self.run_tags[run_id] = req.tags
        self.run_tasks[run_id] = [t["id"] for t in tasks]
        for task in tasks:
            self.tasks[task["id"]] = task
        return run

    def _step_task(
        self,
        run_id: str,
        checklist: Mapping[str, Any],
        step: Mapping[str, Any],
        req: LaunchRequest,
        now: datetime,
        stamp: str,
    ) -> Record:
        override = req.step_overrides.get(str(step["id"]), {})
        # Precedence (section 2.3): the launch's override, then the step's own assignees, then
        # the launcher when the step says assign_run_starter (the default).
        owners = override.get("owners")
        if not owners or not any(owners.values()):
            owners = {
                "users": list(step.get("assignees") or []),
                "guests": list(step.get("guests") or []),
                "groups": list(step.get("groups") or []),
            }
        if not any(owners.values()) and step.get("assign_run_starter", True):
            owners = {"users": [self.me["id"]], "guests": [], "groups": []}
        deadline = override.get("deadline") or step_deadline(step.get("deadline"), now)
        return self._task_record(
            title=str(step.get("title", "")),
            run_id=run_id,
            step_id=str(step["id"]),
            checklist_id=str(checklist["id"]),
            task_type=str(step.get("task_type", "task")),
            owners=owners,
            deadline=deadline,
            started_at=stamp,
            created_at=stamp,
            summary=step.get("summary"),
            is_oneoff=False,
            extra={"position": step.get("position"), "alias": step.get("alias")},
        )

    def _task_record(
        self,
        *,
        title: str,
        run_id: str | None,
        step_id: str | None,
        checklist_id: str | None,
        task_type: str,
        owners: Mapping[str, list[Any]],
        deadline: datetime | None,
        started_at: str,
        created_at: str,
        summary: Any,
        is_oneoff: bool,
        extra: Mapping[str, Any] | None = None,
    ) -> Record:
        """A task record; the clock is read once per request by the caller (`created_at`)."""
        self.task_seq += 1
        return {
            "id": _new_id(),
            "increment_id": self.task_seq,
            "title": title,
            "run_id": run_id,
            "step_id": step_id,
            "checklist_id": checklist_id,
            "status": "not-started",
            "status_label": "Not started",
            "task_type": task_type,
            "is_oneoff_task": is_oneoff,
            "owners": {b: list(owners.get(b) or []) for b in OWNER_BUCKETS},
            "deadline": format_response_date(deadline) if deadline else None,
            "started_at": started_at,
            "created_at": created_at,
            "last_updated": created_at,
            "completed_at": None,
            "archived_at": None,
            "everyone_must_complete": False,
            "can_complete_only_assignees": False,
            "max_assignable": 0,
            "webhook": None,
            "top_secret": False,
            "summary": summary,
            **(extra or {}),
        }

    def create_task(self, body: Any, strict: bool) -> Record:
        """POST /tasks: validate (422 as section 9 item 13 says), then create the task(s)."""
        with self.lock:
            req = check_task(body, self.directory, strict)
            if req.separate_task_for_each_assignee:
                return self._create_fanout(req)
            return self._oneoff(req, req.owners, req.run_id, self.clock.now())

    def _oneoff(
        self,
        req: TaskRequest,
        owners: Mapping[str, list[Any]],
        run_id: str | None,
        now: datetime,
    ) -> Record:
        stamp = format_response_date(now)
        extra: Record = {"is_soft_start_date": False, **req.extras}
        extra["description"] = req.description
        extra["tags"] = req.tags
        extra["form_fields"] = req.form_fields
        task = self._task_record(
            title=req.title,
            run_id=run_id,
            step_id=None,
            checklist_id=None,
            task_type=req.task_type,
            owners=owners,
            deadline=req.deadline,
            started_at=format_response_date(req.started_at) if req.started_at else stamp,
            created_at=stamp,
            summary=req.summary,
            is_oneoff=True,
            extra=extra,
        )
        self.tasks[task["id"]] = task
        if run_id is not None:
            self.run_tasks.setdefault(run_id, []).append(task["id"])
        return task

    def _create_fanout(self, req: TaskRequest) -> Record:
        """separate_task_for_each_assignee: a container run, one task per assignee (item 14)."""
        now = self.clock.now()
        stamp = format_response_date(now)
        each: list[dict[str, list[Any]]] = []
        seen_users: set[int] = set()
        member_ids: Iterable[int] = [
            m for g in req.owners["groups"] for m in self.groups[g].get("members") or []
        ]
        for user in [*req.owners["users"], *member_ids]:
            if user not in seen_users:
                seen_users.add(user)
                each.append({"users": [user], "guests": [], "groups": []})
        each += [{"users": [], "guests": [g], "groups": []} for g in req.owners["guests"]]
        if not each:
            each = [{"users": [], "guests": [], "groups": []}]
        run_id = _new_id()
        self.run_seq += 1
        run: Record = {
            "id": run_id,
            "increment_id": self.run_seq,
            "checklist_id": None,
            "checklist_title": None,
            "name": req.title,
            "summary": req.summary,
            "status": "active",
            "progress": {"complete": 0, "total": len(each), "percent": 0},
            "whole_progress": 0,
            "started_by": self.me["id"],
            "owner_id": self.me["id"],
            "prerun": {},
            "prerun_status": "complete",
            "starred": False,
            "created_at": stamp,
            "started_at": stamp,
            "last_updated": stamp,
            "archived_at": None,
            "completed_at": None,
            "due_date": format_response_date(req.deadline),
            "due_date_passed": False,
            "due_soon": False,
            "late_tasks": 0,
            "collaborators": [],
            "type": "procedure",
            "is_public": False,
            "users": [],
            "groups": [],
            "roles": {},
            "folders": [],
            "parent_id": None,
            "has_open_issue": False,
        }
        self.runs[run_id] = run
        self.run_tags[run_id] = []
        tasks = [self._oneoff(req, owners, run_id, now) for owners in each]
        first = dict(tasks[0])
        first["run"] = {"id": run_id, "name": run["name"], "started_at": stamp}
        return first


def _check_status(status: str, statuses: tuple[str, ...]) -> None:
    """InvalidInput naming `status` and its value unless it is one of `statuses` or deleted."""
    if status not in (*statuses, DELETED):
        choices = ", ".join((*statuses, DELETED))
        message = f"must be one of {choices}, not {status!r}"
        raise InvalidInput(problem(message, key="status", value=status))


def _status_match(wanted: str | None, status: str) -> bool:
    if wanted is None:
        return True
    if wanted in ("complete", "completed"):
        return status == "completed"
    if wanted in ("incomplete", "active"):
        return status != "completed"
    return wanted == status
