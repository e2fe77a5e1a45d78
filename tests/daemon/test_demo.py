"""`make demo` (`tallyfy-scheduler demo`): the example jobs fire every few seconds, printed."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from daemon_helpers import REPO, wait_until
from prometheus_client.parser import text_string_to_metric_families

LINE = re.compile(
    r"^succeeded +(?P<job>\S+) +scheduled (?P<at>\d\d:\d\d:\d\dZ) +remote id (?P<id>[0-9a-f]{32})"
    r" +deadline (?P<deadline>.+)$",
    re.MULTILINE,
)


ALERT = re.compile(
    r"^ALERT +failure +\[tallyfy-scheduler\] failed: broken-kickoff +Reason: HTTP 422: .*"
    r"Client name is required",
    re.MULTILINE,
)


@pytest.mark.slow
def test_the_demo_prints_each_fire_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    out = tmp_path / "demo.stdout"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALLYFY_")}
    env.update(TMPDIR=str(tmp_path), PYTHONUNBUFFERED="1")
    with open(out, "wb") as stdout, open(tmp_path / "demo.stderr", "wb") as stderr:
        demo = subprocess.Popen(
            [sys.executable, "-m", "scheduler", "demo"],
            cwd=REPO,
            env=env,
            stdout=stdout,
            stderr=stderr,
        )
    try:
        fired = wait_until(
            lambda: (
                {m["job"] for m in LINE.finditer(out.read_text())}
                >= {"weekly-client-review", "daily-approvals-follow-up"}
            ),
            20,
            message="a launch and a follow-up task printed",
        )
        assert fired
        # The job that fails on purpose: its incident reaches the terminal as an alert line.
        wait_until(
            lambda: ALERT.search(out.read_text()),
            30,
            message="an alert line for the job that fails on purpose",
        )
        dashboard = re.search(r"^dashboard: (http://127\.0\.0\.1:\d+/) ", out.read_text(), re.M)
        assert dashboard is not None, "the demo prints where its dashboard is"
        jobs_page = requests.get(dashboard[1], timeout=10)
        assert jobs_page.status_code == 200 and "Every 10 seconds" in jobs_page.text
        metrics = re.search(r"^metrics: (http://127\.0\.0\.1:\d+/metrics) ", out.read_text(), re.M)
        assert metrics is not None, "the demo prints where its metrics are"
        page = requests.get(metrics[1], timeout=10).text
        outcomes = {
            (sample.labels["job"], sample.labels["outcome"])
            for family in text_string_to_metric_families(page)
            for sample in family.samples
            if sample.name == "tallyfy_scheduler_fires_total"
        }
        assert ("daily-approvals-follow-up", "succeeded") in outcomes
        assert ("broken-kickoff", "failed") in outcomes  # the job that fails on purpose
        demo.send_signal(signal.SIGINT)
        assert demo.wait(15) == 0
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait(10)
    text = out.read_text()
    assert text.startswith("sandbox: http://127.0.0.1:")
    assert re.search(r"^sandbox created \d+ runs and \d+ tasks$", text, re.MULTILINE)
    for match in LINE.finditer(text):
        if match["job"] == "daily-approvals-follow-up":
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", match["deadline"])
    assert not list(tmp_path.glob("tallyfy-scheduler-demo-*"))  # its store is cleaned up
    assert "Traceback" not in (tmp_path / "demo.stderr").read_text()
