"""The daemon's lifecycle and main loop (`tallyfy-scheduler run`).

Who owns what (docs/design.md, "The daemon" draws it):

- the **main thread** runs `run`: `prepare` (load the jobs, plan the startup catch-up),
  `start` (threads, READY=1), then the loop, one `tick` per pass: detect stalls, reload jobs,
  find open fires to carry forward (`Recovery`), heartbeat, watchdog; it owns the loader's and
  the loop's bookkeeping. Signal handlers only set events.
- the **planner thread** owns every loaded job's state (`Planner`): it plans, records skips,
  claims, and hands claimed fires to the send pool. Everyone else posts it messages.
- **APScheduler's thread** (`Timer`) only wakes the planner when the next fire time comes.
- the **send workers** (`SendPool`, `Sender`) send and read back fires through the `Runner`,
  one request per job at a time; fresh fires are started in groups and their outcomes
  written in batches.
- the **HTTP listener** (`[http] listen`; `Listener`, a thread per request) answers
  `/metrics`, `/healthz` and `/readyz` from what the others publish or count
  (`daemon/metrics.py`); it reads no other thread's private state.

Shutdown (SIGTERM/SIGINT): claim nothing new, let requests in flight finish (up to
`shutdown_grace`), record their outcomes, exit 0. Queued fires are not sent (they stay
`pending`, claimed: the next start sends them), nor is one still waiting for a rate-limit
slot. Workers still busy after the grace are abandoned (`unfinished` > 0: the caller exits at
once rather than wait for them); a second signal exits at once too. Every claim is committed
already, so the next start settles whatever was interrupted.

Tests build the daemon with `threaded=False`: no thread is started, every message is handled
and every fire sent on the caller's thread before the call returns, and the tests play the
timer's part with `wake()` and the loop's with `tick()`.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import sys
import threading
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from types import FrameType

from scheduler import transport
from scheduler.alerts import Alerts
from scheduler.alertstate import IncidentKind
from scheduler.client import TallyfyClient
from scheduler.clock import Clock, SystemClock, utc_iso
from scheduler.config import Settings, is_loopback
from scheduler.daemon import pages
from scheduler.daemon.listener import Listener
from scheduler.daemon.loader import JobLoader
from scheduler.daemon.metrics import ASK_TIMEOUT, CONTENT_TYPE, Metrics, Sources
from scheduler.daemon.planner import Carry, CatchUp, Due, Planner, Pulse, Resume, Stranded
from scheduler.daemon.pruner import Pruner
from scheduler.daemon.recovery import Recovery
from scheduler.daemon.reload import merge
from scheduler.daemon.sending import Sender, group_size
from scheduler.daemon.sendpool import SendPool
from scheduler.daemon.timer import Timer
from scheduler.dashboard import Dashboard
from scheduler.errors import ConfigError, SchedulerError, StoreError, problem
from scheduler.notify import Notifier
from scheduler.runner import CREDENTIAL_STATUSES, FIRST_RECONCILE_DELAY, Observer, Runner
from scheduler.store import Store
from scheduler.timeexpr import BusinessCalendar
from scheduler.web import Request, Response, Router

log = logging.getLogger(__name__)

# A pass of the loop that took this much longer than asked (or a wall-clock jump of this much)
# means the process stalled (suspend, SIGSTOP, a clock step): plan catch-up. Also how late a
# fire may come due and still count as live (docs/guarantees.md, "Catch-up").
DEFAULT_STALL_THRESHOLD = timedelta(seconds=5)
# The loop never sleeps longer than this, so stalls and reloads are noticed promptly.
MAX_TICK = 1.0
# The least wait after a pass that found a retry due: the fire was handed on (or is still
# being carried: its row changes only once it is sent or put off), and asking the store again
# at once would spin while it waits for its rate-limit slot or a look-up.
DUE_RETRY_POLL = 0.25
# A request still running this long after its deadline (its socket shut, it should have
# returned) is stuck where no timeout reaches: the daemon is not healthy then.
REQUEST_OVERDUE = timedelta(seconds=15)
# A main loop whose last pass began this long ago is stuck (a pass takes a second or two at
# most, a reload of 100,000 jobs a few): the daemon is not healthy then (`/healthz`).
LOOP_OVERDUE = timedelta(seconds=30)
# How long `/readyz` trusts the store's last answer (seconds): probes do not hammer it.
STORE_CHECK_TTL = 1.0


def new_daemon_id() -> str:
    """host:pid:random, unique among the daemons sharing a store."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def exit_now(code: int) -> None:
    """Leave the process at once, logs flushed, without waiting for worker threads.

    For after `Daemon.run` when `unfinished` > 0: the interpreter would otherwise join the
    blocked workers at exit, past any stop timeout. Every claim is committed already.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


class Daemon:
    """The long-running scheduler process: fires every instant of every enabled job once.

    Given the settings, the store and an API client, it builds its own runner (owning the
    fires it claims under `daemon_id`), planner, send pool and timer. `observer` is told of
    each settled fire (the demo prints them). `reload_settings` loads the settings again on
    SIGHUP (config file, token; raising SchedulerError when they do not load): what may
    change live changes (`reload.LIVE`), the rest waits for a restart and is logged as such.

    `metrics` counts what it does (the client's requests too: it adds a request hook to
    `client`); `router` holds the routes of the HTTP listener, which `listen` opens when
    `[http] listen` is set (`run` does, first).
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        client: TallyfyClient,
        *,
        clock: Clock | None = None,
        notifier: Notifier | None = None,
        daemon_id: str | None = None,
        stall_threshold: timedelta = DEFAULT_STALL_THRESHOLD,
        reload_settings: Callable[[], Settings] | None = None,
        observer: Observer | None = None,
        threaded: bool = True,
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock: Clock = clock or SystemClock()
        self.notifier = notifier or Notifier()
        self.daemon_id = daemon_id or new_daemon_id()
        self.reload_settings = reload_settings
        self.stop_event = threading.Event()  # set by SIGTERM/SIGINT: claim and send nothing new
        self.reload_event = threading.Event()  # set by SIGHUP
        self.wake_event = threading.Event()  # wakes the main loop early
        self.unfinished = 0  # workers still busy when shutdown gave up waiting
        self.exit_code = 0  # 1 once the daemon stops because it cannot go on (its store went)
        self.metrics = Metrics(
            Sources(
                job_times=lambda: self.planner.job_times(ASK_TIMEOUT),
                paused=lambda: self.loader.paused,
                job_count=lambda: self.planner.job_count,
                ready=lambda: self.not_ready_reason() is None,
                open_fires=store.open_counts,
                last_successes=store.last_successes,
                open_incidents=self._open_incidents,
            ),
            max_job_series=settings.http.max_job_series,
            monotonic=self.clock.monotonic,
        )
        client.add_request_hook(self.metrics.api_request)
        self.router = Router()
        self.router.get("/metrics", self._serve_metrics)
        self.router.get("/healthz", self._serve_health)
        self.router.get("/readyz", self._serve_readiness)
        self.listener: Listener | None = None
        # The dashboard (docs/dashboard.md) on the same listener; fire now and backfill go
        # through this daemon's own runner (made just below), as its scheduled fires do.
        self.dashboard = Dashboard(
            store,
            settings,
            self.clock,
            allow_remote=settings.http.allow_remote,
            tallyfy_web_url=settings.http.tallyfy_web_url,
            runner=lambda: self.runner,
        )
        pages.mount(self.router, self.dashboard)
        self.runner = Runner(
            store,
            client,
            organization_id=client.organization_id,
            calendar=BusinessCalendar.from_settings(settings.calendar),
            retry=settings.retry,
            clock=self.clock,
            daemon_id=self.daemon_id,
            observer=observer,
            stop=self.stop_event,
            events=self.metrics,
        )
        self.timer = Timer(self.wake)
        self.sender = Sender(self.runner, on_stranded=self._stranded)
        self.pool: SendPool[Carry] = SendPool(
            self.sender,
            workers=settings.scheduler.max_concurrent_fires if threaded else 0,
            group_size=group_size(settings.tallyfy.max_requests_per_minute),
            groupable=Sender.groupable,
        )
        self.planner = Planner(
            settings,
            store,
            clock=self.clock,
            daemon_id=self.daemon_id,
            stall_threshold=stall_threshold,
            send=self._send,
            wake_at=self.timer.wake_at,
            stop=self.stop_event,
            skipped=self.metrics.skipped,
        )
        # Alerts (scheduler/alerts): threads of their own; the loop hands them heartbeats.
        self.alerts = Alerts(
            settings,
            store,
            clock=self.clock,
            daemon_id=self.daemon_id,
            settings_of=lambda: self.settings,
            threaded=threaded,
            on_sent=self.metrics.alert_sent,
        )
        # History retention: a thread of its own, short transactions, one daemon at a time.
        self.pruner = Pruner(
            store,
            clock=self.clock,
            daemon_id=self.daemon_id,
            settings_of=lambda: self.settings,
            threaded=threaded,
        )
        self.loader = JobLoader(store, settings, on_quarantined=self.alerts.note_quarantined)
        self.recovery = Recovery(
            store,
            daemon_id=self.daemon_id,
            dead_after=settings.scheduler.dead_after,
            in_flight=settings.tallyfy.request_deadline + FIRST_RECONCILE_DELAY,
        )
        self._threaded = threaded
        self._planner_thread: threading.Thread | None = None
        # The main loop's own bookkeeping (main thread only).
        self.stall_threshold = stall_threshold
        self._started_at = self.clock.now()
        self._last_wall = self._started_at
        self._last_mono = self.clock.monotonic()
        self._last_heartbeat = -1e18
        self._last_watchdog = -1e18
        self._last_reload_poll = -1e18
        self._signals_seen = 0
        # The SQLite file's identity (device, inode) when the daemon started: a file deleted
        # or replaced under it would take every later fire with it (docs/design.md).
        self._store_file = store.file_path
        self._store_identity: tuple[int, int] | None = None
        # Published for the listener's threads (each replaced whole): the startup catch-up is
        # planned; when the loop's last pass began (the clock's monotonic time); the store's
        # last answer to `/readyz` (monotonic time, and why it failed or None).
        self._planned = False
        self._last_pass: float | None = None
        self._store_answer: tuple[float, str | None] = (-1e18, None)

    # -- lifecycle ------------------------------------------------------------------------------
    def run(self) -> int:
        """Listen (ConfigError if the address cannot be bound: nothing else has started),
        start, loop until asked to stop, shut down; the process exit code."""
        self.install_signal_handlers()
        self.listen()
        try:
            self.start()
            while not self.stop_event.is_set():
                timeout = self.tick()
                self.wake_event.clear()
                if self.stop_event.is_set():
                    break
                self.clock.wait(self.wake_event, timeout)
        finally:
            self.shutdown()
        return self.exit_code

    def prepare(self) -> None:
        """Check the store, load every job and plan the startup catch-up, on this thread.

        1. check the store's schema; register a heartbeat;
        2. load the jobs (a stored job that no longer validates is quarantined: logged, never
           deleted) and plan each from its cursor to now (policy, window, skip ranges): skips
           recorded and missed instants claimed before this returns;
        3. find open fires left by daemons that died (`pending` is sent, `sending`/`uncertain`
           read back first) and retries due;
        4. start the send workers: sending starts once everything is planned, since senders
           and planning would otherwise fight over the GIL and SQLite's write lock.
        """
        self.listen()  # `/readyz` says "not ready" while this runs
        self.store.check_schema()
        self.alerts.prepare()
        self._store_identity = self._file_identity()
        now = self.clock.now()
        self._started_at = now
        self._heartbeat(now, state="starting")
        self.planner.post(CatchUp(now))  # instants from now on are live
        # Loading makes ~10 long-lived objects per job; full collections walking them again
        # and again cost seconds at 100,000 jobs. So no collection runs while loading, and
        # what loading made (the jobs) is frozen before collections resume: later ones skip
        # it. Loading leaves almost no cyclic garbage, so no collection first either.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            for load in self.loader.changes(plan=True):
                if self.stop_event.is_set():
                    break  # not planned: the next start plans it
                self.planner.post(load)
            gc.freeze()
        finally:
            if gc_was_enabled:
                gc.enable()
        self._resume_open_fires(now, self.clock.monotonic(), startup=True)
        # Planning may have taken a while; that is not a stall.
        self._last_wall, self._last_mono = self.clock.now(), self.clock.monotonic()
        self.pool.start()
        self._planned = True

    def start(self) -> None:
        """`prepare`, then the timer and the planner thread; tell systemd READY=1."""
        self.prepare()
        if self._threaded:  # without threads, the caller plays the timer (`wake`)
            self.timer.start()
            self._planner_thread = self.planner.start_thread()
        self.alerts.start()
        self.pruner.start()
        self._heartbeat(self.clock.now(), state="running")
        self.notifier.ready(self.status_line())
        log.info("daemon started id=%s jobs=%d", self.daemon_id, self.planner.job_count)

    def shutdown(self) -> None:
        """Claim nothing new; let in-flight requests finish (bounded); record; stop."""
        self.stop_event.set()  # wakes fires waiting for a rate-limit slot: they are not sent
        self.notifier.stopping()
        log.info("daemon stopping id=%s", self.daemon_id)
        grace = self.settings.scheduler.shutdown_grace.total_seconds()
        deadline = self.clock.monotonic() + grace
        self.timer.shutdown()
        self.planner.close()
        if self._planner_thread is not None:
            self._planner_thread.join(grace)
        self.unfinished = self.pool.stop(max(0.0, deadline - self.clock.monotonic()))
        if self._planner_thread is not None and self._planner_thread.is_alive():
            self.unfinished += 1
        self.alerts.stop()
        self.pruner.stop()
        if self.unfinished:
            log.warning(
                "%d fires still in flight after %s; their claims settle at the next start",
                self.unfinished,
                self.settings.scheduler.shutdown_grace,
            )
        try:
            self._heartbeat(self.clock.now(), state="stopped")
        except StoreError as exc:
            log.warning("could not record the stop: %s", exc)
        self.notifier.close()
        if self.listener is not None:
            self.listener.close()
        log.info("daemon stopped id=%s", self.daemon_id)

    # -- the loop -------------------------------------------------------------------------------
    def tick(self) -> float:
        """One pass of the loop; returns the seconds until the next pass is needed.

        A failing store (locked, restarting) costs this pass, never the daemon: each step
        logs and the next pass tries again.
        """
        now = self.clock.now()
        mono = self.clock.monotonic()
        self._last_pass = mono
        if not self._store_file_intact():
            return 0.0
        self.detect_stall(now, mono)
        try:
            if self.reload_event.is_set():
                self.reload_event.clear()
                self.notifier.reloading()
                self._reload_settings()
                self._reload(force=True)
                self.notifier.ready(self.status_line())
            elif (
                mono - self._last_reload_poll
                >= self.settings.scheduler.reload_interval.total_seconds()
            ):
                self._last_reload_poll = mono
                self._reload()
        except StoreError as exc:
            log.error("store unavailable while reloading jobs: %s", exc)
        wait = self._resume_open_fires(now, mono)
        if self.planner.wants_pulse:
            self.planner.post(Pulse())
        self.sender.flush()  # outcomes a busy pool has not written yet
        if (
            mono - self._last_heartbeat
            >= self.settings.scheduler.heartbeat_interval.total_seconds()
        ):
            self._last_heartbeat = mono
            try:
                self._heartbeat(now, state="running")
            except StoreError as exc:
                log.error("store unavailable for the heartbeat: %s", exc)
            self.notifier.status(self.status_line())
        interval = self.notifier.watchdog_interval
        if interval is not None and mono - self._last_watchdog >= interval and self.healthy():
            self._last_watchdog = mono
            self.notifier.watchdog()
        self.alerts.pulse(mono, self.healthy)
        return max(0.0, wait)

    def wake(self) -> None:
        """Plan and claim every fire whose time has come (what the timer calls; tests call
        it to play the timer's part)."""
        self.planner.post(Due())

    def detect_stall(self, now: datetime, mono: float) -> bool:
        """Plan catch-up when the wall clock jumped ahead or the process was frozen."""
        wall_delta = (now - self._last_wall).total_seconds()
        mono_delta = mono - self._last_mono
        self._last_wall, self._last_mono = now, mono
        threshold = self.stall_threshold.total_seconds()
        if wall_delta < -threshold:
            # Instants already in the history are never fired again (unique key + cursors).
            log.warning("wall clock stepped back by %.0fs; nothing is re-fired", -wall_delta)
            self.timer.look_again()
            return False
        if wall_delta - mono_delta > threshold or mono_delta > MAX_TICK + threshold:
            log.warning(
                "stall detected: wall clock moved %.1fs, monotonic %.1fs; planning catch-up",
                wall_delta,
                mono_delta,
            )
            self.planner.post(CatchUp(now))
            self.timer.look_again()
            return True
        return False

    def _file_identity(self) -> tuple[int, int] | None:
        if self._store_file is None:
            return None
        try:
            found = os.stat(self._store_file)
        except FileNotFoundError:
            return None
        return (found.st_dev, found.st_ino)

    def _store_file_intact(self) -> bool:
        """False, and the daemon stopping with exit code 1, once the SQLite file it started
        with is gone or replaced: what it records from then on would be lost, and what it
        claims would be claimed again by the next start. Checked at every pass (a stat)."""
        if self._store_identity is None or self.stop_event.is_set():
            return True
        if self._file_identity() == self._store_identity:
            return True
        log.error(
            "the store's file %s was deleted or replaced while the daemon ran; stopping "
            "(restore it, or run `tallyfy-scheduler init` for a new store, then start again)",
            self._store_file,
        )
        self.exit_code = 1
        self.request_stop()
        return False

    def healthy(self) -> bool:
        """Whether this process is healthy (`unhealthy_reason` is None): the systemd
        watchdog is fed only then, and `/healthz` answers 200 only then."""
        return self.unhealthy_reason() is None

    def unhealthy_reason(self) -> str | None:
        """Why this process is not healthy, or None (any thread).

        Judged from this process alone, never from ledger rows (a row left by a crashed
        process or another daemon must not stop the watchdog): no request of this process has
        run past its deadline by more than REQUEST_OVERDUE (stuck outside every socket
        timeout); once started, the timer and the planner run, and the loop's last pass began
        less than LOOP_OVERDUE ago (the loop feeds the watchdog; `/healthz` asks from another
        thread, so it checks that the loop still runs)."""
        overdue = transport.WATCHDOG.overdue()
        if overdue > REQUEST_OVERDUE.total_seconds():
            return f"a request to the API has run {overdue:.0f}s past its deadline"
        last_pass = self._last_pass
        if last_pass is not None:
            silent = self.clock.monotonic() - last_pass
            if silent > LOOP_OVERDUE.total_seconds():
                return f"the main loop has not run for {silent:.0f}s"
        if self._planner_thread is None:
            return None  # not started: `prepare` only (tests), or threads not wanted
        if not self.timer.alive:
            return "the timer thread is not running"
        if not self._planner_thread.is_alive():
            return "the planner thread is not running"
        return None

    def not_ready_reason(self) -> str | None:
        """Why the daemon is not ready, or None (any thread): ready once the startup
        catch-up is planned, while the store answers (asked at most every STORE_CHECK_TTL
        seconds), until it stops."""
        if self.stop_event.is_set():
            return "stopping"
        if not self._planned:
            return "the startup catch-up is not planned yet"
        at, failure = self._store_answer
        now = self.clock.monotonic()
        if now - at >= STORE_CHECK_TTL:
            try:
                self.store.jobs_revision()
                failure = None
            except StoreError as exc:
                failure = f"the store does not answer: {exc}"
            self._store_answer = (now, failure)
        return failure

    def listen(self) -> Listener | None:
        """Open the HTTP listener of `[http] listen` and serve `router` from it (once; None
        when the setting is empty). ConfigError when the address cannot be bound, or when
        other hosts could reach it without `[http] allow_remote`."""
        http = self.settings.http
        address = http.listen_address()
        if address is None or self.listener is not None:
            return self.listener
        if not http.allow_remote and not is_loopback(address[0]):
            # Loading the settings refuses it already; settings built in code are held to it too.
            why = "not an address of this machine only; set [http] allow_remote = true to allow it"
            raise ConfigError(problem(why, key="http.listen", value=http.listen))
        self.listener = Listener.open(*address, self.router)
        self.listener.start()
        log.info("listening on %s (the dashboard, /metrics, /healthz, /readyz)", self.listener.url)
        return self.listener

    def request_stop(self) -> None:
        self.stop_event.set()
        self.wake_event.set()

    def request_reload(self) -> None:
        self.reload_event.set()
        self.wake_event.set()

    def install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        signal.signal(signal.SIGHUP, lambda _s, _f: self.request_reload())

    def _on_stop_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signals_seen += 1
        if self._signals_seen > 1:
            # Second signal: leave now. Every claim is committed; the next start settles them.
            os._exit(1)
        self.request_stop()

    # -- status ---------------------------------------------------------------------------------
    def next_fire_at(self) -> datetime | None:
        """When the next fire is due (jitter included), as the planner last published it."""
        upcoming = self.planner.next_fire
        return None if upcoming is None else upcoming[0]

    def status_line(self) -> str:
        jobs = self.planner.job_count
        upcoming = self.planner.next_fire
        if upcoming is None:
            return f"{jobs} jobs; nothing scheduled"
        return f"{jobs} jobs; next fire {upcoming[1]} at {utc_iso(upcoming[0])}"

    # -- the HTTP routes (the listener's threads) -----------------------------------------------
    def _open_incidents(self) -> dict[str, int]:
        """Open incidents by kind for `/metrics`: the store's (every daemon's), and this
        daemon's `store` incident while it is open in memory only (the store is down)."""
        # `self.alerts` is made after `self.metrics`; a scrape comes only once both exist.
        store_open = self.alerts.monitor.store_incident_open
        try:
            counts = {str(kind): n for kind, n in self.store.open_incident_counts().items()}
        except StoreError:
            if not store_open:
                raise
            counts = {}
        if store_open:
            counts[str(IncidentKind.STORE)] = counts.get(str(IncidentKind.STORE), 0) + 1
        return counts

    def _serve_metrics(self, _request: Request) -> Response:
        return Response(200, self.metrics.render(), CONTENT_TYPE)

    def _serve_health(self, _request: Request) -> Response:
        reason = self.unhealthy_reason()
        return Response.text("ok\n") if reason is None else Response.text(f"{reason}\n", 503)

    def _serve_readiness(self, _request: Request) -> Response:
        reason = self.not_ready_reason()
        return Response.text("ready\n") if reason is None else Response.text(f"{reason}\n", 503)

    # -- steps ----------------------------------------------------------------------------------
    def _reload_settings(self) -> None:
        """SIGHUP: load the config and the token again and take what may change live. Settings
        that do not load change nothing: the daemon goes on with those it has."""
        if self.reload_settings is None:
            return
        try:
            fresh = self.reload_settings()
        except SchedulerError as exc:
            log.error("reload: the settings did not load, keeping the current ones: %s", exc)
            return
        if fresh.tallyfy.access_token is None or not fresh.tallyfy.access_token.reveal():
            log.error("reload: no access token found, keeping the current settings")
            return
        merged, restart = merge(self.settings, fresh)
        for key in restart:
            log.warning("reload: %s changed; it takes effect at the next restart", key)
        old, self.settings = self.settings, merged
        client = self.runner.client
        token = merged.tallyfy.access_token
        if token is not None and token != old.tallyfy.access_token:
            client.set_token(token)
            # Fires waiting for a renewed token go now, not at their backed-off time.
            try:
                waiting = self.store.retry_now(
                    http_statuses=CREDENTIAL_STATUSES, now=self.clock.now()
                )
            except StoreError as exc:
                log.error("reload: store unavailable; waiting fires go at their time: %s", exc)
            else:
                if waiting:
                    log.info("reload: a new token; %d waiting fires are sent now", waiting)
        rate = merged.tallyfy.max_requests_per_minute
        if rate != old.tallyfy.max_requests_per_minute:
            if client.rate_limiter is not None:
                client.rate_limiter.set_rate(rate)
            self.pool.set_group_size(group_size(rate))
        self.runner.reconfigure(
            retry=merged.retry, calendar=BusinessCalendar.from_settings(merged.calendar)
        )
        self.loader.settings = self.planner.settings = merged
        self.recovery.dead_after = merged.scheduler.dead_after
        if merged.scheduler.log_level != old.scheduler.log_level:
            logging.getLogger().setLevel(merged.scheduler.log_level)
        log.info("reload: settings loaded from %s", merged.config_file or "defaults")

    def _reload(self, *, force: bool = False) -> None:
        for load in self.loader.changes(force=force):
            self.planner.post(load)

    def _resume_open_fires(self, now: datetime, mono: float, *, startup: bool = False) -> float:
        """Hand the open fires to carry forward to the planner; the seconds until the next
        retry is due (at most a tick)."""
        try:
            fires = self.recovery.open_fires(now, mono, startup=startup)
            next_retry = self.store.next_retry_at()
        except StoreError as exc:
            log.error("store unavailable while looking for retries: %s", exc)
            return MAX_TICK
        if fires:
            self.planner.post(Resume(fires))
        if next_retry is None:
            return MAX_TICK
        return min(MAX_TICK, max(DUE_RETRY_POLL, (next_retry - now).total_seconds()))

    def _heartbeat(self, now: datetime, *, state: str) -> None:
        self.store.heartbeat(
            self.daemon_id,
            hostname=self.recovery.hostname,
            pid=os.getpid(),
            started_at=self._started_at,
            now=now,
            next_fire_at=self.next_fire_at(),
            state=state,
        )

    def _send(self, carries: Sequence[Carry]) -> None:
        """The planner's hand-off: queue each fire behind its job's others."""
        for carry in carries:
            self.pool.submit(carry.fire.job_id, carry.fire.id, carry)

    def _stranded(self, fire_ids: Sequence[int]) -> None:
        """Fires whose carrying failed on the store: the planner resumes them later."""
        self.planner.post(Stranded(fire_ids))
