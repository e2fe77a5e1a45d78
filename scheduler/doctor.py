"""`doctor`: one check per part of the setup, each problem with how to fix it.

After the template check, `alerts`: where each target's URLs come from (never a URL), how many
each has and the kind of service Apprise sees in each; alerts off (no target) is a warning.
The token check says when the token expires, where the token tells it (`tokenexpiry.py`).

`diagnose(config_path, db_url, now)` checks, in order: the config file (found and valid; where
each setting came from, never its value; a warning for plain http:// to another machine, which
`allow_insecure_http` let through), the token (present; never printed, only where it came
from; a warning when the file holding it can be read by others), the organization id, the
store (reachable, at this schema version), every stored job (valid, with a zone this machine
knows), the API (reachable, token accepted: `GET /me`), and every stored job against its
template (`templatecheck.check_templates`). A check that cannot run because an earlier one
failed is reported as skipped, with what it needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import requests

from scheduler.client import TallyfyClient
from scheduler.clock import Clock
from scheduler.config import UNKNOWN_ZONE, Settings, is_insecure, load_settings, zone_problem
from scheduler.definitions import (
    job_from_document,
)
from scheduler.errors import (
    ApiError,
    AuthenticationFailed,
    ConfigError,
    InvalidInput,
    NotSent,
    SchemaError,
    StoreError,
)
from scheduler.job import Job
from scheduler.store import Store
from scheduler.templatecheck import (
    CREATE_TASK,
    LAUNCH,
    NEW_TOKEN_HELP,
    ORG_HELP,
    TOKEN_HELP,
    Target,
    check_templates,
    listed_names,
)
from scheduler.tokenexpiry import token_expires_at

# -- doctor -------------------------------------------------------------------------------------


class CheckStatus(StrEnum):
    """The outcome of one `doctor` check."""

    OK = "ok"  # the check passed
    WARNING = "warn"  # it passed, but something is risky; each warning says what to do
    FAILED = "FAIL"  # at least one problem; each says how to fix it
    SKIPPED = "skip"  # not run, because a check it needs failed

    @property
    def passed(self) -> bool:
        """Whether checks that need this one can run."""
        return self in (CheckStatus.OK, CheckStatus.WARNING)


@dataclass(frozen=True)
class Check:
    """One line of `doctor`: what was checked, the outcome, and each problem with its fix.

    `problems` are the warnings of a WARNING check; `details` are lines shown under it.
    """

    name: str
    status: CheckStatus
    summary: str
    problems: tuple[str, ...] = ()
    details: tuple[str, ...] = ()


def diagnose(
    config_path: Path | None,
    db_url: str | None,
    now: datetime,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    session: requests.Session | None = None,
    clock: Clock | None = None,
    config_only: bool = False,
) -> list[Check]:
    """`doctor`: config, token, organization, store, stored jobs, API, templates, in order;
    with `config_only`, the first three (offline: what `systemctl reload` checks first).

    Never raises for a problem of the setup; a check that needs a failed one is skipped.
    `session` and `clock` go to the API client (tests); the token is never in any output.
    """
    try:
        settings = load_settings(config_path, environ=environ, cwd=cwd, db_url=db_url)
    except ConfigError as exc:
        failed = Check(
            "config",
            CheckStatus.FAILED,
            "cannot be used",
            tuple(f"{p} (fix the config file or the environment)" for p in exc.problems),
        )
        rest: tuple[str, ...] = (
            "token",
            "organization",
            "store",
            "jobs",
            "api",
            "templates",
            "alerts",
        )
        if config_only:
            rest = rest[:2]
        return [failed, *(Check(n, CheckStatus.SKIPPED, "needs a valid config") for n in rest)]
    return _Doctor(settings, now, session, clock).run(config_only=config_only)


class _Doctor:
    """The checks of `diagnose` after the config loaded; each method returns one Check."""

    def __init__(
        self,
        settings: Settings,
        now: datetime,
        session: requests.Session | None,
        clock: Clock | None,
    ) -> None:
        self.settings = settings
        self.now = now
        self.session = session
        self.clock = clock
        self.store: Store | None = None
        self.client: TallyfyClient | None = None
        self.stored: list[tuple[str, Mapping[str, Any], Job | None, int]] = []

    def run(self, *, config_only: bool = False) -> list[Check]:
        try:
            config = self.config()
            token, org = self.token(), self.organization()
            if config_only:
                return [config, token, org]
            store = self.open_store()
            jobs = self.jobs() if store.status is CheckStatus.OK else _skip("jobs", "the store")
            api = self.api(token, org)
            templates = self.templates(store, api, org)
            return [config, token, org, store, jobs, api, templates, self.alerts()]
        finally:
            if self.client is not None:
                self.client.close()
            if self.store is not None:
                self.store.close()

    def config(self) -> Check:
        path = self.settings.config_file
        if path is None:
            summary = (
                "no config file ($TALLYFY_SCHEDULER_CONFIG, ./config.toml, "
                "/etc/tallyfy-scheduler/config.toml): built-in defaults and the environment"
            )
        else:
            summary = f"{path} (valid)"
        # Never a value: the token and the store URL's password are settings too.
        origins = [f"  {key}: {origin}" for key, origin in self.settings.origins.items()]
        details = ("where each setting came from:", *origins) if origins else ()
        if is_insecure(self.settings.tallyfy):  # loaded, so allow_insecure_http is set
            return Check(
                "config",
                CheckStatus.WARNING,
                summary,
                (
                    f"[tallyfy] base_url {self.settings.tallyfy.base_url!r} is plain http:// to "
                    "a host other than this machine: the access token travels unencrypted "
                    "(allowed by allow_insecure_http = true); use https://",
                ),
                details=details,
            )
        return Check("config", CheckStatus.OK, summary, details=details)

    def token(self) -> Check:
        token = self.settings.tallyfy.access_token
        if token is None or not token.reveal():
            return Check(
                "token", CheckStatus.FAILED, "not set", (f"no access token: {TOKEN_HELP}",)
            )
        source = self.settings.tallyfy.access_token_source or "set"
        warning = self.settings.tallyfy.access_token_warning
        expires = token_expires_at(token.reveal())
        if expires is not None:
            source += f"; expires {expires.strftime('%Y-%m-%dT%H:%M:%SZ')}"
            if expires <= self.now:
                return Check(
                    "token",
                    CheckStatus.FAILED,
                    f"expired ({source})",
                    (f"the access token has expired: {NEW_TOKEN_HELP}",),
                )
            left = expires - self.now
            if left <= self.settings.alerts.token_expiry_warning:
                return Check(
                    "token",
                    CheckStatus.WARNING,
                    f"expires soon ({source})",
                    (
                        f"warning: the access token expires in {left.days} day(s): "
                        f"{NEW_TOKEN_HELP}, then `systemctl reload tallyfy-scheduler`",
                    ),
                )
        if warning:
            return Check("token", CheckStatus.WARNING, f"set ({source})", (f"warning: {warning}",))
        return Check("token", CheckStatus.OK, f"set ({source})")

    def organization(self) -> Check:
        org = self.settings.tallyfy.organization_id
        if not org:
            return Check("organization", CheckStatus.FAILED, "not set", (f"not set: {ORG_HELP}",))
        return Check("organization", CheckStatus.OK, org)

    def open_store(self) -> Check:
        url = self.settings.store.url
        try:
            self.store = Store.open(url, create=False)  # doctor never makes a store
            self.store.check_schema()
            version = self.store.schema_version()
        except SchemaError as exc:
            return Check("store", CheckStatus.FAILED, "not ready", (str(exc),))
        except ConfigError as exc:
            fix = "fix [store] url or TALLYFY_SCHEDULER_DB"
            return Check(
                "store", CheckStatus.FAILED, "bad URL", tuple(f"{p}: {fix}" for p in exc.problems)
            )
        except StoreError as exc:
            return Check(
                "store",
                CheckStatus.FAILED,
                "unreachable",
                (f"{exc}: check [store] url / TALLYFY_SCHEDULER_DB and that the database runs",),
            )
        return Check("store", CheckStatus.OK, f"{self.store.url} (schema version {version})")

    def jobs(self) -> Check:
        assert self.store is not None
        problems: list[str] = []
        bad = 0
        try:
            stored = self.store.list_jobs()
            counts = self.store.success_counts()
        except StoreError as exc:
            return Check("jobs", CheckStatus.FAILED, "cannot be read", (str(exc),))
        for entry in stored:
            zone = entry.definition.get("timezone")
            # A zone this machine lacks gets the fix that applies here; a refused name (such
            # as 'localtime') keeps the validator's own message.
            unknown_zone = isinstance(zone, str) and zone_problem(zone) == UNKNOWN_ZONE
            job: Job | None = None
            try:
                job = job_from_document(entry.definition, self.settings)
            except InvalidInput as exc:
                bad += 1
                for p in exc.problems:
                    if p.key == "timezone" and unknown_zone:
                        continue  # said below, with the fix that applies on this machine
                    problems.append(str(p))
            if unknown_zone:
                problems.append(
                    f"<stored job {entry.id}>: timezone = {zone!r}: this machine does not know "
                    "the zone: install or update tzdata (`pip install -U tzdata`) or change the "
                    "job's timezone"
                )
            action = entry.definition.get("action")
            if isinstance(action, Mapping):
                self.stored.append((entry.id, action, job, counts.get(entry.id, 0) + 1))
        if bad:
            summary = (
                f"{bad} of {len(stored)} stored job(s) cannot be loaded and never fire: fix "
                "their files, then `tallyfy-scheduler jobs apply PATH`"
            )
            return Check("jobs", CheckStatus.FAILED, summary, tuple(problems))
        if not stored:
            return Check("jobs", CheckStatus.OK, "none stored yet (`tallyfy-scheduler jobs apply`)")
        return Check("jobs", CheckStatus.OK, f"{len(stored)} stored, all valid")

    def api(self, token_check: Check, org_check: Check) -> Check:
        if not token_check.status.passed:
            return _skip("api", "a token")
        tallyfy = self.settings.tallyfy
        assert tallyfy.access_token is not None
        base_url = tallyfy.base_url
        try:
            self.client = TallyfyClient(
                base_url,
                tallyfy.organization_id or "-",
                tallyfy.access_token,
                session=self.session,
                timeout=tallyfy.timeout.total_seconds(),
                connect_timeout=tallyfy.connect_timeout.total_seconds(),
                request_deadline=tallyfy.request_deadline.total_seconds(),
                max_response_bytes=tallyfy.max_response_bytes,
                clock=self.clock,
            )
        except ValueError as exc:
            return Check("api", CheckStatus.FAILED, base_url, (f"{exc}: fix [tallyfy] base_url",))
        try:
            me = self.client.me()
        except AuthenticationFailed as exc:
            return Check(
                "api",
                CheckStatus.FAILED,
                f"{base_url} refused the token",
                (
                    f"the API refused the token ({exc}): it is expired, revoked or wrong: "
                    f"{NEW_TOKEN_HELP}",
                ),
            )
        except NotSent as exc:
            return Check(
                "api",
                CheckStatus.FAILED,
                f"{base_url} unreachable",
                (
                    f"cannot connect ({exc}): check [tallyfy] base_url or TALLYFY_BASE_URL, and "
                    "that this machine can reach it",
                ),
            )
        except ApiError as exc:
            return Check(
                "api",
                CheckStatus.FAILED,
                f"{base_url} did not answer as Tallyfy does",
                (
                    f"GET /me failed ({exc}): check [tallyfy] base_url (it ends in /api, e.g. "
                    "https://go.tallyfy.com/api); if it is right, try again later",
                ),
            )
        who = _who(me)
        if org_check.status.passed:
            problem_text = self.organization_problem(tallyfy.organization_id or "")
            if problem_text:
                return Check(
                    "api", CheckStatus.FAILED, f"{base_url}; token of {who}", (problem_text,)
                )
        return Check("api", CheckStatus.OK, f"{base_url} answers; token of {who}")

    def organization_problem(self, org: str) -> str | None:
        """Whether the token's user belongs to `org` (when the API can list their orgs)."""
        assert self.client is not None
        try:
            orgs = self.client.my_organizations()
        except ApiError:
            return None  # not every deployment lists them; the template check finds a bad org
        ids = {str(o.get("id")): o for o in orgs}
        if org in ids:
            return None
        theirs = listed_names(f"{i} ({o.get('name')!r})" for i, o in ids.items())
        return (
            f"organization {org!r} is not one of the token's organizations "
            f"({theirs or 'none'}): {ORG_HELP}"
        )

    def templates(self, store: Check, api: Check, org: Check) -> Check:
        for needed, name in ((store, "the store"), (org, "an organization"), (api, "the API")):
            if not needed.status.passed:
                return _skip("templates", name)
        assert self.client is not None
        if not self.stored:
            return Check("templates", CheckStatus.OK, "no stored jobs to check")
        targets = [
            Target(job_id, action, file=f"<stored job {job_id}>", job=job, seq=seq)
            for job_id, action, job, seq in self.stored
        ]
        known = {t.job_id: t.kind or "" for t in targets}
        problems = check_templates(
            targets,
            self.client,
            now=self.now,
            known_jobs=known,
            latest_runs=self.latest_runs(targets),
        )
        template_ids = {t.action.get("checklist_id") for t in targets if t.kind == LAUNCH}
        summary = f"{len(targets)} job(s) checked against {len(template_ids)} template(s)"
        if problems:
            return Check("templates", CheckStatus.FAILED, summary, tuple(map(str, problems)))
        return Check("templates", CheckStatus.OK, summary + ": all match")

    def latest_runs(self, targets: list[Target]) -> dict[str, str]:
        """The run each launch job that a `run_from_job` names launched last (its state
        decides whether the next task can attach)."""
        assert self.store is not None
        named = {t.action.get("run_from_job") for t in targets if t.kind == CREATE_TASK}
        runs: dict[str, str] = {}
        for target in targets:
            if target.kind == LAUNCH and target.job_id in named:
                launched = self.store.latest_success(target.job_id)
                if launched is not None and launched.remote_id:
                    runs[target.job_id] = launched.remote_id
        return runs

    def alerts(self) -> Check:
        """Where alerts go: each target's source and URL count, never a URL."""
        alerts = self.settings.alerts
        details = ["where each target's URLs come from:"]
        details += [
            f"  {name}: {alerts.url_sources.get(name, 'not set')}" for name in alerts.target_names
        ]
        details.append(f"heartbeat URL: {alerts.heartbeat_source or 'not set'}")
        if not alerts.enabled:
            return Check(
                "alerts",
                CheckStatus.WARNING,
                "off: no target has a URL; nobody hears of a failed fire",
                (f"warning: {ALERTS_HELP}",),
                details=tuple(details),
            )
        from scheduler.alerts.targets import Targets  # loads Apprise: only here

        targets = Targets.from_settings(alerts)
        problems = targets.problems()
        counts = ", ".join(
            f"{name} ({targets.count(name)} URL(s): "
            + ", ".join(targets.service(name, i) for i in range(targets.count(name)))
            + ")"
            for name in targets.names
        )
        if problems:
            return Check("alerts", CheckStatus.FAILED, counts, tuple(problems), tuple(details))
        if alerts.warnings:
            warned = tuple(f"warning: {w}" for w in alerts.warnings)
            return Check("alerts", CheckStatus.WARNING, f"on: {counts}", warned, tuple(details))
        return Check(
            "alerts",
            CheckStatus.OK,
            f"on: {counts} (`tallyfy-scheduler alerts test` sends a test message)",
            details=tuple(details),
        )


ALERTS_HELP = (
    "set TALLYFY_SCHEDULER_ALERT_URLS (Apprise URLs, separated by spaces), "
    "TALLYFY_SCHEDULER_ALERT_URLS_FILE, or the systemd credential 'alert-urls' "
    "(docs/operations.md)"
)


def _skip(name: str, needs: str) -> Check:
    return Check(name, CheckStatus.SKIPPED, f"needs {needs}")


def _who(me: Mapping[str, Any]) -> str:
    name = " ".join(str(me.get(k) or "") for k in ("first_name", "last_name")).strip()
    email = me.get("email")
    parts = [name or None, f"<{email}>" if email else None, f"(user {me.get('id')})"]
    return " ".join(p for p in parts if p)
