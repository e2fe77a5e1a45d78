"""A Job and a scheduled instant -> the exact request to send (docs/jobs.md).

`build_request` is pure: the same (job, scheduled instant, seq, run id) always gives the same
request, whenever it is built. That is what makes a late fire (retry, catch-up, backfill) carry
the values it would have carried on time, and what lets `reconcile_key` find a launch whose
outcome is uncertain: the rendered name or title depends on nothing else.

`seq` is 1 + the number of successful fires of the job scheduled strictly before this one
(`Store.success_count(job_id, before=scheduled_for) + 1`), so a retry renders the same `{seq}`.

Members written as emails (owners, step assignees, roles, process users, owner and starter)
are sent as user ids when the caller passes `members` (the runner's `MemberDirectory`: the
organization's members, read at fire time); without it (`preview`, a read-back, which only
needs the name or title) they are left as written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from scheduler.client import ApiRequest
from scheduler.clock import to_utc, utc_iso
from scheduler.errors import FireRejected, InvalidInput, KeyPath, dotted_key, problem
from scheduler.job import At, CreateTask, Job, LaunchProcess, Member, Owners, Passthrough
from scheduler.templates import fire_values
from scheduler.timeexpr import BusinessCalendar

ReconcileKey = tuple[str, str, str] | tuple[str, str]
# A member's email -> the member's user id, or None when no member has that email.
MemberIds = Callable[[str], int | None]


def build_request(
    job: Job,
    scheduled_for: datetime,
    *,
    organization_id: str,
    calendar: BusinessCalendar,
    seq: int,
    run_id: str | None = None,
    members: MemberIds | None = None,
) -> ApiRequest:
    """The request a fire of `job` scheduled at `scheduled_for` sends.

    Every instant comes from a time expression resolved against `scheduled_for` in the job's
    zone and is sent as `YYYY-MM-DDTHH:MM:SSZ`. For a create_task job with `run_from_job`, the
    caller passes `run_id` (the run that job launched last); without one this raises
    InvalidInput, so a task is never silently created outside its run. With `members`, each
    member email becomes its user id; an email no member has raises FireRejected naming it.
    """
    scheduled_for = to_utc(scheduled_for)
    action = job.action
    users = _Users(members)
    if isinstance(action, LaunchProcess):
        return ApiRequest(
            "POST",
            f"/organizations/{organization_id}/runs",
            _launch_body(job, action, scheduled_for, calendar, seq, users),
        )
    return ApiRequest(
        "POST",
        f"/organizations/{organization_id}/tasks",
        _task_body(job, action, scheduled_for, calendar, seq, run_id, users),
    )


def reconcile_key(job: Job, request: ApiRequest) -> ReconcileKey:
    """What to look the created object up by: `("run", name, checklist_id)` or `("task", title)`."""
    if isinstance(job.action, LaunchProcess):
        return ("run", str(request.body["name"]), str(request.body["checklist_id"]))
    return ("task", str(request.body["title"]))


class _Users:
    """Members as the API takes them: user ids (emails looked up when `members` is given)."""

    __slots__ = ("members",)

    def __init__(self, members: MemberIds | None) -> None:
        self.members = members

    def one(self, member: Member, key: KeyPath) -> Member:
        if isinstance(member, int) or self.members is None:
            return member
        found = self.members(member)
        if found is None:
            raise FireRejected(
                problem(
                    f"no member of the organization has the email {member!r}",
                    key=dotted_key(key),
                    value=member,
                )
            )
        return found

    def ids(self, members: Iterable[Member], key: KeyPath) -> list[Member]:
        return [self.one(member, key) for member in members]

    def owners(self, owners: Owners, key: KeyPath) -> dict[str, list[Any]]:
        """An owners table in the API's shape (all three keys), its members as ids."""
        found = owners.to_json()
        found["users"] = self.ids(owners.users, (*key, "users"))
        return found


def _launch_body(
    job: Job,
    action: LaunchProcess,
    scheduled_for: datetime,
    calendar: BusinessCalendar,
    seq: int,
    users: _Users,
) -> dict[str, Any]:
    values = fire_values(job.id, scheduled_for, job.zone, seq)
    body: dict[str, Any] = {
        "checklist_id": action.checklist_id,
        "name": action.name.render(values),
    }
    if action.summary is not None:
        summary = action.summary.render(values)
        if summary:
            body["summary"] = summary
    prerun: dict[str, Any] = {}
    for key, value in action.prerun.items():
        if isinstance(value, At):
            prerun[key] = utc_iso(value.at.resolve(scheduled_for, job.zone, calendar))
        elif isinstance(value, Passthrough):
            prerun[key] = value.value
        else:
            prerun[key] = value.render(values)
    if prerun:
        body["prerun"] = prerun
    tasks: dict[str, Any] = {}
    for step, override in action.tasks.items():
        entry: dict[str, Any] = {}
        if override.deadline is not None:
            entry["deadline"] = utc_iso(
                override.deadline.resolve(scheduled_for, job.zone, calendar)
            )
        if override.owners is not None:
            entry["owners"] = users.owners(override.owners, ("action", "tasks", step, "owners"))
        if entry:
            tasks[step] = entry
    if tasks:
        body["tasks"] = tasks
    if action.users:
        body["users"] = users.ids(action.users, ("action", "users"))
    for key, ids in (("groups", action.groups), ("tags", action.tags)):
        if ids:
            body[key] = list(ids)
    options = action.options
    if options is None:
        return body
    if options.roles:
        body["roles"] = {
            role: users.owners(owners, ("action", "roles", role))
            for role, owners in options.roles.items()
        }
    if options.folders:
        body["folders"] = list(options.folders)
    for key, member in (("owner_id", options.owner_id), ("user_id", options.user_id)):
        if member is not None:
            body[key] = users.one(member, ("action", key))
    for key, given in (
        ("parent_id", options.parent_id),
        ("is_public", options.is_public),
        ("starred", options.starred),
    ):
        if given is not None:
            body[key] = given
    return body


def _task_body(
    job: Job,
    action: CreateTask,
    scheduled_for: datetime,
    calendar: BusinessCalendar,
    seq: int,
    run_id: str | None,
    users: _Users,
) -> dict[str, Any]:
    deadline = action.deadline.resolve(scheduled_for, job.zone, calendar)
    started_at = action.started_at.resolve(scheduled_for, job.zone, calendar)
    values = fire_values(job.id, scheduled_for, job.zone, seq, deadline=deadline)
    body: dict[str, Any] = {
        "title": action.title.render(values),
        "task_type": action.task_type.value,
        "owners": users.owners(action.owners, ("action", "owners")),
        "deadline": utc_iso(deadline),
        "started_at": utc_iso(started_at),
    }
    if action.summary is not None:
        summary = action.summary.render(values)
        if summary:
            # The seed page names the text `description`; the API's clients send `summary`
            # (tallyfy-api.md 3.1). Both, with the same text, so either reading finds it.
            body["summary"] = summary
            body["description"] = summary
    run = run_id or action.run_id
    if action.run_from_job is not None and run is None:
        raise InvalidInput(
            problem(
                f"{action.run_from_job!r} has no successful launch yet: no run to attach the "
                "task to",
                key="action.run_from_job",
                value=action.run_from_job,
            )
        )
    if run is not None:
        body["run_id"] = run
    for key, value in action.extra.items():
        body[key] = value.value
    return body
