"""Someone watching the watcher: an outbound ping while the daemon is healthy.

`[alerts] heartbeat_url` names where a healthchecks.io or Cronitor check URL is read from (a
secret, like the token). The daemon's main loop asks `due` at each pass and, only while the
daemon is healthy (`Daemon.healthy`: the loop ticks, its threads run, no request is stuck past
its deadline), hands a ping to this module's own thread: a dead host, a dead daemon or a stuck
one stops the pings, and the checking service tells someone. The ping is a plain GET, bounded
by `PING_TIMEOUT`, never on the main loop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta

import requests

from scheduler.clock import Clock
from scheduler.config import Secret
from scheduler.logs import register_secret

log = logging.getLogger(__name__)

PING_TIMEOUT = (5.0, 10.0)  # connect, read (seconds)


class Heartbeat:
    """Pings `url` every `every` while told the daemon is healthy."""

    def __init__(self, url: Secret, every: timedelta, *, clock: Clock, threaded: bool) -> None:
        self._url = url
        register_secret(url.reveal())
        self.every = every.total_seconds()
        self.clock = clock
        self.threaded = threaded
        self.sent = 0  # pings that got a 2xx answer (tests, `status`)
        self._last = -1e18
        self._wanted = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._session = requests.Session()

    def start(self) -> None:
        if self.threaded and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="alerts-heartbeat", daemon=True)
            self._thread.start()

    def due(self, mono: float, healthy: Callable[[], bool]) -> None:
        """The main loop's pass: ping if one is due and the daemon is healthy (asked only
        then). Never blocks: the ping goes out on the heartbeat's thread."""
        if mono - self._last < self.every or not healthy():
            return
        self._last = mono
        if self.threaded:
            self._wanted.set()
        else:
            self.ping()

    def ping(self) -> bool:
        """One GET of the URL; whether it got a 2xx answer (logged, never raised)."""
        try:
            response = self._session.get(self._url.reveal(), timeout=PING_TIMEOUT)
            response.close()
        except requests.RequestException as exc:
            log.warning("heartbeat ping failed: %s", type(exc).__name__)
            return False
        if not response.ok:
            log.warning("heartbeat ping answered HTTP %d", response.status_code)
            return False
        self.sent += 1
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wanted.wait()
            self._wanted.clear()
            if not self._stop.is_set():
                self.ping()

    def stop(self) -> None:
        self._stop.set()
        self._wanted.set()
        if self._thread is not None:
            self._thread.join(1.0)
        self._session.close()
