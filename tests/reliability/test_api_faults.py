"""API faults: every fault the sandbox can inject, alone and mixed, against a real daemon.

Each test runs a daemon process (`[tallyfy] timeout = "1s"`) with two 1 s jobs (one launch,
one task) while the sandbox misbehaves, lifts the faults, lets the history settle, stops the
daemon and audits every (job, instant): exactly one launch or task, or a recorded failure or
skip with its reason. Each test also checks the fault really bit (its rule fired, and the
recovery path it forces shows in the daemon's log or history), so a test cannot pass by
accident of timing.
"""

from __future__ import annotations

import json
import signal
import time
from dataclasses import dataclass
from typing import Any

import pytest

from scheduler.lifecycle import FireStatus
from tallyfy_sandbox.faults import FaultRule

pytestmark = pytest.mark.slow

READ_TIMEOUT = "1s"
FAULTY_SECONDS = 8.0  # how long each single-fault test runs with its fault active
PROBABILITY = 0.4
OUTAGE_SECONDS = 30.0


@dataclass(frozen=True)
class FaultCase:
    """One fault kind: its rule, and the log event that proves the daemon took that path."""

    rule: FaultRule
    evidence: str


SINGLE_FAULTS = [
    pytest.param(
        # Past the 1 s read timeout, but applied before the first read-back (1 s later).
        FaultCase(FaultRule("latency", seconds=1.4, probability=PROBABILITY), "reconciled"),
        id="latency-past-read-timeout",
    ),
    pytest.param(
        FaultCase(FaultRule("error_before", status=503, probability=PROBABILITY), "resent"),
        id="5xx-before-apply",
    ),
    pytest.param(
        FaultCase(FaultRule("error_after", status=500, probability=PROBABILITY), "reconciled"),
        id="5xx-after-apply",
    ),
    pytest.param(
        FaultCase(FaultRule("drop_after", probability=PROBABILITY), "reconciled"),
        id="dropped-after-apply",
    ),
    pytest.param(
        FaultCase(FaultRule("rate_limit", retry_after=1, probability=PROBABILITY), "retrying"),
        id="429-with-retry-after",
    ),
    pytest.param(
        FaultCase(FaultRule("rate_limit", probability=PROBABILITY), "retrying"),
        id="429-without-retry-after",
    ),
]


def _start(rig: Any) -> Any:
    rig.write_config({"tallyfy": {"timeout": READ_TIMEOUT}})
    rig.apply_jobs(
        rig.job_toml("faults-launch", "* * * * * *"),
        rig.job_toml("faults-task", "* * * * * *", action="create_task"),
    )
    return rig.daemon().start()


def _settle_stop_audit(rig: Any) -> Any:
    rig.record_faults()
    end = rig.settle()
    rig.stop_all()
    report = rig.audit(end)
    rig.assert_no_tracebacks()
    rig.figures.extra["log_events"] = dict(+rig.evidence())
    rig.figures.extra["resent"] = _resent(rig)
    return report


def _resent(rig: Any) -> int:
    """Succeeded fires that needed more than one POST (the first certainly did not apply)."""
    return sum(
        1 for f in rig.store.history(status=FireStatus.SUCCEEDED, limit=None) if f.attempts > 1
    )


@pytest.mark.parametrize("case", SINGLE_FAULTS)
def test_each_fault_alone_leaves_every_instant_sent_exactly_once(
    rig: Any, case: FaultCase, seed: int, soak: int
) -> None:
    _start(rig)
    rig.sandbox.add_fault(FaultRule(**{**case.rule.to_dict(), "seed": seed}))
    time.sleep(FAULTY_SECONDS * soak)
    report = _settle_stop_audit(rig)
    rig.finish(report)
    assert rig.figures.faults[case.rule.kind] > 0, "the fault never fired"
    evidence = (
        rig.figures.extra["resent"]
        if case.evidence == "resent"
        else (rig.evidence()[case.evidence])
    )
    assert evidence > 0, f"no sign of the {case.evidence} path in the daemon's log"
    assert report.failed == 0, "a transient fault made a fire fail for good"


