"""Every scale benchmark, one after the other, then one summary table (`make bench`).

    .venv/bin/python -m bench.run_all            # the figures of bench/README.md (~8 minutes)
    .venv/bin/python -m bench.run_all --quick    # smaller sizes, a smoke run (~3 minutes)
    .venv/bin/python -m bench.run_all --only startup,idle

Each figure is bounded in time and talks to 127.0.0.1 only; a figure that fails is reported
and the others still run. PostgreSQL is included in figure 1 when
TALLYFY_SCHEDULER_TEST_PG_URL is set (see .ci/postgres-up).
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from bench import (
    bench_burst,
    bench_catchup,
    bench_idle,
    bench_metrics,
    bench_sandbox,
    bench_startup,
)

Summary = tuple[str, str, str]  # (figure, target, measured)


def _startup(quick: bool) -> tuple[dict[str, Any], list[Summary]]:
    jobs = 20_000 if quick else 100_000
    r = bench_startup.main(["--jobs", str(jobs)])
    assert r is not None
    best = r.get("process", r["sqlite"])
    measured = (
        f"{best['ready_s']:.1f} s to READY, peak {best['peak_rss_mb']:.0f} MB"
        f" (in process {r['sqlite']['ready_s']:.1f} s"
    )
    if "postgres" in r:
        measured += f"; PostgreSQL {r['postgres']['ready_s']:.1f} s"
    measured += ")"
    return r, [(f"1. {jobs:,} stored jobs -> READY", "a few s, < 300 MB", measured)]


def _catchup(quick: bool) -> tuple[dict[str, Any], list[Summary]]:
    jobs = 2000 if quick else 10_000
    r = bench_catchup.main(["--jobs", str(jobs)])
    p, w = r["planning"], r["whole"]
    per_kind = ", ".join(f"{k} {v['us_per_job']:.0f} us" for k, v in p["per_kind"].items())
    rows = sum(n for n, _ in w["rows"].values())
    return r, [
        (
            f"2. catch-up planning, {jobs:,} jobs, 7 days down",
            "no enumeration",
            f"{p['seconds']:.2f} s ({per_kind} per job)",
        ),
        (
            "2. whole startup catch-up (+ store writes, sends)",
            "-",
            f"{w['planned_s']:.1f} s planned, {w['sent_s']:.1f} s all sent; {rows:,} rows",
        ),
    ]


def _burst(quick: bool) -> tuple[dict[str, Any], list[Summary]]:
    jobs = 2000 if quick else 10_000
    r = bench_burst.main(["--jobs", str(jobs)])
    out: list[Summary] = []
    limited = r.get("limited")
    if limited:
        rate = limited["steady_rate"] or 0.0
        limit = limited["per_minute"] / 60
        out.append(
            (
                f"3a. burst of {jobs:,}, limit {limited['per_minute']}/min",
                f"{limit:.0f}/s +- a few %",
                f"{rate:.1f}/s ({(rate / limit - 1) * 100:+.1f} %), audit "
                + ("OK" if not limited["audit"]["problems"] else "FAILED"),
            )
        )
    unlimited = r.get("unlimited")
    if unlimited:
        a = unlimited["audit"]
        verdict = "OK" if not a["problems"] else f"{len(a['problems'])} problems"
        rate = unlimited["steady_rate"] or 0
        drained = unlimited["drained_after_t_s"]
        out.append(
            (
                f"3b. burst of {jobs:,}, no limit",
                ">= 1,000 fires/s, exactly once",
                f"{rate:.0f} fires/s, drained {drained:.1f} s after T;"
                f" {a['rows']} rows / {a['items']} items, audit {verdict}",
            )
        )
    return r, out


def _idle(quick: bool) -> tuple[dict[str, Any], list[Summary]]:
    seconds = 10 if quick else 30
    r = bench_idle.main(["--seconds", str(seconds)])
    p = r["process"]
    return r, [
        (
            f"4. idle daemon, 1,000 hourly jobs, {seconds} s",
            "near-zero CPU",
            f"{p['cpu_s']:.2f} s CPU ({p['cpu_percent']:.2f} % of a core),"
            f" {p['wakeups_per_s']:.1f} wake-ups/s",
        )
    ]


def _sandbox(quick: bool) -> tuple[dict[str, Any], list[Summary]]:
    seconds = "2" if quick else "3"
    r = bench_sandbox.main(["--seconds", seconds])
    raw = bench_sandbox.main(["--seconds", seconds, "--client", "raw"])
    return {"requests": r, "raw": raw}, [
        (
            "5. sandbox, POST /runs, 4 keep-alive clients",
            "well above 3b",
            f"{r['requests_per_second']} req/s (requests clients),"
            f" {raw['requests_per_second']} req/s (raw http.client)",
        )
    ]


def _metrics(quick: bool) -> tuple[dict[str, Any], list[Summary]]:
    jobs = 2000 if quick else 10_000
    r = bench_metrics.main(["--jobs", str(jobs), "--seconds", "10" if quick else "30"])
    every, quiet = r["phases"]["every second"], r["phases"]["quiet"]
    scrape, delay, calm = every["scrape_ms"], every["delay_ms"], quiet["delay_ms"]
    return r, [
        (
            f"6. /metrics with {jobs:,} jobs, one scrape a second",
            "< 100 ms, fires not delayed",
            f"scrape p50 {scrape['p50']:.0f} ms (max {scrape['max']:.0f} ms); fire delay p50"
            f" {delay['p50']:.1f} ms, p99 {delay['p99']:.1f} ms (unscraped {calm['p50']:.1f},"
            f" {calm['p99']:.1f} ms)",
        )
    ]


FIGURES: dict[str, Callable[[bool], tuple[dict[str, Any], list[Summary]]]] = {
    "startup": _startup,
    "catchup": _catchup,
    "burst": _burst,
    "idle": _idle,
    "sandbox": _sandbox,
    "metrics": _metrics,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(FIGURES)}")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",")] if args.only else list(FIGURES)
    unknown = [name for name in chosen if name not in FIGURES]
    if unknown:
        parser.error(f"unknown figure(s): {', '.join(unknown)}")
    summary: list[Summary] = []
    failed = 0
    for name in chosen:
        print(f"\n{'=' * 100}\n{name}\n{'=' * 100}", flush=True)
        started = time.monotonic()
        try:
            _, rows = FIGURES[name](args.quick)
            summary.extend(rows)
        except Exception:  # one broken figure must not hide the others
            failed += 1
            traceback.print_exc()
            summary.append((name, "-", "FAILED (see above)"))
        print(f"({name}: {time.monotonic() - started:.0f} s)", flush=True)
    print("\n| figure | target | measured on this machine |\n| --- | --- | --- |")
    for figure, target, measured in summary:
        print(f"| {figure} | {target} | {measured} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
