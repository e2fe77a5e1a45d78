"""The daemon (`tallyfy-scheduler run`): fire every scheduled instant of every enabled job once.

`core` is the lifecycle and the main loop; `planner` owns the jobs' in-memory state and
claims fires; `sendpool` sends them, one request per job at a time; `timer` (the only user of
APScheduler) wakes the planner; `loader` reads jobs from the store; `recovery` finds open
fires to carry forward. docs/design.md, "The daemon", draws how they fit.
"""

from __future__ import annotations

from scheduler.daemon.core import DEFAULT_STALL_THRESHOLD, MAX_TICK, Daemon, exit_now

__all__ = ["DEFAULT_STALL_THRESHOLD", "MAX_TICK", "Daemon", "exit_now"]
