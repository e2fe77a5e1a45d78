"""Store faults under a running daemon: a database locked by another process, a full disk.

The daemon is a real `python -m scheduler run` subprocess (tests/reliability/conftest.py, `rig`)
firing 6-field, 1-2 s schedules at an in-process sandbox, with catch_up = "all". While it
runs, the store stops accepting writes for several seconds:

- **locked**: another process holds `BEGIN EXCLUSIVE` on the SQLite file for longer than the
  store's busy timeout (5 s), so claims do not merely wait, they fail;
- **full**: the store lives on a small tmpfs the test mounts (root only, as in CI); the WAL is
  checkpointed and truncated, then a filler file takes every free byte, so the next write of
  any transaction fails with SQLITE_FULL. A tmpfs is the honest fault: SQLite's
  `max_page_count` would need a hook in the daemon's own connections, and it caps the database
  file, not the WAL the daemon actually writes to.

Each fault begins while one task is in flight (the sandbox applies it, then holds the answer
for 2 s), so the daemon also meets the worst moment: the API did the work and the store will
not take the outcome; the fire stays `sending` and must be read back, not sent again.

During the fault the daemon must keep running, say what is wrong in its log (one line, not a
traceback), and send nothing (no launch or task reaches the API: an instant it cannot claim it
must not fire). After the fault it must lose nothing, within a minute: every scheduled instant
of the test is accounted for exactly once (the exact audit of conftest.py: one launch/task, or
a recorded skip or failure with a reason, never two), and the token appears in no log line.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tallyfy_sandbox.faults import FaultRule

FAULT_SECONDS = 8.0  # longer than the store's busy timeout (5 s): writes fail, not just wait
# A request already in flight when the fault begins (the held task above all) may still land.
SENT_GRACE = 3.0
SETTLE_TIMEOUT = 60.0
# A task the API has applied but answers this much later: its outcome reaches the daemon while
# the store is failing, so the fire is left `sending` and must be read back afterwards.
IN_FLIGHT_SECONDS = 2.0

HOLD_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
conn.close()
print("released", flush=True)
"""


def sandbox_count(rig: Any) -> int:
    return len(rig.sandbox.runs()) + len(rig.sandbox.tasks())


def start_firing(rig: Any, kit: SimpleNamespace, prefix: str) -> Any:
    """Two jobs (a task every second, a launch every 2 s) and a daemon that has fired both."""
    rig.apply_jobs(
        kit.job_toml(f"{prefix}-task", "* * * * * *", action="create_task"),
        kit.job_toml(f"{prefix}-launch", "*/2 * * * * *", action="launch_process"),
    )
    daemon = rig.daemon().start()
    kit.wait_until(
        lambda: len(rig.sandbox.tasks()) >= 2 and len(rig.sandbox.runs()) >= 1,
        20,
        what="the first fires",
    )
    return daemon


def hold_a_task_in_flight(rig: Any, kit: SimpleNamespace) -> None:
    """Make the next task be applied by the API but answered only `IN_FLIGHT_SECONDS`
    later, and return once it is applied: its fire is `sending`, and the daemon will try to
    record the outcome while the store is failing."""
    rig.sandbox.add_fault(
        FaultRule(kind="delay_after", path_contains="/tasks", seconds=IN_FLIGHT_SECONDS, count=1)
    )
    kit.wait_until(
        lambda: any(rule["fired"] for rule in rig.sandbox.faults.rules()),
        10,
        interval=0.02,
        what="a task held in flight",
    )


def log_lines_about(daemon: Any, *fragments: str) -> list[str]:
    return [
        line
        for line in daemon.log_text().splitlines()
        if any(fragment in line.lower() for fragment in fragments)
    ]


def finish_and_audit(rig: Any, daemon: Any) -> Any:
    """Let the history settle, check the daemon survived, audit every instant, stop it."""
    end = rig.settle(timeout=SETTLE_TIMEOUT)
    assert daemon.alive, f"the daemon died:\n{daemon.log_since_start()[-3000:]}"
    report = rig.audit(end)
    rig.stop_all()
    rig.finish(report)
    # A store fault is expected weather, not a bug: a one-line error, never a traceback.
    rig.assert_no_tracebacks()
    return report


