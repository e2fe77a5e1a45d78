"""Clock: a wall-clock step forward, a step backward, and a suspended process.

The steps move only the daemon's wall clock: it runs under libfaketime (LD_PRELOAD) with an
offset file it re-reads on every clock call (FAKETIME_NO_CACHE=1) and a real monotonic clock
(FAKETIME_DONT_FAKE_MONOTONIC=1), which is what an NTP step or a restored VM looks like. The
sandbox stamps `created_at` through the same offset (`FakeWallClock`), so both sides agree on
the time, as a real API would after the host's clock was corrected. The suspend is real:
SIGSTOP, wait several intervals, SIGCONT.

Each test audits every instant (exactly one launch/task, or a recorded skip or failure), then
checks the catch-up policy (guarantees.md, "Catch-up") on the instants the stall jumped over.
An instant that comes due less than the stall threshold (5 s) before the daemon notices may
fire as a live one, so the policy checks leave out the last few seconds of each gap.
"""

from __future__ import annotations

import signal
import time
from datetime import datetime, timedelta
from itertools import takewhile
from typing import Any

import pytest

from scheduler.catchup import REASON_OUTSIDE_WINDOW, REASON_POLICY_LATEST, REASON_POLICY_NONE
from scheduler.clock import utc_iso

pytestmark = pytest.mark.slow

# Instants this close to the end of a gap may be fired as live (the daemon's stall threshold
# is 5 s; one more second covers the time it takes to notice).
LIVE_SLACK = timedelta(seconds=6)
# A live instant is sent within this long of its time (the suite's sandbox answers in ms).
PROMPT = timedelta(seconds=2)
CATCH_UP_WINDOW = timedelta(seconds=20)
NOTICE_SLACK = timedelta(seconds=3)  # how long the daemon may take to notice a step


def _in_gap(outcomes: dict[datetime, str], start: datetime, end: datetime) -> dict[datetime, str]:
    return {at: verdict for at, verdict in outcomes.items() if start < at <= end}


def _sent_before(gap: dict[datetime, str], cutoff: datetime) -> list[datetime]:
    return [at for at, verdict in gap.items() if verdict == "sent" and at <= cutoff]


def _wait_for_log(rig: Any, daemon: Any, needle: str, timeout: float = 15.0) -> None:
    rig.kit_wait(lambda: needle in daemon.log_since_start(), timeout, what=repr(needle))


def test_a_clock_step_forward_of_hours_is_caught_up_per_policy(faketime_rig: Any) -> None:
    rig = faketime_rig
    window = f"{int(CATCH_UP_WINDOW.total_seconds())}s"
    rig.apply_jobs(
        rig.job_toml("fwd-all", "*/2 * * * * *", catch_up="all", catch_up_window=window),
        rig.job_toml("fwd-latest", "*/2 * * * * *", catch_up="latest", action="create_task"),
        rig.job_toml("fwd-none", "* * * * * *", catch_up="none"),
    )
    daemon = rig.daemon().start()
    time.sleep(3.0)
    before = rig.now()
    rig.fake_clock.step(timedelta(hours=3))
    after = rig.now()
    _wait_for_log(rig, daemon, "stall detected")
    time.sleep(3.0)
    end = rig.settle()
    rig.stop_all()
    report = rig.audit(end)
    rig.figures.extra["step"] = "+3h"
    rig.finish(report)

    everything = _in_gap(report.outcomes["fwd-all"], before, after)
    # The window ends when the daemon notices (up to a second or two after the step).
    recent = {at: v for at, v in everything.items() if at > after - CATCH_UP_WINDOW + NOTICE_SLACK}
    older = {at: v for at, v in everything.items() if at <= after - CATCH_UP_WINDOW - LIVE_SLACK}
    assert set(recent.values()) == {"sent"}, "catch_up = all fires each missed instant"
    assert set(older.values()) == {"skipped"}
    assert {report.rows["fwd-all"][at].error for at in older} == {REASON_OUTSIDE_WINDOW}
    assert len(older) > 5000  # three hours of a 2 s schedule, skipped as a range

    latest = _in_gap(report.outcomes["fwd-latest"], before, after)
    assert len(_sent_before(latest, after - LIVE_SLACK)) <= 1, "latest fires only the newest"
    assert list(latest.values()).count("skipped") > 5000
    assert REASON_POLICY_LATEST in {report.rows["fwd-latest"][at].error for at in latest}

    none = _in_gap(report.outcomes["fwd-none"], before, after)
    assert _sent_before(none, after - LIVE_SLACK) == [], "catch_up = none fires nothing missed"
    assert REASON_POLICY_NONE in {report.rows["fwd-none"][at].error for at in none}