def test_faults_mixed_at_random_leave_every_instant_sent_exactly_once(
    rig: Any, rng: Any, soak: int
) -> None:
    _start(rig)
    candidates = [
        FaultRule("latency", seconds=1.4),
        FaultRule("latency", method="GET", seconds=0.3),
        FaultRule("error_before", status=503),
        FaultRule("error_before", method="GET", status=502),
        FaultRule("error_after", status=500),
        FaultRule("error_after", status=504),
        FaultRule("drop_after"),
        FaultRule("delay_after", seconds=0.5),
        FaultRule("rate_limit", retry_after=1),
        FaultRule("rate_limit"),
    ]
    deadline = time.monotonic() + 20.0 * soak
    while time.monotonic() < deadline:
        # A new random mix every few seconds: rules, order and odds all drawn from the seed.
        rig.record_faults()
        for rule in rng.sample(candidates, rng.randint(2, len(candidates))):
            rig.sandbox.add_fault(
                FaultRule(
                    **{
                        **rule.to_dict(),
                        "probability": round(rng.uniform(0.05, 0.3), 2),
                        "seed": rng.randrange(2**31),
                    }
                )
            )
        time.sleep(rng.uniform(2.0, 4.0))
    report = _settle_stop_audit(rig)
    rig.finish(report)
    assert len(rig.figures.faults) >= 5, rig.figures.faults


def test_a_thirty_second_outage_is_caught_up_without_duplicates(rig: Any, soak: int) -> None:
    _start(rig)
    time.sleep(2.0)
    # Every request, reads included, answered 503 (not applied) for the whole outage.
    rig.sandbox.add_fault(FaultRule("error_before", method=None, status=503))
    time.sleep(OUTAGE_SECONDS / 3)
    # guarantees.md: "API unreachable: ... the fire stays uncertain and shows in status".
    assert _status(rig)["uncertain"], "no uncertain fire in status during the outage"
    time.sleep(OUTAGE_SECONDS * soak - OUTAGE_SECONDS / 3)
    during = len(rig.sandbox.runs()) + len(rig.sandbox.tasks())
    rig.record_faults()
    report = _settle_stop_audit(rig)
    rig.finish(report)
    assert rig.figures.faults["error_before"] > 2 * OUTAGE_SECONDS  # both jobs kept trying
    assert report.failed == 0, "an instant of the outage was given up"
    assert len(rig.sandbox.runs()) + len(rig.sandbox.tasks()) > during  # caught up afterwards


def _status(rig: Any) -> dict[str, Any]:
    return json.loads(rig.cli("status", "--json").stdout)


def test_an_expired_token_holds_fires_until_sighup_brings_the_renewed_one(rig: Any) -> None:
    daemon = _start(rig)
    renewed = rig.TOKEN + "-renewed"
    time.sleep(2.0)
    rig.sandbox.expire_token(rig.TOKEN)
    expired_at = rig.now()

    def auth_failures() -> list[Any]:
        # Held, not burnt: fires refused with 401 wait (`retrying`) for a renewed token.
        return [
            f
            for f in rig.store.history(status=FireStatus.RETRYING, limit=None)
            if f.http_status == 401
        ]

    rig.kit_wait(lambda: len(auth_failures()) >= 4, 20, what="fires waiting after HTTP 401")
    held = len(auth_failures())
    assert _status(rig)["credentials_problem"] is True
    assert "credentials rejected" in daemon.log_since_start()

    # The operator renews the token: the file the daemon reads it from, then SIGHUP.
    rig.sandbox.add_token(renewed)
    rig.token_file.write_text(renewed + "\n", encoding="utf-8")
    daemon.signal(signal.SIGHUP)
    fixed_at = rig.now()

    def succeeding_again() -> bool:
        fresh = [
            f
            for f in rig.store.history(status=FireStatus.SUCCEEDED, limit=None)
            if f.scheduled_for > fixed_at
        ]
        return len(fresh) >= 4

    rig.kit_wait(succeeding_again, 20, what="fires succeeding with the renewed token")
    # Once newer fires bury the failures, status stops reporting a credentials problem.
    rig.kit_wait(
        lambda: _status(rig)["credentials_problem"] is False, 30, what="credentials_problem off"
    )
    report = _settle_stop_audit(rig)
    rig.figures.extra["auth_held"] = held
    rig.finish(report)
    # Every instant of the outage was sent once the token was renewed; none was given up.
    assert report.failed == 0 and held > 0
    assert auth_failures() == []
    assert expired_at < fixed_at
    assert renewed not in rig.logs()
