"""Someone watching the watcher: the heartbeat pings while the daemon is healthy, and stops
while its senders are stuck (a request past its deadline, where no socket timeout reaches)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from receivers import JsonReceiver

from scheduler.client import TallyfyClient
from scheduler.clock import FakeClock
from scheduler.config import AlertSettings, Secret, Settings, StoreSettings
from scheduler.daemon import Daemon
from scheduler.notify import Notifier
from scheduler.store import Store
from scheduler.transport import exchange


def test_the_heartbeat_pings_while_healthy_and_stops_while_the_senders_are_stuck(
    tmp_path: Path,
) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'h.db'}")
    store.init_schema()
    clock = FakeClock(datetime(2026, 5, 4, 10, tzinfo=UTC))
    client = TallyfyClient("http://127.0.0.1:1/api", "org", Secret("token"))
    with JsonReceiver() as checker:
        settings = Settings(
            store=StoreSettings(url=store.url),
            alerts=AlertSettings(
                heartbeat=Secret(checker.http_url), heartbeat_every=timedelta(seconds=1)
            ),
        )
        daemon = Daemon(settings, store, client, clock=clock, notifier=Notifier({}), threaded=False)
        try:
            daemon.prepare()

            def run(seconds: int) -> int:
                before = checker.pings
                for _ in range(seconds):
                    daemon.tick()
                    clock.advance(timedelta(seconds=1))
                return checker.pings - before

            assert run(5) == 5  # healthy: a ping a second
            with exchange(-20.0):  # a sender's request 20 s past its deadline, still running
                assert not daemon.healthy()
                assert run(5) == 0
            assert run(5) == 5  # it returned: pings again
        finally:
            daemon.shutdown()
            client.close()
            store.close()
    assert settings.alerts.heartbeat is not None
    assert checker.http_url not in repr(settings)  # a secret: never shown
