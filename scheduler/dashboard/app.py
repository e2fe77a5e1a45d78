"""The dashboard's handlers: pages, JSON and actions, each a function from Request to Response.

Independent of the transport: `Dashboard.routes()` lists (method, path, handler) for any router
with `{name}` segments (the daemon's listener: `scheduler/dashboard/mount.py`), and
`Dashboard.handle` routes by itself for tests and for `serve`.

Safety (docs/dashboard.md):

- every value from a job file, the store or the API goes through Jinja2's autoescape; the
  Content-Security-Policy allows only this origin's own stylesheet and script, no inline code,
  no frames, forms posting only here;
- read-only unless signed in with the admin token; actions are POSTs carrying a CSRF token
  tied to the session cookie (HttpOnly, SameSite=Strict), and a request whose Origin is
  another site is refused;
- with `allow_remote`, every page and JSON route needs the admin or the read token (a session,
  or `Authorization: Bearer` for JSON);
- sessions are HMACs keyed by the token and a key made at start: changing the token or
  restarting the daemon signs everyone out. No token is ever written to a page or the store.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from importlib import resources
from itertools import islice
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from scheduler import operations
from scheduler.clock import Clock, parse_instant, utc_iso
from scheduler.config import Secret, Settings
from scheduler.dashboard import views
from scheduler.errors import JobNotFound, SchedulerError
from scheduler.lifecycle import FireStatus
from scheduler.runner import Runner
from scheduler.status import job_row, zone_of
from scheduler.store import Store
from scheduler.web import HTML, JSON, Handler, Request, Response, Router

SESSION_COOKIE = "tallyfy_scheduler_session"
SESSION_LIFETIME = 12 * 3600  # seconds
CSP = (
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}
PREVIEW_COUNT = 20
API_HISTORY_MAX = 500
DONE = {  # what a finished action says on the page it returns to (fixed words, never input)
    "paused": "Paused: the job fires no more until resumed.",
    "resumed": "Resumed: the job fires from now on.",
    "fired": "Fired now: the outcome is the newest line of the history.",
    "backfilled": "Backfill done: each instant's outcome is in the history.",
}


@dataclass(frozen=True)
class Session:
    role: str  # "admin" or "read"
    cookie: str


class Dashboard:
    """The pages over one store. `runner` makes the Runner that fires (fire now, backfill);
    without it those actions are not offered."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        clock: Clock,
        *,
        allow_remote: bool = False,
        tallyfy_web_url: str = "",
        runner: Callable[[], Runner] | None = None,
        admin_token: Secret | None = None,
        read_token: Secret | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.allow_remote = allow_remote
        self.tallyfy_web_url = tallyfy_web_url
        self.runner = runner
        tokens = settings.dashboard
        self.admin_token = admin_token if admin_token is not None else tokens.admin
        self.read_token = read_token if read_token is not None else tokens.read
        self._key = secrets.token_bytes(32)
        self.catalog = views.Catalog(settings)
        # /upcoming is counted once per minute and jobs revision (it changes no faster).
        self._upcoming: tuple[Any, Any] | None = None
        self._upcoming_lock = threading.Lock()
        self.env = Environment(
            loader=PackageLoader("scheduler.dashboard", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals.update(state_words=views.STATE_WORDS, states=views.STATES)
        self.env.filters["q"] = lambda value: quote(str(value), safe="")
        self._router = Router()
        for method, path, handler in self.routes():
            self._router.add(method, path, handler)

    # -- routing -------------------------------------------------------------------------------
    def routes(self) -> list[tuple[str, str, Handler]]:
        """(method, path, handler) of every route; `{name}` segments go to `Request.params`."""
        return [
            ("GET", "/", self.jobs_page),
            ("GET", "/jobs/{id}", self.job_page),
            ("GET", "/upcoming", self.upcoming_page),
            ("GET", "/incidents", self.incidents_page),
            ("GET", "/signin", self.signin_page),
            ("POST", "/signin", self.signin),
            ("POST", "/signout", self.signout),
            ("POST", "/jobs/{id}/pause", self.pause),
            ("POST", "/jobs/{id}/resume", self.resume),
            ("POST", "/jobs/{id}/fire", self.fire_now),
            ("GET", "/jobs/{id}/backfill", self.backfill_page),
            ("POST", "/jobs/{id}/backfill", self.backfill),
            ("GET", "/api/jobs", self.api_jobs),
            ("GET", "/api/jobs/{id}", self.api_job),
            ("GET", "/api/history", self.api_history),
            ("GET", "/api/upcoming", self.api_upcoming),
            ("GET", "/static/dashboard.css", self.static),
            ("GET", "/static/dashboard.js", self.static),
            ("GET", "/favicon.ico", self.no_icon),
        ]

    def handle(self, request: Request) -> Response:
        """Route `request` (tests, `serve`) through the same `Router` the listener uses."""
        return self._router.handle(request)

    # -- sessions and tokens -------------------------------------------------------------------
    def _mac(self, token: Secret, text: str) -> str:
        key = hmac.new(self._key, token.reveal().encode(), hashlib.sha256).digest()
        return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()

    def _token_of(self, role: str) -> Secret | None:
        return self.admin_token if role == "admin" else self.read_token

    def session(self, request: Request) -> Session | None:
        """The signed-in session of `request`, if its cookie is valid and not expired."""
        cookie = request.cookie(SESSION_COOKIE)
        if not cookie or cookie.count(".") != 3:
            return None
        role, expires, nonce, mac = cookie.split(".")
        token = self._token_of(role)
        if token is None or not expires.isdigit() or int(expires) < time.time():
            return None
        if not hmac.compare_digest(mac, self._mac(token, f"{role}.{expires}.{nonce}")):
            return None
        return Session(role, cookie)

    def _bearer_role(self, request: Request) -> str | None:
        header = request.header("Authorization") or ""
        if not header.startswith("Bearer "):
            return None
        given = header[len("Bearer ") :].strip().encode()
        for role in ("admin", "read"):
            token = self._token_of(role)
            if token is not None and hmac.compare_digest(given, token.reveal().encode()):
                return role
        return None

    def csrf_token(self, session: Session) -> str:
        token = self._token_of(session.role)
        assert token is not None
        return self._mac(token, "csrf." + session.cookie)[:40]

    def _may_read(self, request: Request) -> bool:
        if not self.allow_remote:
            return True  # the listener binds to loopback only (docs/dashboard.md)
        return self.session(request) is not None or self._bearer_role(request) is not None

    def _admin_check(self, request: Request) -> Response | Session:
        """The admin session of a POST with a valid CSRF token from this origin, or the
        refusal."""
        session = self.session(request)
        if session is None or session.role != "admin":
            return self._error(request, HTTPStatus.FORBIDDEN, "Sign in with the admin token.")
        origin = request.header("Origin")
        host = request.header("Host")
        if origin and origin != "null" and host and origin.split("://", 1)[-1] != host:
            return self._error(
                request, HTTPStatus.FORBIDDEN, "Refused: the form came from another site."
            )
        sent = request.form().get("csrf", "")
        if not hmac.compare_digest(sent.encode(), self.csrf_token(session).encode()):
            return self._error(
                request, HTTPStatus.FORBIDDEN, "Refused: the form has expired; reload the page."
            )
        return session

    # -- rendering -----------------------------------------------------------------------------
    def _page(self, request: Request, template: str, status: int = 200, **context: Any) -> Response:
        now = self.clock.now()
        session = self.session(request)
        html = self.env.get_template(template).render(
            now=now,
            ago=lambda instant: _ago(instant, now),
            when=_when,
            utc=lambda instant: None if instant is None else utc_iso(instant),
            alarms=views.alarms(self.store),
            session=session,
            csrf=self.csrf_token(session) if session else "",
            admin_configured=self.admin_token is not None,
            path=request.path,
            done=DONE.get(request.arg("done"), ""),
            **context,
        )
        return Response(status, html.encode("utf-8"), HTML, SECURITY_HEADERS)

    def _error(self, request: Request, status: int, message: str) -> Response:
        if request.path.startswith("/api/"):
            return _json({"error": message}, status)
        return self._page(request, "error.html", status, message=message)

    def _signin_first(self, request: Request) -> Response:
        if request.path.startswith("/api/"):
            return _json({"error": "send Authorization: Bearer with the admin or read token"}, 401)
        target = request.path + (
            "?" + urlencode(request.query, doseq=True) if request.query else ""
        )
        return Response.redirect("/signin?" + urlencode({"next": target}))

    # -- pages ---------------------------------------------------------------------------------
    def jobs_page(self, request: Request) -> Response:
        if not self._may_read(request):
            return self._signin_first(request)
        state = request.arg("state")
        state = state if state in views.STATES else ""
        text = request.arg("q").strip()[:200]
        page = views.job_rows(
            self.store,
            self.catalog,
            self.clock.now(),
            state=state,
            text=text,
            page=_int(request.arg("page"), 1),
        )
        links = _page_links(request, page)
        return self._page(request, "jobs.html", page=page, state=state, text=text, links=links)

    def job_page(self, request: Request) -> Response:
        if not self._may_read(request):
            return self._signin_first(request)
        job_id = request.params["id"]
        try:
            stored = self.store.get_job(job_id)
        except JobNotFound:
            return self._error(request, HTTPStatus.NOT_FOUND, f"No job with id {job_id!r}.")
        now = self.clock.now()
        view = self.catalog.view(stored, self.store.job_marks([job_id]).get(job_id))
        fires_so_far = self.store.success_count(job_id)
        next_fire = views.next_fire_of(view, now, fires_so_far)
        history = views.history_page(self.store, job_id, _int(request.arg("page"), 1))
        upcoming = self._previews(view, now) if stored.enabled else []
        return self._page(
            request,
            "job.html",
            view=view,
            stored=stored,
            state=views.state_of(view, next_fire),
            pause_reason=views.pause_reason(view),
            next_fire=next_fire,
            words=views.words_of(view),
            definition=json.dumps(stored.definition, indent=2, ensure_ascii=False),
            upcoming=upcoming,
            history=history,
            links=_page_links(request, history),
            remote_link=self._remote_link,
            can_fire=self.runner is not None,
        )

    def _previews(self, view: views.JobView, now: datetime) -> list[dict[str, Any]]:
        """The next instants, each with the exact request `preview` shows (or why not)."""
        job = view.job
        if job is None:
            return []
        shown = []
        for instant in islice(job.fires_after(now), PREVIEW_COUNT):
            try:
                p = operations.preview(self.store, self.settings, job.id, now=now, at=instant)
                if p.request is None:  # on one of the job's skip days
                    request_text = f"(skipped: {p.skipped}; nothing is sent)"
                else:
                    request_text = f"{p.request.method} {p.url}\n" + json.dumps(
                        p.request.body, indent=2, ensure_ascii=False
                    )
                    if p.waiting is not None:
                        request_text = f"({p.waiting}: when fired, it waits for it)\n" + (
                            request_text
                        )
            except SchedulerError as exc:
                request_text = f"(no request: {exc})"
            shown.append({"instant": instant, "request": request_text})
        return shown

    def _remote_link(self, remote_id: str | None) -> str | None:
        if not remote_id or not self.tallyfy_web_url:
            return None
        return self.tallyfy_web_url.replace("{remote_id}", quote(remote_id, safe="")).replace(
            "{organization_id}", quote(self.settings.tallyfy.organization_id or "", safe="")
        )

    def upcoming_page(self, request: Request) -> Response:
        if not self._may_read(request):
            return self._signin_first(request)
        minutes, hours = self._upcoming_buckets(self.clock.now())
        per_minute = self.settings.tallyfy.max_requests_per_minute
        busiest = max((b.total for b in [*minutes, *hours]), default=0)
        return self._page(
            request,
            "upcoming.html",
            crowded=sorted(minutes, key=lambda b: (-b.total, b.start))[:10],
            minutes=minutes[:300],
            more_minutes=max(0, len(minutes) - 300),
            hours=hours,
            per_minute=per_minute,
            drain=lambda n: _duration(views.drain_seconds(n, per_minute)),
            busiest=busiest or 1,
        )

    def _upcoming_buckets(self, now: datetime) -> tuple[list[views.Bucket], list[views.Bucket]]:
        key = (self.store.jobs_revision(), now.replace(second=0, microsecond=0))
        with self._upcoming_lock:
            if self._upcoming is not None and self._upcoming[0] == key:
                return self._upcoming[1]  # type: ignore[no-any-return]
        found = views.upcoming(self.store, self.catalog, now)
        with self._upcoming_lock:
            self._upcoming = (key, found)
        return found

    def incidents_page(self, request: Request) -> Response:
        if not self._may_read(request):
            return self._signin_first(request)
        dead_before = self.clock.now() - self.settings.scheduler.dead_after
        daemons = [
            {
                "id": d.id,
                "hostname": d.hostname,
                "pid": d.pid,
                "state": d.state,
                "alive": d.state != "stopped" and d.last_seen >= dead_before,
                "started_at": d.started_at,
                "last_seen": d.last_seen,
            }
            for d in self.store.daemons()
        ]
        return self._page(
            request,
            "incidents.html",
            incidents=self.store.incidents(open_only=False, limit=100),
            daemons=daemons,
            uncertain=self.store.history(status="uncertain", limit=100),
            retrying=self.store.history(status="retrying", limit=100),
            held=self.store.history(status="held", limit=100),
        )

    def signin_page(self, request: Request) -> Response:
        return self._page(request, "signin.html", next=_local(request.arg("next")), message="")

    def signin(self, request: Request) -> Response:
        form = request.form()
        given = form.get("token", "").strip().encode()
        target = _local(form.get("next", ""))
        for role in ("admin", "read"):
            token = self._token_of(role)
            if token is not None and given and hmac.compare_digest(given, token.reveal().encode()):
                expires = int(time.time()) + SESSION_LIFETIME
                body = f"{role}.{expires}.{secrets.token_hex(8)}"
                cookie = f"{body}.{self._mac(token, body)}"
                header = (
                    f"{SESSION_COOKIE}={cookie}; HttpOnly; SameSite=Strict; Path=/; "
                    f"Max-Age={SESSION_LIFETIME}"
                )
                return Response.redirect(target, {"Set-Cookie": header, **SECURITY_HEADERS})
        return self._page(
            request,
            "signin.html",
            HTTPStatus.UNAUTHORIZED,
            next=target,
            message="That token is not the admin or read token.",
        )

    def signout(self, request: Request) -> Response:
        header = f"{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"
        return Response.redirect("/", {"Set-Cookie": header})

    # -- actions -------------------------------------------------------------------------------
    def _job_or_error(self, request: Request) -> tuple[str, Response | None]:
        job_id = request.params["id"]
        try:
            self.store.get_job(job_id)
        except JobNotFound:
            return job_id, self._error(request, HTTPStatus.NOT_FOUND, f"No job with id {job_id!r}.")
        return job_id, None

    def _back(self, job_id: str, done: str) -> Response:
        return Response.redirect(f"/jobs/{quote(job_id, safe='')}?done={done}")

    def pause(self, request: Request) -> Response:
        return self._set_enabled(request, False)

    def resume(self, request: Request) -> Response:
        return self._set_enabled(request, True)

    def _set_enabled(self, request: Request, enabled: bool) -> Response:
        checked = self._admin_check(request)
        if isinstance(checked, Response):
            return checked
        job_id, missing = self._job_or_error(request)
        if missing:
            return missing
        # As `jobs pause` / `jobs resume` do: the store records it (resume: from now on).
        self.store.set_enabled(job_id, enabled, now=self.clock.now())
        return self._back(job_id, "resumed" if enabled else "paused")

    def fire_now(self, request: Request) -> Response:
        checked = self._admin_check(request)
        if isinstance(checked, Response):
            return checked
        job_id, missing = self._job_or_error(request)
        if missing:
            return missing
        if self.runner is None:
            return self._error(request, HTTPStatus.CONFLICT, "Firing needs the daemon's runner.")
        try:
            job = operations.load_job(self.store, self.settings, job_id)
            operations.fire_job(self.runner(), job, now=self.clock.now())
        except SchedulerError as exc:
            return self._error(request, HTTPStatus.CONFLICT, f"Not fired: {exc}")
        return self._back(job_id, "fired")

    def _backfill_plan(self, request: Request, values: dict[str, str]) -> Any:
        job_id = request.params["id"]
        start, end = parse_instant(values["from"]), parse_instant(values["to"])
        span = operations.backfill_range(start, end, now=self.clock.now())
        return span, operations.backfill_plan(self.store, self.settings, job_id, span)

    def backfill_page(self, request: Request) -> Response:
        """The form, and with `from` and `to` the dry run: what would be fired, nothing sent."""
        if not self._may_read(request):
            return self._signin_first(request)
        job_id, missing = self._job_or_error(request)
        if missing:
            return missing
        values = {"from": request.arg("from"), "to": request.arg("to")}
        plan = span = None
        message = ""
        if values["from"] and values["to"]:
            try:
                span, plan = self._backfill_plan(request, values)
            except (SchedulerError, ValueError) as exc:
                message = str(exc)
        return self._page(
            request,
            "backfill.html",
            job_id=job_id,
            values=values,
            plan=plan,
            span=span,
            message=message,
            zone=zone_of(self.store.get_job(job_id).definition),
            can_fire=self.runner is not None,
        )

    def backfill(self, request: Request) -> Response:
        checked = self._admin_check(request)
        if isinstance(checked, Response):
            return checked
        job_id, missing = self._job_or_error(request)
        if missing:
            return missing
        if self.runner is None:
            return self._error(request, HTTPStatus.CONFLICT, "Backfill needs the daemon's runner.")
        form = request.form()
        try:
            _span, plan = self._backfill_plan(
                request, {"from": form.get("from", ""), "to": form.get("to", "")}
            )
            for _done in operations.backfill(self.runner(), plan):
                pass  # each outcome is recorded in the history as it settles
        except (SchedulerError, ValueError) as exc:
            return self._error(request, HTTPStatus.CONFLICT, f"Not backfilled: {exc}")
        return self._back(job_id, "backfilled")

    # -- JSON ----------------------------------------------------------------------------------
    def api_jobs(self, request: Request) -> Response:
        """`jobs list --json` (`{"jobs": [...]}`), a page at a time, with `state`."""
        if not self._may_read(request):
            return self._signin_first(request)
        state = request.arg("state")
        page = views.job_rows(
            self.store,
            self.catalog,
            self.clock.now(),
            state=state if state in views.STATES else "",
            text=request.arg("q"),
            page=_int(request.arg("page"), 1),
        )
        return _json(
            {
                "jobs": [views.row_json(row) for row in page.items],
                "page": page.number,
                "pages": page.pages,
                "total": page.total,
            }
        )

    def api_job(self, request: Request) -> Response:
        """`jobs show --json`: `{"job": {...}, "history": [...]}` (history a page at a time)."""
        if not self._may_read(request):
            return self._signin_first(request)
        job_id = request.params["id"]
        try:
            stored = self.store.get_job(job_id)
        except JobNotFound:
            return _json({"error": f"no job with id {job_id!r}"}, 404)
        now = self.clock.now()
        zone = zone_of(stored.definition)
        mark = self.store.job_marks([job_id]).get(job_id)
        view = self.catalog.view(stored, mark)
        summary = job_row(stored, self.settings, now, self.store.success_count(job_id), mark=mark)
        history = views.history_page(self.store, job_id, _int(request.arg("page"), 1))
        next_fire = views.next_fire_of(view, now, self.store.success_count(job_id))
        data = {
            "job": {
                **summary,
                "source": stored.source,
                "active_since": views.iso(stored.active_since, zone),
                "created_at": views.iso(stored.created_at, zone),
                "updated_at": views.iso(stored.updated_at, zone),
                "definition": stored.definition,
                "state": views.state_of(view, next_fire),
            },
            "history": [fire.to_json(zone) for fire in history.items],
            "page": history.number,
            "pages": history.pages,
            "total": history.total,
        }
        return _json(data)

    def api_history(self, request: Request) -> Response:
        """`history --json` (`{"fires": [...]}`): `job`, `status`, `limit`, `page`."""
        if not self._may_read(request):
            return self._signin_first(request)
        job_id = request.arg("job") or None
        status = request.arg("status") or None
        if status is not None and status not in set(FireStatus):
            return _json({"error": f"unknown status {status!r}"}, 400)
        limit = min(max(1, _int(request.arg("limit"), 50)), API_HISTORY_MAX)
        page = max(1, _int(request.arg("page"), 1))
        fires = self.store.history(job_id, status=status, limit=limit, offset=(page - 1) * limit)
        zones: dict[str, ZoneInfo] = {}
        for fire in fires:
            if fire.job_id not in zones:
                try:
                    zones[fire.job_id] = zone_of(self.store.get_job(fire.job_id).definition)
                except JobNotFound:
                    zones[fire.job_id] = ZoneInfo("UTC")
        return _json({"fires": [f.to_json(zones[f.job_id]) for f in fires], "page": page})

    def api_upcoming(self, request: Request) -> Response:
        """Minute buckets of the next 24 hours, hour buckets of the next 7 days."""
        if not self._may_read(request):
            return self._signin_first(request)
        now = self.clock.now()
        minutes, hours = self._upcoming_buckets(now)
        per_minute = self.settings.tallyfy.max_requests_per_minute

        def bucket(b: views.Bucket) -> dict[str, Any]:
            return {
                "start": utc_iso(b.start),
                "fires": b.total,
                "per_job": b.per_job,
                "drain_seconds": views.drain_seconds(b.total, per_minute),
            }

        return _json(
            {
                "now": utc_iso(now),
                "max_requests_per_minute": per_minute,
                "minutes": [bucket(b) for b in minutes],
                "hours": [bucket(b) for b in hours],
            }
        )

    def no_icon(self, _request: Request) -> Response:
        """Browsers ask for it on every page; there is none (and no 404 in their console)."""
        return Response(HTTPStatus.NO_CONTENT)

    def static(self, request: Request) -> Response:
        name = request.path.rsplit("/", 1)[-1]
        body = resources.files("scheduler.dashboard").joinpath("static", name).read_bytes()
        kind = (
            "text/css; charset=utf-8" if name.endswith(".css") else "text/javascript; charset=utf-8"
        )
        return Response(
            200, body, kind, {"Cache-Control": "max-age=300", "X-Content-Type-Options": "nosniff"}
        )


def _json(data: Any, status: int = 200) -> Response:
    body = json.dumps(data, ensure_ascii=False).encode("utf-8")
    return Response(
        status, body, JSON, {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
    )


def _int(text: str, default: int) -> int:
    return int(text) if text.isdigit() and len(text) < 9 else default


def _local(target: str) -> str:
    """A path on this site to return to after sign-in (never another site's URL)."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def _page_links(request: Request, page: views.Page) -> dict[str, str | None]:
    def link(number: int) -> str:
        query = {k: v[0] for k, v in request.query.items() if k not in ("page", "done")}
        query["page"] = str(number)
        return "?" + urlencode(query)

    return {
        "previous": link(page.number - 1) if page.number > 1 else None,
        "next": link(page.number + 1) if page.number < page.pages else None,
    }


def _when(instant: datetime | None, zone: ZoneInfo | None = None) -> str:
    """`2026-12-07 09:00:00 GMT` in `zone` (default UTC): always with the zone."""
    if instant is None:
        return "-"
    local = instant.astimezone(zone or ZoneInfo("UTC"))
    return local.strftime("%Y-%m-%d %H:%M:%S ") + (local.tzname() or local.strftime("%z"))


def _ago(instant: datetime | None, now: datetime) -> str:
    """ "3 min ago", "in 2 h": relative to `now`."""
    if instant is None:
        return "-"
    seconds = (now - instant).total_seconds()
    text = _duration(abs(seconds))
    return f"{text} ago" if seconds >= 0 else f"in {text}"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{int(seconds)} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 86400 * 2:
        return f"{seconds / 3600:.1f} h".replace(".0 h", " h")
    return f"{int(seconds // 86400)} days"


__all__ = ["Dashboard", "Session"]