@pytest.mark.slow
def test_a_store_locked_by_another_process_stops_claims_and_loses_nothing(
    rig: Any, kit: SimpleNamespace
) -> None:
    daemon = start_firing(rig, kit, "locked")
    db_path = rig.db_url.removeprefix("sqlite:///")

    hold_a_task_in_flight(rig, kit)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, db_path, str(FAULT_SECONDS)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        locked_at = time.monotonic()
        time.sleep(SENT_GRACE)
        sent_early_in_lock = sandbox_count(rig)
        # Counted again just before the holder lets go (the daemon resumes the moment it does).
        time.sleep(max(0.0, locked_at + FAULT_SECONDS - 0.5 - time.monotonic()))
        sent_during_lock = sandbox_count(rig) - sent_early_in_lock
        assert holder.wait(timeout=FAULT_SECONDS + 10) == 0
        released_after = time.monotonic() - locked_at
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    rig.figures.faults["exclusive_lock"] += 1
    rig.record_faults()
    rig.figures.extra.update(lock_seconds=round(released_after, 1))

    # Nothing reached the API while every write (a claim above all) was refused.
    assert sent_during_lock == 0
    assert daemon.alive, daemon.log_since_start()[-3000:]
    complaints = log_lines_about(daemon, "database is locked")
    assert complaints, "the daemon did not say that the store was locked"
    rig.figures.extra.update(log_lines_about_the_lock=len(complaints))

    report = finish_and_audit(rig, daemon)
    # Every instant of the locked stretch was caught up afterwards (catch_up = "all").
    assert report.sent > 0 and report.skipped == 0 and report.failed == 0
    catch_ups = [f for f in rig.store.history(limit=None) if str(f.trigger) == "catch_up"]
    assert len(catch_ups) >= FAULT_SECONDS - 6  # ~1 per second beyond the busy timeout


# -- a full disk -----------------------------------------------------------------------------------
TMPFS_SIZE = "8m"


@pytest.fixture
def small_disk_rig(
    tmp_path: Path, kit: SimpleNamespace, seed: int, request: pytest.FixtureRequest
) -> Iterator[Any]:
    """A rig whose SQLite store lives on a small tmpfs mounted for this test (root only)."""
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("the disk-full test mounts a tmpfs: CI runs as root")
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    rig = None
    try:
        url = f"sqlite:///{mount / 'state' / 'scheduler.db'}"
        rig = kit.Rig(tmp_path, url, kit.Figures(test=request.node.name, seed=seed))
        yield rig
    finally:
        if rig is not None:
            rig.close()  # SIGKILLs the daemons: nothing holds the mount any more
        subprocess.run(["umount", "-l", str(mount)], check=False)


def truncate_wal(db_path: Path) -> None:
    """Checkpoint the WAL into the database and truncate it to 0 bytes, so that the daemon's
    next write must grow the WAL file (on a full disk: SQLITE_FULL at once)."""
    conn = sqlite3.connect(db_path, timeout=10, isolation_level=None)
    try:
        for _ in range(50):
            busy, _log, _done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy:
                return
            time.sleep(0.05)
        raise AssertionError("could not truncate the WAL: readers kept it busy")
    finally:
        conn.close()


def fill(path: Path) -> int:
    """Write `path` until the file system has not one byte left; returns the bytes written."""
    written = 0
    with open(path, "wb", buffering=0) as f:
        for chunk in (1 << 20, 1 << 16, 1 << 12, 1):
            block = b"\0" * chunk
            while True:
                try:
                    n = f.write(block)  # unbuffered: a short write means the disk is full
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
                written += n or 0
                if n != chunk:
                    break
    return written


@pytest.mark.slow
def test_a_full_disk_stops_claims_and_after_freeing_space_nothing_is_lost(
    small_disk_rig: Any, kit: SimpleNamespace
) -> None:
    rig = small_disk_rig
    daemon = start_firing(rig, kit, "full")
    db_path = Path(rig.db_url.removeprefix("sqlite:///"))
    filler = db_path.parent.parent / "filler"

    hold_a_task_in_flight(rig, kit)
    truncate_wal(db_path)
    filled = fill(filler)
    full_at = time.monotonic()
    time.sleep(SENT_GRACE)
    sent_early_in_fault = sandbox_count(rig)
    time.sleep(FAULT_SECONDS - SENT_GRACE)
    sent_during_fault = sandbox_count(rig) - sent_early_in_fault
    filler.unlink()
    rig.figures.faults["disk_full"] += 1
    rig.record_faults()
    rig.figures.extra.update(full_seconds=round(time.monotonic() - full_at, 1), filler_bytes=filled)

    assert sent_during_fault == 0
    assert daemon.alive, daemon.log_since_start()[-3000:]
    complaints = log_lines_about(daemon, "database or disk is full")
    assert complaints, "the daemon did not say that the disk was full"
    rig.figures.extra.update(log_lines_about_the_full_disk=len(complaints))

    report = finish_and_audit(rig, daemon)
    assert report.sent > 0 and report.skipped == 0 and report.failed == 0
