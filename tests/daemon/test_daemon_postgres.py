"""Several daemons on one PostgreSQL store (guarantees.md, "Several daemons, one store").

Two `run` processes share a fresh PostgreSQL schema for a minute of per-second jobs; the audit
then finds each instant sent exactly once, whichever daemon claimed it.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from daemon_helpers import DaemonEnv, clean_audit, wait_until, write_job

from scheduler.store import Store
from tallyfy_sandbox import SandboxServer


def utc_now() -> datetime:
    return datetime.now(UTC)


@pytest.mark.slow
@pytest.mark.postgres
def test_two_daemons_on_one_postgresql_store_send_each_instant_once(
    denv: DaemonEnv, sandbox: SandboxServer, daemons, pg_url: str, pg_schema: str
) -> None:
    denv.db_url = f"{pg_url}?options=-csearch_path%3D{pg_schema}"
    store = Store.open(denv.db_url)
    try:
        store.init_schema()
        one = daemons(name="one").start()
        two = daemons(name="two").start()
        one.wait_started()
        two.wait_started()
        jobs = [write_job(denv.workdir / "jobs", f"pg-{i}", "* * * * * *") for i in range(3)]
        since = denv.apply(*jobs)
        time.sleep(60)
        until = utc_now() - timedelta(seconds=1)
        reports = [
            wait_until(clean_audit(store, sandbox, f"pg-{i}", since, until), 20, message="settled")
            for i in range(3)
        ]
        assert one.term() == 0
        assert two.term() == 0
        for report in reports:
            assert report.sent == report.instants
            assert len(report.instants) >= 59
        owners = {f.claimed_by for r in reports for f in r.rows.values()}
        assert len(owners) == 2, "both daemons should have won some claims"
    finally:
        store.close()
