"""A deleted SQLite file, and commands run where there is no store (issue 11, item 8).

Before: the daemon went on recording `succeeded` into the unlinked file (every later fire was
lost from the history), and `status` then created an empty store in its place. Now the daemon
notices within a pass (the file's identity), stops claiming and exits 1; only `init` creates a
store; every other command says there is none and leaves no file or directory behind.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from daemon.daemon_helpers import DaemonEnv, wait_until, write_job

from tallyfy_sandbox import SandboxServer


def store_files(path: Path) -> list[Path]:
    return [p for p in path.parent.glob(path.name + "*")]


@pytest.mark.slow
def test_a_store_file_deleted_under_the_daemon_stops_it_with_an_error_and_nothing_recreates_it(
    tmp_path: Path,
) -> None:
    with SandboxServer() as sandbox:
        db = tmp_path / "state" / "scheduler.db"
        env = DaemonEnv(
            f"sqlite:///{db}", sandbox.url, sandbox.organization_id, sandbox.token, tmp_path
        )
        assert env.cli("init").returncode == 0
        env.apply(write_job(tmp_path / "jobs", "j", "* * * * * *"))
        with env.process(name="daemon") as daemon:
            daemon.wait_started()
            wait_until(lambda: len(sandbox.tasks()) >= 1, 10, message="a first fire")
            for path in store_files(db):
                path.unlink()
            deleted = time.monotonic()
            code = daemon.wait(10)
            assert code == 1, daemon.log()
            assert time.monotonic() - deleted < 10
            assert "was deleted or replaced while the daemon ran" in daemon.log()
            assert "Traceback" not in daemon.log()
        assert store_files(db) == []  # the daemon did not make a new, empty store
        again = env.cli("run")
        assert again.returncode == 1
        assert f"no store at {db}: run `tallyfy-scheduler init`" in again.stderr
        assert "Traceback" not in again.stderr
        assert store_files(db) == []


@pytest.mark.parametrize(
    "args",
    [
        ("status",),
        ("history",),
        ("jobs", "list"),
        ("jobs", "show", "j"),
        ("next", "j"),
        ("preview", "j"),
        ("jobs", "apply", "JOBS"),
        ("doctor",),
        ("run",),
    ],
    ids=lambda a: " ".join(a),
)
def test_no_command_but_init_creates_a_store_or_its_directory(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    with SandboxServer() as sandbox:
        db = tmp_path / "nowhere" / "scheduler.db"
        env = DaemonEnv(
            f"sqlite:///{db}", sandbox.url, sandbox.organization_id, sandbox.token, tmp_path
        )
        jobs = write_job(tmp_path / "jobs", "j", "* * * * * *").parent
        done = env.cli(*[str(jobs) if a == "JOBS" else a for a in args])
        assert done.returncode == 1, done.stdout + done.stderr
        assert f"no store at {db}" in done.stdout + done.stderr
        assert "Traceback" not in done.stderr
        assert not db.parent.exists()
        created = env.cli("init")
        assert created.returncode == 0 and db.is_file()
