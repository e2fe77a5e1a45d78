"""`[http]`: the listener's address, who may reach it, and the per-job series cap."""

from __future__ import annotations

from pathlib import Path

import pytest

from scheduler.config import DEFAULT_MAX_JOB_SERIES, Settings, load_settings
from scheduler.daemon.reload import merge
from scheduler.errors import ConfigError


def settings(tmp_path: Path, text: str) -> Settings:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return load_settings(path, environ={}, cwd=tmp_path)


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        settings(tmp_path, text)
    return [str(p) for p in caught.value.problems]


def test_without_a_listen_address_there_is_no_listener(tmp_path: Path) -> None:
    for text in ("", "[http]\n", '[http]\nlisten = ""\n'):
        http = settings(tmp_path, text).http
        assert http.listen_address() is None
        assert (http.allow_remote, http.max_job_series) == (False, DEFAULT_MAX_JOB_SERIES)


@pytest.mark.parametrize(
    ("listen", "address"),
    [
        ("127.0.0.1:9477", ("127.0.0.1", 9477)),
        ("localhost:0", ("localhost", 0)),
        ("[::1]:9477", ("::1", 9477)),
        (" 127.0.0.2:80 ", ("127.0.0.2", 80)),
    ],
)
def test_an_address_of_this_machine_is_taken_as_it_is(
    tmp_path: Path, listen: str, address: tuple[str, int]
) -> None:
    assert settings(tmp_path, f'[http]\nlisten = "{listen}"\n').http.listen_address() == address


@pytest.mark.parametrize("listen", ["0.0.0.0:9477", ":9477", "192.0.2.7:9477", "[::]:9477"])
def test_an_address_other_hosts_can_reach_needs_allow_remote(tmp_path: Path, listen: str) -> None:
    (refused,) = problems(tmp_path, f'[http]\nlisten = "{listen}"\n')
    assert refused.startswith(f"{tmp_path / 'config.toml'}: http.listen = '{listen}': ")
    assert "allow_remote = true" in refused
    allowed = settings(tmp_path, f'[http]\nlisten = "{listen}"\nallow_remote = true\n')
    assert allowed.http.listen_address() is not None


@pytest.mark.parametrize(
    ("listen", "why"),
    [
        ("9477", "must be host:port"),
        ("127.0.0.1:http", "must be host:port"),
        ("127.0.0.1:65536", "must be host:port"),
        ("::1:9477", "in brackets"),
        ("[localhost]:9477", "not an IPv6 address"),
    ],
)
def test_a_listen_value_that_is_no_address_is_refused_saying_why(
    tmp_path: Path, listen: str, why: str
) -> None:
    (refused,) = problems(tmp_path, f'[http]\nlisten = "{listen}"\nallow_remote = true\n')
    assert f"http.listen = '{listen}'" in refused and why in refused


def test_max_job_series_is_a_whole_number_above_zero(tmp_path: Path) -> None:
    assert settings(tmp_path, "[http]\nmax_job_series = 5\n").http.max_job_series == 5
    (refused,) = problems(tmp_path, "[http]\nmax_job_series = 0\n")
    assert "http.max_job_series = 0" in refused


def test_http_settings_wait_for_a_restart_on_reload(tmp_path: Path) -> None:
    running = settings(tmp_path, '[http]\nlisten = "127.0.0.1:9477"\n')
    fresh = settings(tmp_path, '[http]\nlisten = "127.0.0.1:9478"\nmax_job_series = 3\n')
    merged, restart = merge(running, fresh)
    assert merged.http == running.http
    assert sorted(restart) == ["http.listen", "http.max_job_series"]