def test_a_clock_step_backward_never_fires_an_instant_again(faketime_rig: Any) -> None:
    rig = faketime_rig
    rig.apply_jobs(
        rig.job_toml("back-launch", "* * * * * *"),
        rig.job_toml("back-task", "*/2 * * * * *", action="create_task"),
    )
    daemon = rig.daemon().start()
    time.sleep(4.0)
    top = rig.now()
    rig.fake_clock.step(timedelta(seconds=-60))
    _wait_for_log(rig, daemon, "wall clock stepped back")
    time.sleep(6.0)  # the daemon lives through instants it already fired, a minute ago
    reached = rig.now()
    created = rig.sandbox.runs() + rig.sandbox.tasks()
    items = rig.kit_items(rig.sandbox.runs(), rig.sandbox.tasks())
    assert all(at <= top for (_job, at) in _instants(items)), "fired an instant after `top`"
    # Back to the real time: the minute the clock "lost" is now a gap to catch up (all).
    rig.fake_clock.set_offset(timedelta(0))
    _wait_for_log(rig, daemon, "stall detected")
    restored = rig.now()
    time.sleep((timedelta(seconds=3) + PROMPT).total_seconds())
    # From then on the daemon fires on time again: every instant due 1-3 s after it noticed
    # is in the sandbox within PROMPT of its time (not a minute later, as catch-up).
    due = [
        utc_iso(at)
        for at in takewhile(
            lambda at: at <= restored + timedelta(seconds=3),
            rig.kit_schedule("back-launch").iter_after(restored + timedelta(seconds=1)),
        )
    ]
    items = rig.kit_items(rig.sandbox.runs(), rig.sandbox.tasks())
    late = [at for at in due if ("back-launch", at) not in items]
    assert not late, f"live firing did not resume after the clock came back: {late} not sent"
    end = rig.settle()
    rig.stop_all()
    report = rig.audit(end)
    rig.figures.extra["step"] = "-60s then +60s"
    rig.figures.extra["items_at_step_back"] = len(created)
    rig.finish(report)
    assert reached < top
    assert report.skipped == report.failed == 0


def _instants(items: dict[tuple[str, str], list[str]]) -> list[tuple[str, datetime]]:
    return [(job, datetime.fromisoformat(at.replace("Z", "+00:00"))) for job, at in items]


def test_a_suspended_daemon_catches_up_per_policy_after_sigcont(rig: Any) -> None:
    rig.apply_jobs(
        rig.job_toml("sus-all", "* * * * * *", catch_up="all"),
        rig.job_toml("sus-latest", "*/2 * * * * *", catch_up="latest", action="create_task"),
        rig.job_toml("sus-none", "* * * * * *", catch_up="none"),
    )
    daemon = rig.daemon().start()
    time.sleep(3.0)
    stopped = rig.now()
    daemon.signal(signal.SIGSTOP)
    time.sleep(12.0)  # a dozen 1 s intervals, well past the 5 s stall threshold
    daemon.signal(signal.SIGCONT)
    resumed = rig.now()
    _wait_for_log(rig, daemon, "stall detected")
    time.sleep(3.0)
    end = rig.settle()
    rig.stop_all()
    report = rig.audit(end)
    rig.figures.extra["suspended_seconds"] = round((resumed - stopped).total_seconds(), 1)
    rig.finish(report)

    cutoff = resumed - LIVE_SLACK
    everything = _in_gap(report.outcomes["sus-all"], stopped, resumed)
    assert set(everything.values()) == {"sent"}, "catch_up = all fires each missed instant"
    latest = _in_gap(report.outcomes["sus-latest"], stopped, resumed)
    assert len(_sent_before(latest, cutoff)) <= 1
    assert "skipped" in latest.values()
    none = _in_gap(report.outcomes["sus-none"], stopped, resumed)
    assert _sent_before(none, cutoff) == []
    assert "skipped" in none.values()
