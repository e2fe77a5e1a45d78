"""`[http] listen` as `tallyfy-scheduler run` meets it: a real process, its exit code, its log."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
import requests
from daemon_helpers import DaemonEnv, config_toml, wait_until
from prometheus_client.parser import text_string_to_metric_families

from scheduler.store import Store


def with_http(denv: DaemonEnv, **http: object) -> DaemonEnv:
    path = denv.workdir / "config.toml"
    path.write_text(config_toml(http=http))
    denv.config = path
    return denv


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port of 127.0.0.1 that another socket listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_an_address_in_use_stops_run_at_once_with_a_clear_error(
    denv: DaemonEnv, dstore: Store, taken_port: int
) -> None:
    done = with_http(denv, listen=f"127.0.0.1:{taken_port}").cli("run", timeout=60)
    assert done.returncode == 1
    assert f"http.listen = '127.0.0.1:{taken_port}': address already in use" in done.stderr
    assert "Traceback" not in done.stderr
    assert dstore.daemons() == []  # refused before anything started: no heartbeat


def test_an_address_other_hosts_reach_is_refused_without_allow_remote(denv: DaemonEnv) -> None:
    done = with_http(denv, listen="0.0.0.0:0").cli("run", timeout=60)
    assert done.returncode == 1
    assert "http.listen = '0.0.0.0:0'" in done.stderr
    assert "allow_remote = true" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_with_allow_remote_run_listens_on_every_address_and_serves_the_pages(
    denv: DaemonEnv, daemons
) -> None:
    daemon = daemons(with_http(denv, listen="0.0.0.0:0", allow_remote=True)).start()
    port = int(daemon.wait_for_log(r"listening on http://0\.0\.0\.0:(\d+) ")[1])
    daemon.wait_for_log("daemon started")
    url = f"http://127.0.0.1:{port}"
    assert requests.get(f"{url}/healthz", timeout=5).text == "ok\n"
    ready = wait_until(lambda: requests.get(f"{url}/readyz", timeout=5).status_code == 200, 10)
    assert ready
    families = {f.name for f in text_string_to_metric_families(requests.get(f"{url}/metrics").text)}
    assert {"tallyfy_scheduler_ready", "process_cpu_seconds"} <= families
    assert daemon.term() == 0
