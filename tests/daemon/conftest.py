"""Fixtures for the daemon tests (helpers live in daemon_helpers.py).

- `sandbox`: a started `SandboxServer` (demo organization, free port), stopped afterwards;
- `denv`: a `DaemonEnv` for a fresh, initialized SQLite store under `tmp_path` and `sandbox`;
- `dstore`: a `Store` on that database (the test's own connection);
- `daemons`: a factory `daemons(env=None, name=..., extra_env=...) -> DaemonProcess`; every
  process it made is SIGKILLed and reaped at teardown, whatever the test did;
- `world`: the daemon-steps world (`test_daemon_steps.World`: a store, a sandbox and a
  `StepClock` shared by the daemons it makes), closed afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from daemon_helpers import DaemonEnv, DaemonProcess

from scheduler.store import Store
from tallyfy_sandbox import SandboxServer

if TYPE_CHECKING:
    from test_daemon_steps import World


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        yield server


@pytest.fixture
def denv(tmp_path: Path, sandbox: SandboxServer) -> DaemonEnv:
    db = f"sqlite:///{tmp_path / 'scheduler.db'}"
    store = Store.open(db)
    store.init_schema()
    store.close()
    return DaemonEnv(db, sandbox.url, sandbox.organization_id, sandbox.token, tmp_path)


@pytest.fixture
def dstore(denv: DaemonEnv) -> Iterator[Store]:
    store = Store.open(denv.db_url)
    yield store
    store.close()


DaemonFactory = Callable[..., DaemonProcess]


@pytest.fixture
def daemons(denv: DaemonEnv) -> Iterator[DaemonFactory]:
    made: list[DaemonProcess] = []

    def make(
        env: DaemonEnv | None = None,
        *,
        name: str = "daemon",
        extra_env: dict[str, str] | None = None,
    ) -> DaemonProcess:
        process = (env or denv).process(name=name, env=extra_env)
        made.append(process)
        return process

    yield make
    for process in made:
        process.kill()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    # Imported here: the steps module is a test module, collected on its own.
    from test_daemon_steps import START, StepClock, World

    clock = StepClock(START)
    with SandboxServer(clock=clock) as sandbox:
        w = World(tmp_path, sandbox, clock)
        yield w
        w.close()
