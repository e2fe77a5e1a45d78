"""The HTTP transport under the API client: a deadline on the whole of every exchange.

`requests` and urllib3 bound a request only one socket operation at a time: the connect
timeout, and a read timeout that starts again with every byte that arrives. urllib3's
`Timeout(total=...)` is no better: its documentation says it too "only measures the time
between read operations", so a server that trickles its answer a byte a second (the status
line, the headers or the body) keeps one request going for ever. Each of the daemon's send
workers carries one request at a time, so such a server would hold them all.

Here every request runs as an `Exchange` with a deadline, and one `Watchdog` thread per
process ends the exchanges whose deadline passed: it shuts down their socket
(`shutdown(SHUT_RDWR)`, which is safe from another thread), so whatever the request's thread
is blocked in (sending, waiting for the status line or the headers, reading the body, a TLS
handshake) returns at once with an error. The client then tells the two cases apart with
`Exchange.sent`: whether any byte of the request was handed to the socket.

The socket is found through urllib3's connection classes, subclassed here through their
public methods only (`DeadlineAdapter` mounts them): once a connection is connected, it keeps
a duplicate of its socket's descriptor (`sock`, TLS-wrapped or not) and attaches it to the
exchange running on its thread, whether the connection is new or reused from the pool. The
connect itself (TCP, and a TLS handshake) is bounded by the connect timeout, each step of it,
which the client caps at the deadline: a TLS handshake a server trickles byte by byte is the
one exchange the deadline does not cut short; name resolution is not bounded by either (the
system resolver has its own timeouts).

SOCKS proxies (urllib3's own connection classes) are not watched: with one, only the
per-operation timeouts apply.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.poolmanager import PoolManager
from urllib3.poolmanager import pool_classes_by_scheme as _DEFAULT_POOL_CLASSES

_local = threading.local()


class Exchange:
    """One request and its answer, bounded by `deadline` (a `time.monotonic()` value).

    `sent`: some byte of the request was handed to the socket (so it may have arrived).
    `expired`: the deadline passed before the exchange ended; its socket was shut down.
    `watched`: it runs on our transport (a watched connection began to connect, or attached
    its socket): `sent` is known, and once a socket is attached the watchdog can end it.
    """

    __slots__ = ("deadline", "sent", "expired", "watched", "_sock", "_ended", "_lock")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.sent = False
        self.expired = False
        self.watched = False
        self._sock: socket.socket | None = None
        self._ended = False
        self._lock = threading.Lock()

    def attach(self, sock: socket.socket) -> None:
        """Watch `sock` from now on; shut it at once if the deadline passed already."""
        with self._lock:
            if self._ended:
                return
            self._sock = sock
            self.watched = True
            if self.expired:
                _shut(sock)

    def expire(self) -> None:
        """The deadline passed: shut the socket, so the request's thread returns."""
        with self._lock:
            if self._ended:
                return
            self.expired = True
            if self._sock is not None:
                _shut(self._sock)

    def end(self) -> None:
        """The exchange is over: its connection may go back to the pool, so never touch it."""
        with self._lock:
            self._ended = True
            self._sock = None


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed or never connected: nothing to end


