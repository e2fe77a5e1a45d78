"""The `tallyfy-scheduler` command line (docs/cli.md).

Thin by design: each command parses its arguments, builds objects, calls one function and
prints what it returns; the rules live in the modules it calls (`operations.py` for apply,
fire, backfill and preview, shared with the demo). Settings are built lazily (once) in the
`App` context object, so `next --cron ... --tz ...` needs no config file and no store. `now`
is read once per command, from the App's clock.

Exit codes: 0 success; 1 the command ran and failed (any `SchedulerError`: validation errors
print one line per problem on stderr, naming file, key and value); 2 usage (click's).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from functools import cached_property
from itertools import islice
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

import click

from scheduler import __version__, operations
from scheduler.client import TallyfyClient
from scheduler.clock import Clock, SystemClock, parse_instant, utc_iso
from scheduler.config import LOG_LEVELS, Settings, load_settings, zone_problem
from scheduler.cron import parse_schedule
from scheduler.daemon import Daemon, exit_now
from scheduler.definitions import job_from_document, load_job_files
from scheduler.describe import describe
from scheduler.doctor import CheckStatus, diagnose
from scheduler.durations import format_duration, parse_duration
from scheduler.errors import (
    ConfigError,
    FireFailed,
    InvalidInput,
    JobNotFound,
    SchedulerError,
    StoreError,
    problem,
)
from scheduler.guestcap import guest_invite_warning
from scheduler.job import Job
from scheduler.lifecycle import FireStatus
from scheduler.logs import configure_logging, escape_controls, escape_json_controls
from scheduler.runner import Observer, Runner
from scheduler.skipdays import skip_days_of
from scheduler.status import build_status, iso_in, job_row, job_rows, paused_cell, zone_of
from scheduler.store import ApplyPlan, Fire, Store, StoredJob
from scheduler.templatecheck import check_job_files
from scheduler.timeexpr import BusinessCalendar

log = logging.getLogger(__name__)

PROG_NAME = "tallyfy-scheduler"
ALERTS_OFF = (
    "alerts are off: no target has a URL (set TALLYFY_SCHEDULER_ALERT_URLS, "
    "TALLYFY_SCHEDULER_ALERT_URLS_FILE, the systemd credential 'alert-urls', or the "
    "variables [alerts.targets] names)"
)
DEFAULT_NEXT_COUNT = 5  # cli.md: `next` shows five instants unless told otherwise
DEFAULT_HISTORY_LIMIT = 50
SHOW_HISTORY_LIMIT = 10  # `jobs show`: the recent history only


class App:
    """What the commands share: settings (built on first use), the store, the clock."""

    def __init__(
        self,
        config_path: Path | None = None,
        db_url: str | None = None,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.config_path = config_path
        self.db_url = db_url
        self.clock: Clock = clock or SystemClock()
        self._stores: list[Store] = []
        self._clients: list[TallyfyClient] = []

    @cached_property
    def settings(self) -> Settings:
        return load_settings(self.config_path, db_url=self.db_url)

    def now(self) -> datetime:
        """The current instant; a command reads it once and passes it down."""
        return self.clock.now()

    def open_store(self, *, init: bool = False) -> Store:
        """The store, checked to be initialized at this version (SchemaError says what to do).

        Only `init` creates one (`init=True`: created if missing, not checked); every other
        command refuses a store that is not there, and never creates it or its directories.
        Closed by `close()` when the command ends.
        """
        store = Store.open(self.settings.store.url, create=init)
        self._stores.append(store)
        if not init:
            store.check_schema()
        return store

    def close(self) -> None:
        """Release what the command opened."""
        while self._stores:
            self._stores.pop().close()
        while self._clients:
            self._clients.pop().close()

    def load_settings(self, *, log_level: str | None = None) -> Settings:
        """The settings read again from their sources (SIGHUP); `log_level`, given on the
        command line, wins over the config file's."""
        fresh = load_settings(self.config_path, db_url=self.db_url)
        if log_level is None:
            return fresh
        return replace(fresh, scheduler=replace(fresh.scheduler, log_level=log_level.upper()))

    def client(self) -> TallyfyClient:
        """The API client from `[tallyfy]` (ConfigError names what is missing)."""
        client = TallyfyClient.from_settings(self.settings.tallyfy)
        self._clients.append(client)
        return client

    def runner(
        self, store: Store, *, observer: Observer | None = None, respect_overlap: bool = False
    ) -> Runner:
        """The one code path that sends fires (the daemon uses the same); `respect_overlap`:
        manual and backfilled fires obey their job's `overlap` too."""
        return Runner(
            store,
            self.client(),
            organization_id=operations.require_organization_id(self.settings),
            calendar=BusinessCalendar.from_settings(self.settings.calendar),
            retry=self.settings.retry,
            clock=self.clock,
            observer=observer,
            respect_overlap=respect_overlap,
        )


