"""Several daemons on one PostgreSQL store, killed and restarted at random.

Three daemon processes share a fresh PostgreSQL schema (guarantees.md, "Several daemons, one
store"): every instant is claimed by exactly one of them (INSERT on the unique key), and the
open fires of a daemon killed with SIGKILL are adopted by another (its pid is gone, so it is
dead at once) and reconciled. The sandbox's `latency` and `delay_after` faults keep requests
in flight long enough for kills to land mid-request. The audit at the end checks every
(job, instant): exactly one launch or task, or a recorded skip or failure with its reason.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from scheduler.lifecycle import FireStatus
from tallyfy_sandbox.faults import FaultRule

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

DAEMONS = 3
RUN_SECONDS = 40.0


def test_three_daemons_on_one_store_send_each_instant_once_through_random_kills(
    pg_rig: Any, rng: Any, soak: int
) -> None:
    rig = pg_rig
    rig.apply_jobs(
        rig.job_toml("many-launch-1s", "* * * * * *"),
        rig.job_toml("many-task-1s", "* * * * * *", action="create_task"),
        rig.job_toml("many-launch-2s", "*/2 * * * * *"),
        rig.job_toml("many-task-2s", "1-59/2 * * * * *", action="create_task"),
    )
    rig.sandbox.add_fault(
        FaultRule("latency", seconds=0.3, probability=0.3, seed=rng.randrange(2**31))
    )
    rig.sandbox.add_fault(
        FaultRule("delay_after", seconds=0.5, probability=0.3, seed=rng.randrange(2**31))
    )
    daemons = [rig.daemon(f"d{i + 1}") for i in range(DAEMONS)]
    for d in daemons:
        d.start()

    deadline = time.monotonic() + RUN_SECONDS * soak
    while time.monotonic() < deadline:
        time.sleep(rng.uniform(0.5, 2.5))
        victim = rng.choice(daemons)
        if victim.alive:
            victim.kill()
            rig.figures.kills[f"d{daemons.index(victim) + 1}"] += 1
        # Restart some of the dead at once, leave others down for a while (all may be down).
        for d in daemons:
            if not d.alive and rng.random() < 0.5:
                d.start(wait_ready=rng.random() < 0.5)

    rig.record_faults()
    for d in daemons:
        if not d.alive:
            d.start()
    rig.figures.restarts = sum(d.starts for d in daemons) - DAEMONS
    end = rig.settle()
    rig.stop_all()
    report = rig.audit(end)
    rig.assert_no_tracebacks()
    claimers = {f.claimed_by for f in rig.store.history(status=FireStatus.SUCCEEDED, limit=None)}
    rig.figures.extra["daemons_that_sent"] = len(claimers)
    rig.finish(report)
    assert sum(rig.figures.kills.values()) >= 10
    assert len(claimers) > DAEMONS, "the work was not shared among the daemons and restarts"
