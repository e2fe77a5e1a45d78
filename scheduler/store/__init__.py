"""The store: jobs, fire history and daemon heartbeats, on SQLite or PostgreSQL.

`Store` (facade.py) is what the rest of the code uses; the modules beside it each own one
part of it (facade.py lists them). Everything a caller needs is importable from here.
"""

from __future__ import annotations

from scheduler.store.database import make_engine
from scheduler.store.facade import Store
from scheduler.store.incidents import Delivery, Incident, Message, Notification
from scheduler.store.jobs import BREAKER, OPERATOR, ApplyPlan, JobDocument, JobMark, StoredJob
from scheduler.store.ledger import Claim, Fire, Outcome, Skip
from scheduler.store.reports import DaemonInfo
from scheduler.store.schema import MIGRATIONS, SCHEMA_VERSION, Migration

__all__ = [
    "BREAKER",
    "MIGRATIONS",
    "OPERATOR",
    "SCHEMA_VERSION",
    "ApplyPlan",
    "Claim",
    "DaemonInfo",
    "Delivery",
    "Fire",
    "Incident",
    "JobDocument",
    "JobMark",
    "Message",
    "Migration",
    "Notification",
    "Outcome",
    "Skip",
    "Store",
    "StoredJob",
    "make_engine",
]