class Failed(click.ClickException):
    """A SchedulerError on its way out: exit 1, its problems on stderr, no traceback."""

    exit_code = 1

    def __init__(self, error: SchedulerError) -> None:
        super().__init__(str(error))
        self.error = error

    def show(self, file: IO[Any] | None = None) -> None:
        if isinstance(self.error, InvalidInput):
            lines = [str(p) for p in self.error.problems]
        elif isinstance(self.error, FireFailed):  # one line per fire, whatever its error holds
            lines = [f"error: {line}" for line in self.error.lines]
        else:
            lines = [f"error: {line}" for line in str(self.error).splitlines() or [""]]
        for line in lines:
            click.echo(escape_controls(line), err=True, file=file)


class _Group(click.Group):
    """Turns expected errors (SchedulerError) into exit 1 with a message, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SchedulerError as exc:
            raise Failed(exc) from None


class _Instant(click.ParamType):  # type: ignore[type-arg]  # generic only in newer click
    """An ISO 8601 instant with an offset, as aware UTC."""

    name = "ISO"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, datetime):
            return value
        try:
            return parse_instant(str(value))
        except ValueError as exc:
            self.fail(f"{value!r} is not an ISO 8601 instant with an offset ({exc})", param, ctx)


INSTANT = _Instant()


class _Duration(click.ParamType):  # type: ignore[type-arg]  # generic only in newer click
    """A duration such as `400d` or `1w2d` (docs/jobs.md, "Durations")."""

    name = "DURATION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, timedelta):
            return value
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(f"{value!r}: {exc}", param, ctx)


DURATION = _Duration()


def _say(line: str, *, err: bool = False) -> None:
    """One line of human output. Text from outside (an API's error message, a remote id, a
    job file) is shown escaped, so it can neither split the line nor paint the terminal."""
    click.echo(escape_controls(line), err=err)


def _say_lines(text: str) -> None:
    """Text of several lines of ours (the demo's), each line shown as `_say` shows one."""
    click.echo("\n".join(escape_controls(line) for line in text.split("\n")))


def _json_text(data: Any, *, indent: int | None = None) -> str:
    """`data` as JSON: text kept as it is, the characters a terminal would act on escaped."""
    return escape_json_controls(json.dumps(data, indent=indent, ensure_ascii=False))


def _echo_json(data: Any) -> None:
    click.echo(_json_text(data))


@click.group(cls=_Group, context_settings={"help_option_names": ["--help", "-h"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Config file (default: $TALLYFY_SCHEDULER_CONFIG, ./config.toml, "
    "/etc/tallyfy-scheduler/config.toml).",
)
@click.option("--db", "db_url", metavar="URL", help="Store URL (overrides the config file).")
@click.version_option(__version__, prog_name=PROG_NAME)
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, db_url: str | None) -> None:
    """Run Tallyfy automations on cron schedules: exactly once per scheduled instant."""
    if isinstance(ctx.obj, App):  # tests hand in an App (with a fake clock)
        ctx.obj.config_path = config_path or ctx.obj.config_path
        ctx.obj.db_url = db_url or ctx.obj.db_url
    else:
        ctx.obj = App(config_path, db_url)
    ctx.call_on_close(ctx.obj.close)


def main() -> None:
    """The console script `tallyfy-scheduler` (and `python -m scheduler`)."""
    cli(prog_name=PROG_NAME)


# -- init ---------------------------------------------------------------------------------------


@cli.command()
@click.pass_obj
def init(app: App) -> None:
    """Create or upgrade the store's schema; safe to run again."""
    store = app.open_store(init=True)
    version = store.init_schema()
    _say(f"store {store.url} is ready (schema version {version})")


# -- jobs ---------------------------------------------------------------------------------------


@cli.group()
def jobs() -> None:
    """Validate, apply, list, show, pause, resume and remove jobs."""


_PATHS = click.argument(
    "paths", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="PATH..."
)


@jobs.command("validate")
@_PATHS
@click.option(
    "--online",
    is_flag=True,
    help="Also check each job against its Tallyfy template, users, groups and tags (reads "
    "the API; needs the token and organization).",
)
@click.pass_obj
def jobs_validate(app: App, paths: Sequence[Path], online: bool) -> None:
    """Check job files (files, or folders of *.toml); report every error, store nothing."""
    stored = _stored_definitions(app)
    if online:
        found = check_job_files(
            paths,
            app.settings,
            app.now(),
            app.client(),
            stored=stored,
            latest_runs=_latest_runs(app, stored),
        )
    else:
        found = load_job_files(paths, app.settings, app.now())
    checked = " (and against Tallyfy)" if online else ""
    _say(f"{len(found)} job(s) valid{checked}: {', '.join(job.id for job in found)}")
    # Warnings last: the files are valid, and the jobs stored are counted with them.
    together = {job.id: job for job in _stored_jobs(app, stored)}
    together.update({job.id: job for job in found})
    calendar = BusinessCalendar.from_settings(app.settings.calendar)
    warning = guest_invite_warning(together.values(), now=app.now(), calendar=calendar)
    if warning:
        _say(f"warning: {warning}", err=True)


def _stored_definitions(app: App) -> list[dict[str, Any]]:
    """The stored jobs' definitions (for run_from_job), or none when the store is not ready."""
    try:
        return [stored.definition for stored in app.open_store().list_jobs()]
    except (StoreError, ConfigError):
        return []


def _stored_jobs(app: App, definitions: Sequence[dict[str, Any]]) -> list[Job]:
    """The stored definitions that still load (a quarantined one fires nothing)."""
    jobs = []
    for definition in definitions:
        try:
            jobs.append(job_from_document(definition, app.settings))
        except SchedulerError:
            continue
    return jobs


def _latest_runs(app: App, definitions: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Each stored launch job's latest launched run, from the history (none without a store)."""
    runs: dict[str, str] = {}
    try:
        store = app.open_store()
        for definition in definitions:
            action = definition.get("action")
            if isinstance(action, dict) and action.get("type") == "launch_process":
                launched = store.latest_success(str(definition.get("id")))
                if launched is not None and launched.remote_id:
                    runs[launched.job_id] = launched.remote_id
    except (StoreError, ConfigError):
        return {}
    return runs


@jobs.command("apply")
@_PATHS
@click.option("--prune", is_flag=True, help="Remove stored jobs that no file defines.")
@click.option("--dry-run", is_flag=True, help="Print the changes; write nothing.")
@click.pass_obj
def jobs_apply(app: App, paths: Sequence[Path], prune: bool, dry_run: bool) -> None:
    """Validate job files, then store them all in one transaction (or none of them)."""
    plan = operations.apply_job_files(
        paths, app.settings, app.open_store, now=app.now(), prune=prune, dry_run=dry_run
    )
    _print_plan(plan, dry_run=dry_run)


def _print_plan(plan: ApplyPlan, *, dry_run: bool) -> None:
    if dry_run:
        _say("dry run: nothing was written")
    for label, ids in (
        ("added", plan.added),
        ("changed", plan.changed),
        ("removed", plan.removed),
        ("unchanged", plan.unchanged),
    ):
        _say(f"{label}: {', '.join(ids) if ids else '-'}")


@jobs.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@click.pass_obj
def jobs_list(app: App, as_json: bool) -> None:
    """Every stored job: id, enabled, schedule, zone, next fire, last outcome."""
    rows = job_rows(app.open_store(), app.settings, app.now())
    if as_json:
        _echo_json({"jobs": rows})
        return
    table: list[tuple[str, ...]] = [
        ("ID", "ENABLED", "SCHEDULE", "ZONE", "NEXT FIRE", "LAST OUTCOME")
    ]
    for row in rows:
        last = row["last_outcome"]
        next_fire = f"invalid: {row['error']}" if "error" in row else row["next_fire"] or "-"
        cells = (
            row["id"],
            paused_cell(row),
            str(row["schedule"]),
            str(row["timezone"]),
            next_fire,
            f"{last['status']} ({last['scheduled_for']})" if last else "-",
        )
        table.append(tuple(escape_controls(cell) for cell in cells))  # widths as shown
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for r in table:
        _say("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())


@jobs.command("show")
@click.argument("job_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@click.pass_obj
def jobs_show(app: App, job_id: str, as_json: bool) -> None:
    """The stored definition of one job and its recent history."""
    now = app.now()
    store = app.open_store()
    stored = store.get_job(job_id)
    zone = zone_of(stored.definition)
    summary = job_row(
        stored,
        app.settings,
        now,
        store.success_count(job_id),
        store.job_marks([job_id]).get(job_id),
    )
    fires = [fire.to_json(zone) for fire in store.history(job_id, limit=SHOW_HISTORY_LIMIT)]
    data: dict[str, Any] = {
        "job": {
            **summary,
            "source": stored.source,
            "active_since": iso_in(stored.active_since, zone),
            "created_at": iso_in(stored.created_at, zone),
            "updated_at": iso_in(stored.updated_at, zone),
            "definition": stored.definition,
        },
        "history": fires,
    }
    if as_json:
        _echo_json(data)
        return
    for key in ("id", "enabled", "source"):
        _say(f"{key}: {data['job'][key]}")
    if summary["schedule_words"]:
        _say(f"schedule: {summary['schedule_words']} ({summary['timezone']})")
    for key in ("next_fire", "active_since", "updated_at"):
        _say(f"{key}: {data['job'][key]}")
    if not stored.enabled:
        _say(f"paused by: {summary['paused_by']}: {summary['pause_reason'] or '-'}")
    if "error" in summary:
        _say(f"invalid: {summary['error']}")
    _say("definition:")
    click.echo(_json_text(stored.definition, indent=2))
    _say(f"history (newest first, at most {SHOW_HISTORY_LIMIT}):")
    for fire in store.history(job_id, limit=SHOW_HISTORY_LIMIT):
        _say("  " + _fire_line(fire, zone))
    if not fires:
        _say("  (none)")


@jobs.command("pause")
@click.argument("job_id", metavar="ID")
@click.pass_obj
def jobs_pause(app: App, job_id: str) -> None:
    """Stop firing a job; it keeps its history."""
    app.open_store().set_enabled(job_id, False, now=app.now())
    _say(f"paused {job_id}")


@jobs.command("resume")
@click.argument("job_id", metavar="ID")
@click.pass_obj
def jobs_resume(app: App, job_id: str) -> None:
    """Fire a paused job again, from now on (the paused period is not replayed)."""
    app.open_store().set_enabled(job_id, True, now=app.now())
    _say(f"resumed {job_id}: it fires from now on")


@jobs.command("remove")
@click.argument("job_id", metavar="ID")
@click.pass_obj
def jobs_remove(app: App, job_id: str) -> None:
    """Delete a job from the store; its history stays."""
    app.open_store().remove_job(job_id)
    _say(f"removed {job_id} (its history stays)")


# -- next, preview, history ---------------------------------------------------------------------


@cli.command("next")
@click.argument("job_id", metavar="[ID]", required=False)
@click.option("--cron", "expression", metavar="EXPR", help="A cron expression instead of a job.")
@click.option("--tz", "zone_name", metavar="ZONE", help="Zone of --cron (default: the config's).")
@click.option("--after", type=INSTANT, help="Start strictly after this instant (default: now).")
@click.option("--count", type=click.IntRange(min=1), default=DEFAULT_NEXT_COUNT, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@click.pass_obj
def next_(
    app: App,
    job_id: str | None,
    expression: str | None,
    zone_name: str | None,
    after: datetime | None,
    count: int,
    as_json: bool,
) -> None:
    """The next fire instants of a job, or of a cron expression in a zone."""
    if (job_id is None) == (expression is None):
        raise click.UsageError("give a job ID or --cron EXPR (not both)")
    if zone_name is not None and expression is None:
        raise click.UsageError("--tz goes with --cron (a job has its own zone)")
    after = after or app.now()
    skipped: dict[datetime, str] = {}  # instants on the job's skip days, and why
    if expression is not None:
        zone_name = zone_name or app.settings.scheduler.timezone
        zone_fault = zone_problem(zone_name)
        if zone_fault:
            raise InvalidInput(problem(zone_fault, key="--tz", value=zone_name))
        schedule = parse_schedule(expression, zone_name)
        instants = list(islice(schedule.iter_after(after), count))
        words = describe(expression)
    else:
        assert job_id is not None
        job = operations.load_job(app.open_store(), app.settings, job_id)
        expression, zone_name = job.schedule, job.timezone
        instants = list(islice(job.fires_after(after), count))
        words = describe(expression, job_id=job.id)
        days = skip_days_of(job, BusinessCalendar.from_settings(app.settings.calendar))
        if days is not None:
            skipped = {i: reason for i in instants if (reason := days.reason(i)) is not None}
    zone = ZoneInfo(zone_name)
    if as_json:
        data: dict[str, Any] = {
            "schedule": expression,
            "timezone": zone_name,
            "words": words,
            "instants": [iso_in(i, zone) for i in instants],
        }
        if skipped:
            data["skipped"] = {iso_in(i, zone): reason for i, reason in skipped.items()}
        _echo_json(data)
        return
    # The words go to stderr: stdout stays one instant per line for scripts.
    _say(f"# {words} ({zone_name})", err=True)
    for instant in instants:
        reason = skipped.get(instant)
        shown = f"  skipped: {reason}" if reason is not None else ""
        _say(f"{iso_in(instant, zone)}  ({utc_iso(instant)}){shown}")
    if len(instants) < count:
        _say(f"(no more instants: {len(instants)} of {count})", err=True)


@cli.command()
@click.argument("job_id", metavar="ID")
@click.option("--at", type=INSTANT, help="The scheduled instant (default: the job's next fire).")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@click.pass_obj
def preview(app: App, job_id: str, at: datetime | None, as_json: bool) -> None:
    """The exact request a fire of the job would send; sends nothing."""
    now = app.now()
    shown = operations.preview(app.open_store(), app.settings, job_id, now=now, at=at)
    request = shown.request
    data: dict[str, Any] = {
        "job_id": shown.job.id,
        "scheduled_for": iso_in(shown.scheduled_for, shown.job.zone),
        "method": request.method if request is not None else None,
        "url": shown.url,
        "body": request.body if request is not None else None,
    }
    if shown.skipped is not None:
        data["skipped"] = shown.skipped
    if shown.waiting is not None:
        data["waiting"] = shown.waiting
    if as_json:
        _echo_json(data)
        return
    _say(f"# {shown.job.id}, fire scheduled for {data['scheduled_for']}")
    if request is None:
        _say(f"skipped: {shown.skipped}; nothing is sent")
        return
    if shown.waiting is not None:
        _say(f"# {shown.waiting}: when fired, it waits for it; shown with the latest run so far")
    _say(f"{request.method} {shown.url}")
    click.echo(_json_text(request.body, indent=2))


def _stored_or_none(store: Store, job_id: str) -> list[StoredJob]:
    """The job, or nothing: the history of a removed job is still shown (in UTC)."""
    try:
        return [store.get_job(job_id)]
    except JobNotFound:
        return []


def _fire_line(fire: Fire, zone: ZoneInfo) -> str:
    detail = fire.remote_id or fire.error or ""
    if fire.skipped_count and fire.skipped_count > 1:
        detail = f"{fire.skipped_count} instants until {iso_in(fire.skipped_until, zone)}: {detail}"
    return (
        f"{iso_in(fire.scheduled_for, zone)}  {fire.job_id}  {fire.trigger}  {fire.status}"
        f"  attempts={fire.attempts}  {detail}"
    ).rstrip()


class _History(_Group):
    """`history [ID] [options]` is `history show ...`; `history prune ...` prunes."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or args[0] not in self.commands or args[0] in ctx.help_option_names:
            if not (args and args[0] in ctx.help_option_names):
                args = ["show", *args]
        return super().parse_args(ctx, args)


@cli.group(cls=_History)
def history() -> None:
    """The fire history (`history [ID]`, i.e. `history show`), and pruning it by hand."""


@history.command("show")
@click.argument("job_id", metavar="[ID]", required=False)
@click.option("--status", type=click.Choice([s.value for s in FireStatus]), help="Only these.")
@click.option("--since", type=INSTANT, help="Only instants at or after this one.")
@click.option(
    "--limit", type=click.IntRange(min=1), default=DEFAULT_HISTORY_LIMIT, show_default=True
)
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@click.pass_obj
def history_show(
    app: App,
    job_id: str | None,
    status: str | None,
    since: datetime | None,
    limit: int,
    as_json: bool,
) -> None:
    """The run history, newest first, in each job's zone."""
    store = app.open_store()
    fires = store.history(job_id, status=status, since=since, limit=limit)
    stored_jobs = store.list_jobs() if job_id is None else _stored_or_none(store, job_id)
    zones = {stored.id: zone_of(stored.definition) for stored in stored_jobs}
    utc = ZoneInfo("UTC")
    if as_json:
        _echo_json({"fires": [fire.to_json(zones.get(fire.job_id, utc)) for fire in fires]})
        return
    for fire in fires:
        _say(_fire_line(fire, zones.get(fire.job_id, utc)))
    if not fires:
        _say("(no fires)", err=True)


@history.command("prune")
@click.option(
    "--older-than",
    "older_than",
    type=DURATION,
    required=True,
    help="Delete finished rows whose instant is older than this (e.g. 400d).",
)
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@click.pass_obj
def history_prune(app: App, older_than: timedelta, dry_run: bool) -> None:
    """Delete finished history rows older than --older-than, as the daemon does (docs)."""
    now = app.now()
    report = app.open_store().prune_history(older_than=now - older_than, now=now, dry_run=dry_run)
    for job_id, count in sorted(report.by_job.items()):
        _say(f"{job_id}: {count} rows")
    verb = "would be deleted" if dry_run else "deleted"
    _say(f"{report.rows} history rows older than {format_duration(older_than)} {verb}")


# -- fire, backfill -----------------------------------------------------------------------------

RESPECT_OVERLAP_HELP = (
    "Obey the job's `overlap` policy: skip an instant while the job's last launch is open "
    "(by default a fire by hand ignores it)."
)


def _outcome_line(fire: Fire, zone: ZoneInfo) -> str:
    line = f"{fire.job_id} {iso_in(fire.scheduled_for, zone)}: {fire.status}"
    if fire.remote_id:
        line += f", remote id {fire.remote_id}"
    if fire.error:
        line += f" ({fire.error})"
    return line


@cli.command("fire")
@click.argument("job_id", metavar="ID")
@click.option("--at", type=INSTANT, help="The instant it counts as (default: now, to the second).")
@click.option("--respect-overlap", is_flag=True, help=RESPECT_OVERLAP_HELP)
@click.pass_obj
def fire_(app: App, job_id: str, at: datetime | None, respect_overlap: bool) -> None:
    """Fire a job once now, recorded as a manual fire; exit 1 unless it succeeded."""
    store = app.open_store()
    job = operations.load_job(store, app.settings, job_id)
    runner = app.runner(store, respect_overlap=respect_overlap)
    done = operations.fire_job(runner, job, now=app.now(), at=at)
    _say(_outcome_line(done, job.zone))
    operations.raise_unless_succeeded([done])


@cli.command()
@click.argument("job_id", metavar="ID")
@click.option("--from", "start", type=INSTANT, required=True, help="First instant (inclusive).")
@click.option("--to", "end", type=INSTANT, required=True, help="Last instant (inclusive).")
@click.option("--dry-run", is_flag=True, help="Print what would be fired; send nothing.")
@click.option("--respect-overlap", is_flag=True, help=RESPECT_OVERLAP_HELP)
@click.pass_obj
def backfill(
    app: App, job_id: str, start: datetime, end: datetime, dry_run: bool, respect_overlap: bool
) -> None:
    """Fire the job's scheduled instants in [--from, --to] that history does not hold as sent."""
    span = operations.backfill_range(start, end, now=app.now())
    if span.note:  # said before anything else can fail
        _say(span.note, err=True)
    store = app.open_store()
    plan = operations.backfill_plan(store, app.settings, job_id, span)
    zone = plan.job.zone
    for step in plan.steps:
        verdict = "to fire" if step.to_fire else "in history"
        if step.existing is not None:
            verdict += f" ({step.existing.status})"
        if step.skipped is not None:
            verdict = f"skipped: {step.skipped}"
        _say(f"{iso_in(step.instant, zone)}  {verdict}")
    todo = plan.todo
    _say(f"{len(todo)} of {len(plan.steps)} instants {'would be' if dry_run else 'are'} fired")
    if dry_run or not todo:
        return  # no runner: a dry run needs no token
    results = []
    for done in operations.backfill(app.runner(store, respect_overlap=respect_overlap), plan):
        _say(_outcome_line(done, zone))  # as each settles: a long backfill shows progress
        results.append(done)
    operations.raise_unless_succeeded(results)


# -- status -------------------------------------------------------------------------------------


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@click.pass_obj
def status(app: App, as_json: bool) -> None:
    """Is a daemon alive; each job's next fire and last outcome; retries and uncertain fires."""
    now = app.now()
    store = app.open_store()
    report = build_status(store, app.settings, now)
    if as_json:
        _echo_json(report)
        return
    alive = [d for d in report["daemons"] if d["alive"]]
    if alive:
        for d in alive:
            _say(
                f"daemon {d['id']} alive (last heartbeat {d['last_seen']}, next fire "
                f"{d['next_fire_at'] or '-'})"
            )
    else:
        _say("no daemon is alive (no heartbeat in the store recently)")
    if report["credentials_problem"]:
        _say("CREDENTIALS: the API rejected the token (HTTP 401); fix it, then reload")
    for job in report["jobs"]:
        last = job["last_outcome"]
        _say(
            f"{job['id']:<32} {'enabled' if job['enabled'] else 'paused ':<8} "
            f"next {job['next_fire'] or '-':<26} last "
            f"{(last['status'] + ' ' + (last['scheduled_for'] or '')) if last else '-'}"
        )
        if job["paused_by"] == "breaker":
            _say(f"  {job['pause_reason']}")
        elif job["paused_by"] is not None:
            _say(f"  paused by {job['paused_by']}")
    for key in ("retrying", "uncertain", "held"):
        for fire in report[key]:
            _say(
                f"{key}: {fire['job_id']} {fire['scheduled_for']} attempts={fire['attempts']} "
                f"next={fire['next_attempt_at'] or '-'} {fire['error'] or ''}".rstrip()
            )


# -- doctor -------------------------------------------------------------------------------------


@cli.command()
@click.option(
    "--config-only",
    is_flag=True,
    help="Only the config, the token and the organization, offline (systemd's ExecReload).",
)
@click.pass_obj
def doctor(app: App, config_only: bool) -> None:
    """Check config, token, store, jobs, the API and the templates; say how to fix each problem.

    One line per check on stdout; each problem on its own line on stderr; exit 1 if any.
    """
    checks = diagnose(
        app.config_path, app.db_url, app.now(), clock=app.clock, config_only=config_only
    )
    failed = warned = 0
    for check in checks:
        _say(f"{check.status.value:<4}  {check.name}: {check.summary}")
        for detail in check.details:
            _say(f"      {detail}")
        for line in check.problems:
            _say(f"  {check.name}: {line}", err=True)
        if check.status is CheckStatus.FAILED:
            failed += max(1, len(check.problems))
        elif check.status is CheckStatus.WARNING:
            warned += len(check.problems)
    if failed:
        _say(f"doctor: {failed} problem(s) found", err=True)
        raise SystemExit(1)
    _say(
        f"doctor: no problems; {warned} warning(s)" if warned else "doctor: everything looks right"
    )


# -- alerts -------------------------------------------------------------------------------------


@cli.group()
def alerts() -> None:
    """Test the alert targets; list open incidents."""


@alerts.command("test")
@click.pass_obj
def alerts_test(app: App) -> None:
    """Send one test message to each URL of each target; report each; exit 1 if any failed."""
    from scheduler.alerts.messages import test_message
    from scheduler.alerts.targets import Targets
    from scheduler.alertstate import NotifyType

    targets = Targets.from_settings(app.settings.alerts)
    if not targets:
        raise ConfigError(problem(ALERTS_OFF, key="alerts"))
    failed = 0
    for name in targets.names:
        for index in range(targets.count(name)):
            title, body = test_message(name, index, app.now())
            result = targets.send(name, index, title=title, body=body, notify_type=NotifyType.INFO)
            _say(f"{'sent' if result.ok else 'FAIL'}  {result.label}{_why(result.reason)}")
            failed += not result.ok
    if failed:
        _say(f"alerts test: {failed} URL(s) did not take the message", err=True)
        raise SystemExit(1)


def _why(reason: str) -> str:
    return f": {reason}" if reason else ""


@alerts.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@click.option("--all", "show_all", is_flag=True, help="Cleared incidents too (30 days are kept).")
@click.pass_obj
def alerts_list(app: App, as_json: bool, show_all: bool) -> None:
    """Open incidents, newest first: kind, subject, since when, the jobs affected."""
    found = app.open_store().incidents(open_only=not show_all)
    if as_json:
        _echo_json({"incidents": [incident.to_json() for incident in found]})
        return
    for incident in found:
        jobs = incident.detail.get("jobs") or []
        what = incident.job_id or ", ".join(str(j.get("job")) for j in jobs[:5]) or "-"
        closed = f" cleared {utc_iso(incident.cleared_at)}" if incident.cleared_at else ""
        _say(
            f"{incident.ref}  {incident.kind:<12} {incident.state:<7} since "
            f"{utc_iso(incident.opened_at)}{closed}  {what}"
        )
    if not found:
        _say("(no open incidents)" if not show_all else "(no incidents)", err=True)


# -- run, sandbox, demo -------------------------------------------------------------------------


@cli.command()
@click.option(
    "--log-level",
    default=None,
    help="Overrides [scheduler] log_level (default INFO).",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
)
@click.pass_obj
def run(app: App, log_level: str | None) -> None:
    """The daemon, in the foreground (what systemd starts)."""
    settings = app.load_settings(log_level=log_level)
    token = settings.tallyfy.access_token
    tokens = [token, settings.dashboard.admin, settings.dashboard.read]
    configure_logging(
        settings.scheduler.log_level, secrets=[t.reveal() for t in tokens if t is not None]
    )
    if settings.tallyfy.access_token_warning:  # a warning, not a refusal: the token works
        log.warning("%s", settings.tallyfy.access_token_warning)
    for warning in settings.dashboard.warnings:  # the dashboard's token files, likewise
        log.warning("%s", warning)
    store = app.open_store()
    daemon = Daemon(
        settings,
        store,
        app.client(),
        clock=app.clock,
        reload_settings=lambda: app.load_settings(log_level=log_level),
    )
    code = daemon.run()
    if daemon.unfinished:
        # Workers still blocked after the shutdown grace (a hung request): do not wait for
        # them at interpreter exit. Their claims are committed; the next start settles them.
        exit_now(code)
    if code:
        raise SystemExit(code)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--fixture",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Organization fixture (default: the bundled demo organization).",
)
@click.option("--strict", is_flag=True, help="Also require Accept, X-Tallyfy-Client: APIClient.")
def sandbox(host: str, port: int, fixture: Path | None, strict: bool) -> None:
    """The local Tallyfy-compatible API, for trying jobs without a real organization."""
    # Imported here, not at the top: the sandbox is a test and demo tool, and `run` (the
    # daemon) must not load it (tests/test_package_boundaries.py).
    from tallyfy_sandbox.errors import InvalidInput as SandboxInvalid
    from tallyfy_sandbox.server import serve as serve_sandbox

    try:
        serve_sandbox(host, port, fixture, strict)
    except SandboxInvalid as exc:  # a bad --fixture: exit 1 with one line per problem
        raise InvalidInput(
            [problem(p.message, file=p.file, key=p.key) for p in exc.problems]
        ) from None


@cli.command()
@click.option(
    "--jobs",
    "jobs_dir",
    default=Path("jobs"),
    show_default=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder of example job files.",
)
@click.pass_obj
def demo(app: App, jobs_dir: Path) -> None:
    """A sandbox, the example jobs firing every few seconds, and the daemon, until Ctrl-C."""
    from scheduler.demo import run_demo  # it loads the sandbox: only for this command

    configure_logging("WARNING")
    code = run_demo(jobs_dir, write=_say_lines, clock=app.clock)
    if code:
        raise SystemExit(code)
