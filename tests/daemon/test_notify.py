"""sd_notify over a real AF_UNIX datagram socket, as systemd would listen (sd_notify(3))."""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scheduler.client import TallyfyClient
from scheduler.clock import FakeClock
from scheduler.config import Secret, Settings, StoreSettings
from scheduler.daemon import Daemon
from scheduler.notify import Notifier
from scheduler.store import Store
from scheduler.transport import exchange


class Listener:
    """A bound datagram socket standing in for systemd's notification socket."""

    def __init__(self, address: str, bind_to: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(bind_to)
        self.sock.settimeout(0.5)

    def messages(self) -> list[str]:
        """Everything received so far."""
        out = []
        self.sock.settimeout(0.05)
        while True:
            try:
                out.append(self.sock.recv(4096).decode())
            except TimeoutError:
                return out


@pytest.fixture
def listener() -> Iterator[Listener]:
    folder = Path(tempfile.mkdtemp(prefix="sdn", dir="/tmp"))  # AF_UNIX paths are short
    path = str(folder / "notify")
    sock = Listener(path, path)
    yield sock
    sock.sock.close()
    os.unlink(path)
    folder.rmdir()


def test_without_notify_socket_nothing_is_sent() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert notifier.ready("x") is False
    assert notifier.watchdog_interval is None


def test_each_message_arrives_as_one_datagram(listener: Listener) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": listener.address})
    assert notifier.ready("2 jobs; next fire a at 2026-05-04T10:00:00Z")
    assert notifier.status("hello")
    assert notifier.watchdog()
    assert notifier.reloading()
    assert notifier.stopping()
    notifier.close()
    assert listener.messages() == [
        "READY=1\nSTATUS=2 jobs; next fire a at 2026-05-04T10:00:00Z",
        "STATUS=hello",
        "WATCHDOG=1",
        "RELOADING=1",
        "STOPPING=1",
    ]


def test_an_abstract_socket_name_starts_with_an_at_sign() -> None:
    name = f"tallyfy-test-{os.getpid()}"
    listener = Listener("@" + name, "\0" + name)
    notifier = Notifier({"NOTIFY_SOCKET": "@" + name})
    try:
        assert notifier.ready()
        assert listener.messages() == ["READY=1"]
    finally:
        notifier.close()
        listener.sock.close()


@pytest.mark.parametrize(
    ("env", "interval"),
    [
        ({"WATCHDOG_USEC": "2000000"}, 1.0),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}, 1.0),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
    ],
    ids=["half-the-timeout", "our-pid", "another-pid", "zero", "not-a-number"],
)
def test_the_watchdog_is_fed_at_half_its_timeout_and_only_if_it_is_ours(
    env: dict[str, str], interval: float | None
) -> None:
    assert Notifier({"NOTIFY_SOCKET": "/nonexistent", **env}).watchdog_interval == interval


def test_a_vanished_socket_is_logged_never_raised(caplog: pytest.LogCaptureFixture) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": "/nonexistent/notify"})
    try:
        assert notifier.watchdog() is False
    finally:
        notifier.close()
    assert "sd_notify failed" in caplog.text


@contextlib.contextmanager
def jobless_daemon(listener: Listener, tmp_path: Path) -> Iterator[tuple[Daemon, FakeClock]]:
    """A daemon without threads or jobs, notifying `listener` (watchdog every second); shut
    down afterwards. It sends nothing: the client's address is never used."""
    store = Store.open(f"sqlite:///{tmp_path / 'n.db'}")
    store.init_schema()
    clock = FakeClock(datetime(2026, 5, 4, 10, tzinfo=UTC))
    notifier = Notifier({"NOTIFY_SOCKET": listener.address, "WATCHDOG_USEC": "2000000"})
    client = TallyfyClient("http://127.0.0.1:1/api", "org", Secret("token"))
    daemon = Daemon(
        Settings(store=StoreSettings(url=store.url)),
        store,
        client,
        clock=clock,
        notifier=notifier,
        threaded=False,
    )
    try:
        daemon.prepare()
        yield daemon, clock
    finally:
        daemon.shutdown()
        client.close()
        store.close()


def test_the_loop_feeds_the_watchdog_reports_status_and_says_stopping(
    listener: Listener, tmp_path: Path
) -> None:
    with jobless_daemon(listener, tmp_path) as (daemon, clock):
        daemon.tick()  # first pass: heartbeat (STATUS) and watchdog
        clock.advance(timedelta(seconds=0.5))
        daemon.tick()  # too soon for either
        clock.advance(timedelta(seconds=0.6))
        daemon.tick()  # watchdog again (every second); status only every heartbeat (5 s)
    assert listener.messages() == [
        "STATUS=0 jobs; nothing scheduled",
        "WATCHDOG=1",
        "WATCHDOG=1",
        "STOPPING=1",
    ]


def test_the_watchdog_is_not_fed_while_a_request_is_stuck_past_its_deadline(
    listener: Listener, tmp_path: Path
) -> None:
    # Judged from this process alone: a request of ours still running 20 s after its deadline
    # (stuck where no socket timeout reaches, a name lookup say) stops the watchdog; ledger
    # rows never do.
    with jobless_daemon(listener, tmp_path) as (daemon, clock):
        with exchange(-20.0):  # its deadline passed 20 s ago, and it has not returned
            assert not daemon.healthy()
            daemon.tick()
        clock.advance(timedelta(seconds=1.1))
        assert daemon.healthy()
        daemon.tick()  # returned: fed again
    messages = listener.messages()
    assert messages.count("WATCHDOG=1") == 1
    assert messages.index("WATCHDOG=1") > messages.index("STATUS=0 jobs; nothing scheduled")
