"""Two commits, measured back to back on this host: start-up, the unlimited burst, idle.

The host is shared and noisy, so a figure of one commit alone says little; this runs the same
measurements for an old and a new checkout, alternating (old, new, old, new, ...), and reports
per figure the median and the spread (min-max) of each, and the ratio of the medians. CPU
seconds (the daemon process's utime + stime) are steadier than wall time; both are shown.

Each checkout needs its own venv. By default the daemon under test is `<python> -m scheduler
run` and the stores, the sandbox and the audits are this checkout's; when the two commits' store
schemas differ (an old daemon refuses a newer store), `--each-in-its-checkout` runs each side's
measurement with its own checkout's bench code, in a process of its own (the old checkout must
have this module's `*_figures` functions: any commit since issue 9):

    git worktree add /tmp/old <commit> && (cd /tmp/old && make venv)
    .venv/bin/python -m bench.compare --old /tmp/old/.venv/bin/python --runs 3
    .venv/bin/python -m bench.compare --old ... --only startup --jobs 100000

Figures: `startup` (100,000 varied jobs applied a minute before: spawn -> READY=1, CPU
seconds at READY, peak RSS; and, once, the naive loader of `bench_startup --naive`),
`burst` (10,000 jobs due in one second, no effective rate limit: fires/s, CPU ms per fire,
audit), `idle` (1,000 hourly jobs, 30 s: CPU seconds).
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import bench_burst, bench_idle, bench_startup
from bench.common import fill_store, print_table, varied_documents, workdir

Measure = Callable[[int], dict[str, float]]


def _with_python(python: str, measure: Callable[[], dict[str, float]]) -> dict[str, float]:
    os.environ["BENCH_DAEMON_PYTHON"] = python
    try:
        return measure()
    finally:
        del os.environ["BENCH_DAEMON_PYTHON"]


def _in_checkout(python: str, figures: str, args: Sequence[Any]) -> Measure:
    """`figures(folder, *args)(run)` measured by `python`'s own checkout, in a process of its
    own: the store, the sandbox and the audit are that commit's (module docstring)."""
    checkout = Path(python).parent.parent.parent  # <checkout>/.venv/bin/python, unresolved
    script = (
        "import json, sys\n"
        "from bench import compare\n"
        "from bench.common import workdir\n"
        "with workdir('side') as folder:\n"
        f"    got = compare.{figures}(folder, *{list(args)!r})(int(sys.argv[1]))\n"
        "print('FIGURES ' + json.dumps(got))\n"
    )

    def measure(run: int) -> dict[str, float]:
        env = {**os.environ, "BENCH_DAEMON_PYTHON": python}
        done = subprocess.run(
            [python, "-c", script, str(run)],
            cwd=checkout,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        lines = [ln for ln in done.stdout.splitlines() if ln.startswith("FIGURES ")]
        if done.returncode != 0 or not lines:
            raise RuntimeError(f"{checkout}: {figures} failed:\n{done.stderr[-2000:]}")
        got: dict[str, float] = json.loads(lines[-1].removeprefix("FIGURES "))
        return got

    return measure


def startup_figures(folder: Path, jobs: int) -> Callable[[int], dict[str, float]]:
    template = folder / "template.db"
    fill_store(f"sqlite:///{template}", varied_documents(jobs), datetime.now(UTC))

    def measure(run: int) -> dict[str, float]:
        url = bench_startup.fresh_copy(template, "measured", bench_startup.DOWNTIME)
        got = bench_startup.measure_process(url, folder)
        Path(url.removeprefix("sqlite:///")).unlink()
        return {
            "READY s": got["ready_s"],
            "CPU s at READY": got["cpu_at_ready_s"],
            "peak RSS MB": got["peak_rss_mb"],
        }

    return measure


def burst_figures(folder: Path, jobs: int) -> Callable[[int], dict[str, float]]:
    made = itertools.count()

    def measure(run: int) -> dict[str, float]:
        # A folder of its own: old and new share `run`, and a store left by the other would
        # hold its history (and fail the audit).
        got = bench_burst.run_burst(
            folder / f"burst{next(made)}",  # a fresh store and sandbox each time
            jobs,
            per_minute=bench_burst.UNLIMITED_PER_MINUTE,
            workers=8,
            stop_after=None,
        )
        problems = got["audit"]["problems"]
        if problems:
            raise RuntimeError(f"audit failed: {problems[:5]}")
        return {
            "fires/s": got["steady_rate"] or 0.0,
            "drained s after T": got["drained_after_t_s"],
            "CPU ms/fire": got["daemon_cpu_s"] / max(got["sent"], 1) * 1000,
        }

    return measure


def idle_figures(folder: Path, jobs: int, seconds: float) -> Callable[[int], dict[str, float]]:
    url = f"sqlite:///{folder / 'idle.db'}"
    now = datetime.now(UTC)
    # Quiet for every run of both commits (each ~40 s with start-up).
    quiet = seconds + 200 * 6
    fill_store(url, bench_idle.hourly_documents(jobs, now, quiet), now - timedelta(minutes=1))

    def measure(run: int) -> dict[str, float]:
        got = bench_idle.measure_process(folder, url, seconds)
        return {
            f"CPU s in {seconds:.0f} s": got["cpu_s"],
            "wake-ups/s": got["wakeups_per_s"],
            "RSS MB": got["rss_mb"],
        }

    return measure


def compare(
    name: str,
    measure: Measure | dict[str, Measure],
    pythons: Sequence[str],
    runs: int,
) -> dict[str, Any]:
    """`runs` of each python, alternating; per figure: each run, the median and the spread.

    `measure`: one for both (run here, with each python's daemon), or one per python."""
    results: dict[str, list[dict[str, float]]] = {python: [] for python in pythons}
    for run in range(runs):
        for python in pythons:
            if isinstance(measure, dict):
                got = measure[python](run)
            else:
                got = _with_python(python, functools.partial(measure, run))
            results[python].append(got)
            print(f"  {name} run {run + 1} {_label(python, pythons)}: {_fmt(got)}", flush=True)
    old, new = pythons
    rows = []
    summary: dict[str, Any] = {}
    for figure in results[old][0]:
        a = [r[figure] for r in results[old]]
        b = [r[figure] for r in results[new]]
        ma, mb = statistics.median(a), statistics.median(b)
        ratio = mb / ma if ma else float("nan")
        summary[figure] = {"old": a, "new": b, "ratio": ratio}
        rows.append(
            (
                figure,
                f"old {ma:.3g} ({min(a):.3g}-{max(a):.3g})  new {mb:.3g} "
                f"({min(b):.3g}-{max(b):.3g})  new/old {ratio:.2f}",
            )
        )
    print(f"\n{name}: median (min-max) of {runs} runs each, alternating")
    print_table(rows)
    return summary


def _label(python: str, pythons: Sequence[str]) -> str:
    return "old" if python == pythons[0] else "new"


def _fmt(figures: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.3g}" for k, v in figures.items())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True, help="the old checkout's venv python")
    parser.add_argument("--new", default=None, help="the new checkout's (default: this one)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default="startup,burst,idle")
    parser.add_argument("--jobs", type=int, default=100_000, help="start-up jobs")
    parser.add_argument("--burst-jobs", type=int, default=10_000)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--each-in-its-checkout",
        action="store_true",
        help="measure each side with its own checkout's bench code (store schemas differ)",
    )
    args = parser.parse_args(argv)

    pythons = [args.old, args.new or sys.executable]
    only = set(args.only.split(","))

    def per_side(figures: str, extra: Sequence[Any]) -> dict[str, Measure]:
        return {python: _in_checkout(python, figures, extra) for python in pythons}

    results: dict[str, Any] = {}
    with workdir("compare") as folder:
        if "startup" in only:
            print(f"start-up: {args.jobs} varied jobs, `run` process, spawn -> READY=1")
            results["startup"] = compare(
                "startup",
                per_side("startup_figures", (args.jobs,))
                if args.each_in_its_checkout
                else startup_figures(folder, args.jobs),
                pythons,
                args.runs,
            )
            naive = bench_startup.measure_naive(folder, args.jobs)
            results["naive"] = naive
            print(
                f"\nnaive loader (tomllib + one croniter next fire per job file, "
                f"{args.jobs} files): {naive['seconds']:.2f} s, CPU {naive['cpu_s']:.2f} s, "
                f"peak RSS {naive['peak_rss_mb']:.0f} MB"
            )
        if "burst" in only:
            print(f"\nburst: {args.burst_jobs} jobs due in one second, no effective limit")
            results["burst"] = compare(
                "burst",
                per_side("burst_figures", (args.burst_jobs,))
                if args.each_in_its_checkout
                else burst_figures(folder, args.burst_jobs),
                pythons,
                args.runs,
            )
        if "idle" in only:
            print(f"\nidle: 1,000 hourly jobs, {args.idle_seconds:.0f} s")
            results["idle"] = compare(
                "idle",
                per_side("idle_figures", (1000, args.idle_seconds))
                if args.each_in_its_checkout
                else idle_figures(folder, 1000, args.idle_seconds),
                pythons,
                args.runs,
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