class Watchdog:
    """One thread that expires every exchange whose deadline passed.

    It holds only the exchanges in flight (a handful: one per send worker), wakes at the
    earliest deadline, and is started on first use; it is a daemon thread, so it never holds
    the process up at exit.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._active: set[Exchange] = set()  # in flight, not expired yet
        self._running: set[Exchange] = set()  # in flight, expired or not
        self._thread: threading.Thread | None = None
        self._wake_at: float | None = None  # when the thread wakes next; None: when told

    def arm(self, exchange: Exchange) -> None:
        with self._cond:
            self._active.add(exchange)
            self._running.add(exchange)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="request-deadline", daemon=True
                )
                self._thread.start()
            # Woken only for an earlier deadline than it waits for: with one deadline for
            # every request, a burst of requests wakes it no more than a single one does.
            if self._wake_at is None or exchange.deadline < self._wake_at:
                self._cond.notify()

    def disarm(self, exchange: Exchange) -> None:
        with self._cond:
            self._active.discard(exchange)
            self._running.discard(exchange)

    def overdue(self) -> float:
        """How long (seconds) the request most past its deadline has been running since; 0
        when none is. An expired request whose socket was shut returns at once: one still
        running well past its deadline is stuck where no socket timeout reaches (a name
        lookup), which the daemon counts as unhealthy (the systemd watchdog, /healthz)."""
        now = time.monotonic()
        with self._cond:
            return max((now - e.deadline for e in self._running), default=0.0)

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                due = [e for e in self._active if e.deadline <= now]
                for exchange in due:
                    self._active.discard(exchange)
                    exchange.expire()
                self._wake_at = min((e.deadline for e in self._active), default=None)
                self._cond.wait(None if self._wake_at is None else max(0.0, self._wake_at - now))


WATCHDOG = Watchdog()


def exchange(seconds: float, watchdog: Watchdog = WATCHDOG) -> _Scope:
    """`with exchange(seconds) as current:` runs one request on this thread within `seconds`:
    the connections it uses attach to `current`, which the watchdog expires at the deadline."""
    return _Scope(Exchange(time.monotonic() + seconds), watchdog)


class _Scope:
    """The context of `exchange` (a class rather than a generator: it runs once per request,
    and costs half as much)."""

    __slots__ = ("_current", "_watchdog")

    def __init__(self, current: Exchange, watchdog: Watchdog) -> None:
        self._current = current
        self._watchdog = watchdog

    def __enter__(self) -> Exchange:
        _local.exchange = self._current
        self._watchdog.arm(self._current)
        return self._current

    def __exit__(self, *exc: object) -> None:
        self._watchdog.disarm(self._current)
        self._current.end()
        _local.exchange = None


def _current() -> Exchange | None:
    found: Exchange | None = getattr(_local, "exchange", None)
    return found


class _Watched(HTTPConnection):
    """A urllib3 connection that attaches its socket to the exchange on its thread, and
    notes when a byte of the request is handed to the socket."""

    _watch: socket.socket | None = None  # a duplicate descriptor of the TCP socket
    _connecting = False

    def connect(self) -> None:
        current = _current()
        if current is not None:
            # Our transport from here on: `sent` is known, even if the connect (a TLS
            # handshake) fails before there is a socket to watch.
            current.watched = True
        self._connecting = True  # a proxy's CONNECT is not the request
        try:
            super().connect()
        finally:
            self._connecting = False
        self._forget()
        # A duplicate descriptor of the connected socket (`sock`, TLS-wrapped or not): a
        # shutdown through any descriptor of a socket ends the connection for all of them.
        self._watch = socket.socket(fileno=os.dup(self.sock.fileno()))
        if current is not None:
            current.attach(self._watch)

    def request(self, *args: Any, **kwargs: Any) -> None:
        current = _current()
        if current is not None and self._watch is not None:
            current.attach(self._watch)  # a connection reused from the pool
        super().request(*args, **kwargs)

    def send(self, data: Any) -> None:
        current = _current()
        if current is not None and not self._connecting:
            current.sent = True  # before the write: once it starts, a byte may be out
        super().send(data)

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._forget()

    def _forget(self) -> None:
        if self._watch is not None:
            self._watch.close()
            self._watch = None


class WatchedHTTPConnection(_Watched, HTTPConnection):
    """`http://`, watched."""


class WatchedHTTPSConnection(_Watched, HTTPSConnection):
    """`https://`, watched."""


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = WatchedHTTPSConnection


_WATCHED_POOL_CLASSES = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class DeadlineAdapter(HTTPAdapter):
    """An `HTTPAdapter` whose connections (direct, or through an HTTP proxy) are watched."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        _watch_pools(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> PoolManager:
        manager: PoolManager = super().proxy_manager_for(proxy, **proxy_kwargs)
        _watch_pools(manager)
        return manager


def _watch_pools(manager: PoolManager) -> None:
    # Only managers with urllib3's default pools: a SOCKS manager has pools of its own.
    if manager.pool_classes_by_scheme is _DEFAULT_POOL_CLASSES:
        manager.pool_classes_by_scheme = _WATCHED_POOL_CLASSES
