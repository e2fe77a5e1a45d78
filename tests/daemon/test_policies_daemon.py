"""Issue 13's policies in the real daemon process (`python -m scheduler run`), real HTTP to the
sandbox, per-second schedules: the failure breaker pauses a job the API keeps rejecting and a
resume lets it fire again; `overlap = "skip"` skips while the task it created is open and
sends again once a person completes it; a held instant (`buffer_one`) survives `kill -9` and
is sent once, after the restart, when the task it waits for closes."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from daemon_helpers import DaemonEnv, wait_until, write_job

from scheduler.lifecycle import FireStatus
from scheduler.store import Fire, Store
from tallyfy_sandbox import SandboxServer

MISSING_TEMPLATE = "0123456789abcdef0123456789abcdef"  # the sandbox has no such template


def job_entry(denv: DaemonEnv, job_id: str) -> dict[str, Any]:
    listing = json.loads(denv.cli("jobs", "list", "--json").stdout)
    (entry,) = [job for job in listing["jobs"] if job["id"] == job_id]
    return entry


def statuses(store: Store, job_id: str) -> list[FireStatus]:
    fires = sorted(store.history(job_id, limit=None), key=lambda f: f.scheduled_for)
    return [f.status for f in fires]


@pytest.mark.slow
def test_the_breaker_pauses_a_rejected_job_in_the_daemon_and_a_resume_lets_it_fire(
    denv: DaemonEnv, dstore: Store, sandbox: SandboxServer, daemons: Any
) -> None:
    job = write_job(
        denv.workdir / "jobs",
        "rejected",
        "* * * * * *",
        action="launch",
        pause_after_failures=2,
        action_keys={"checklist_id": MISSING_TEMPLATE},
    )
    denv.apply(job)
    daemon = daemons().start().wait_started()
    entry = wait_until(
        lambda: (e := job_entry(denv, "rejected"))["paused_by"] == "breaker" and e,
        20,
        message="paused by the breaker",
    )
    assert entry["enabled"] is False and "2 consecutive fires rejected" in entry["pause_reason"]
    # An instant claimed before the breaker tripped is still sent, as after `jobs pause`.
    time.sleep(1.5)
    failed = statuses(dstore, "rejected").count(FireStatus.FAILED)
    assert 2 <= failed <= 3
    time.sleep(2.5)  # paused: nothing more is claimed
    assert statuses(dstore, "rejected").count(FireStatus.FAILED) == failed

    assert denv.cli("jobs", "resume", "rejected").returncode == 0
    wait_until(
        lambda: statuses(dstore, "rejected").count(FireStatus.FAILED) > failed,
        15,
        message="fires again after the resume",
    )
    assert daemon.term() == 0


@pytest.mark.slow
def test_skip_while_the_task_is_open_then_send_once_it_is_completed(
    denv: DaemonEnv, dstore: Store, sandbox: SandboxServer, daemons: Any
) -> None:
    job = write_job(denv.workdir / "jobs", "follow", "* * * * * *", overlap="skip")
    denv.apply(job)
    daemon = daemons().start().wait_started()

    def overlap_skips() -> list[Fire]:
        # Not the catch-up skip of an instant missed between `apply` and the start.
        return [
            f
            for f in dstore.history("follow", limit=None)
            if f.status is FireStatus.SKIPPED and (f.error or "").startswith("overlap:")
        ]

    skipped = wait_until(overlap_skips, 15, message="a skip by overlap")
    (first,) = sandbox.tasks()
    assert all(f"task {first['id']}" in (f.error or "") for f in skipped)
    assert len(sandbox.tasks()) == 1

    sandbox.set_task_status(first["id"], "completed")
    wait_until(lambda: len(sandbox.tasks()) == 2, 15, message="sent again")
    assert daemon.term() == 0
    sent = [f for f in dstore.history("follow", limit=None) if f.status is FireStatus.SUCCEEDED]
    assert sorted(f.remote_id for f in sent) == sorted(t["id"] for t in sandbox.tasks())


@pytest.mark.slow
def test_a_held_instant_survives_kill_9_and_is_sent_once_after_the_restart(
    denv: DaemonEnv, dstore: Store, sandbox: SandboxServer, daemons: Any
) -> None:
    job = write_job(
        denv.workdir / "jobs",
        "follow",
        "* * * * * *",
        overlap="buffer_one",
        overlap_check_every="1s",
    )
    denv.apply(job)
    first_daemon = daemons().start().wait_started()
    wait_until(lambda: FireStatus.HELD in statuses(dstore, "follow"), 15, message="held")
    first_daemon.kill()
    (first,) = sandbox.tasks()
    (held,) = [f for f in dstore.history("follow", limit=None) if f.status is FireStatus.HELD]

    second = daemons(name="second").start().wait_started()
    time.sleep(2)  # the first task is still open: still held (or replaced by a newer instant)
    assert len(sandbox.tasks()) == 1
    sandbox.set_task_status(first["id"], "completed")
    wait_until(lambda: len(sandbox.tasks()) >= 2, 15, message="the held instant sent")
    assert second.term() == 0

    fires = {f.scheduled_for: f for f in dstore.history("follow", limit=None)}
    titles = [t["title"] for t in sandbox.tasks()]
    assert len(titles) == len(set(titles))  # no instant sent twice
    sent = [f for f in fires.values() if f.status is FireStatus.SUCCEEDED]
    assert len(sent) == len(titles)
    # The instant held at the kill was sent, or replaced by a newer one that was.
    assert fires[held.scheduled_for].status in (FireStatus.SUCCEEDED, FireStatus.SKIPPED)
    assert not [f for f in fires.values() if f.status is FireStatus.HELD and f.id == held.id]
