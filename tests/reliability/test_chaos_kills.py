"""Chaos: SIGKILL the daemon at random moments, restart it, and audit every instant.

Four jobs on 1-2 s schedules (both actions, catch_up = "all") run against the sandbox while a
real daemon process (`python -m scheduler --db URL run`) is killed with SIGKILL at least 30
times, at moments chosen by a seeded RNG (printed; TALLYFY_RELIABILITY_SEED replays it):

- `random`: anywhere in the first two seconds after it reported ready;
- `starting`: before it is ready (during adoption of open fires and catch-up planning);
- `in_flight`: while a POST sits in the sandbox's `latency` sleep (sent, not yet applied);
- `after_apply`: while a POST sits in the sandbox's `delay_after` sleep (the API created the
  launch or task, the daemon has not heard, so it cannot have recorded it).

Sometimes the daemon stays down for a moment, so catch-up runs too. At the end the faults are
lifted, the daemon settles (no open fires, every instant up to now accounted for), stops with
SIGTERM, and the audit checks every (job, instant): exactly one launch or task, or a recorded
skip or failure with its reason; never both, never two.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from tallyfy_sandbox.faults import FaultRule

pytestmark = pytest.mark.slow

CI_KILLS = 30
# Distinct sleep lengths tell the probe which window a request is in.
LATENCY_SECONDS = 0.35  # before the sandbox applies the POST
DELAY_AFTER_SECONDS = 0.6  # after it applied the POST, before it answers
FAULT_PROBABILITY = 0.35
MOMENTS = ("random", "starting", "in_flight", "after_apply")


class SleepProbe:
    """Sees the sandbox's fault sleeps (its `sleep` seam): which window a request is in now."""

    def __init__(self, app: Any) -> None:
        self._real_sleep = app.sleep
        self._events = {"in_flight": threading.Event(), "after_apply": threading.Event()}
        app.sleep = self.sleep

    def sleep(self, seconds: float) -> None:
        kind = "in_flight" if seconds == LATENCY_SECONDS else "after_apply"
        event = self._events[kind]
        event.set()
        try:
            self._real_sleep(seconds)
        finally:
            event.clear()

    def wait(self, kind: str, timeout: float) -> bool:
        """Block until some request is in window `kind`; False after `timeout` seconds."""
        return self._events[kind].wait(timeout)


def test_each_instant_is_sent_once_across_thirty_sigkills(rig: Any, rng: Any, soak: int) -> None:
    rig.apply_jobs(
        rig.job_toml("chaos-launch-1s", "* * * * * *"),
        rig.job_toml("chaos-task-1s", "* * * * * *", action="create_task"),
        rig.job_toml("chaos-launch-2s", "*/2 * * * * *"),
        rig.job_toml("chaos-task-2s", "1-59/2 * * * * *", action="create_task"),
    )
    seed = rng.randrange(2**31)
    rig.sandbox.add_fault(
        FaultRule("latency", seconds=LATENCY_SECONDS, probability=FAULT_PROBABILITY, seed=seed)
    )
    rig.sandbox.add_fault(
        FaultRule(
            "delay_after",
            seconds=DELAY_AFTER_SECONDS,
            probability=FAULT_PROBABILITY,
            seed=seed + 1,
        )
    )
    probe = SleepProbe(rig.sandbox.app)
    daemon = rig.daemon()

    # Every kind of moment equally often, in a seeded random order.
    moments = [MOMENTS[i % len(MOMENTS)] for i in range(CI_KILLS * soak)]
    rng.shuffle(moments)
    for moment in moments:
        if moment == "starting":
            daemon.start(wait_ready=False)
            time.sleep(rng.uniform(0.2, 1.2))
        else:
            daemon.start()
            if moment == "random":
                time.sleep(rng.uniform(0.0, 2.0))
            elif not probe.wait(moment, timeout=4.0):
                moment += "_missed"  # no request reached that window in time: still a kill
            else:
                time.sleep(rng.uniform(0.0, 0.15))
        daemon.kill()
        rig.figures.kills[moment] += 1
        if rng.random() < 0.25:
            time.sleep(rng.uniform(0.5, 3.0))  # down for a while: instants to catch up

    rig.record_faults()
    daemon.start()
    rig.figures.restarts = daemon.starts
    end = rig.settle()
    rig.stop_all()
    report = rig.audit(end)
    rig.assert_no_tracebacks()
    rig.finish(report)
    assert report.sent > 0
    # The after-apply kills left fires that only a read-back could settle.
    assert rig.evidence()["reconciled"] > 0
