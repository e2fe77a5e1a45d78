"""Helpers for tests that read the fire history by its key (not fixtures).

Importable as `store_helpers` from every test folder (tests/ is on sys.path through
tests/conftest.py).
"""

from __future__ import annotations

from datetime import datetime

from scheduler.store import Fire, Store


def row_at(store: Store, job_id: str, at: datetime) -> Fire | None:
    """The history row keyed by (job, instant) itself, if any (a skip range is keyed by its
    first instant only)."""
    rows = store.history(job_id, since=at, limit=None)
    return next((fire for fire in rows if fire.scheduled_for == at), None)
