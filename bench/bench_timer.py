"""Why the timer holds one APScheduler job over a heap (docs/design.md, "The timer").

Two ways to let APScheduler 3 wake the daemon for 100,000 stored jobs, through its documented
surface only: (a) one APScheduler `Job` per stored job, added with `add_job` and a trigger per
job (each asks the schedule engine for its next fire time); (b) one heap entry per stored job
(next fire time, job id), with a single APScheduler job woken at the heap's top. Each is built
in a fresh process; we time the build and read the memory it took. The trigger in (a) is as
cheap as can be (a fixed next fire time) so the figure is APScheduler's own cost.

    .venv/bin/python -m bench.bench_timer [--jobs 100000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Any

from bench.common import print_table

CHILD = """
import gc, heapq, json, resource, sys, time
from datetime import UTC, datetime, timedelta
jobs, way = int(sys.argv[1]), sys.argv[2]
base = datetime(2030, 1, 1, tzinfo=UTC)
times = [base + timedelta(seconds=(i * 7919) % 86400) for i in range(jobs)]
def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
gc.collect()
before = rss()
started = time.perf_counter()
if way == "aps":
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.base import BaseTrigger
    class Fixed(BaseTrigger):
        def __init__(self, when): self.when = when
        def get_next_fire_time(self, previous, now): return None if previous else self.when
    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.start(paused=True)
    for i, when in enumerate(times):
        scheduler.add_job(print, trigger=Fixed(when), id=f"job-{i}", name=f"job-{i}")
    first = scheduler.get_jobs()[0].next_run_time
else:
    heap = [(when.timestamp(), f"job-{i}") for i, when in enumerate(times)]
    heapq.heapify(heap)
    first = heap[0]
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "mb": rss() - before}))
"""


def measure(jobs: int, way: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(jobs), way],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    args = parser.parse_args(argv)
    aps, heap = measure(args.jobs, "aps"), measure(args.jobs, "heap")
    print(f"{args.jobs} stored jobs handed to the timer")
    print_table(
        [
            ("one APScheduler job each", f"{aps['seconds']:.2f} s, {aps['mb']:.0f} MB"),
            ("one heap entry each", f"{heap['seconds']:.3f} s, {heap['mb']:.0f} MB"),
        ]
    )
    return {"aps": aps, "heap": heap}


if __name__ == "__main__":
    main()
