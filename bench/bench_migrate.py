"""Schema version 4 on a large SQLite store: the `fires` table rebuilt with every row.

SQLite cannot change a CHECK constraint, so version 4 (the `held` status) rebuilds `fires`:
a new table, every row copied, the old one dropped (schema.py `_migrate_to_4`). This measures
how long `tallyfy-scheduler init` takes on a version 3 store with `--rows` history rows
(bulk-loaded as `bench_prune` loads them) and checks that every row is still there.

    .venv/bin/python -m bench.bench_migrate                      # 1,000,000 rows
    .venv/bin/python -m bench.bench_migrate --rows 10000000
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.bench_prune import bulk_history
from scheduler.store import MIGRATIONS, SCHEMA_VERSION, Store, make_engine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--jobs", type=int, default=1_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "v3.db"
        url = f"sqlite:///{path}"
        old = Store(make_engine(url), migrations=MIGRATIONS[:3])
        assert old.init_schema() == 3
        old.close()
        load = bulk_history(path, args.rows, args.jobs, datetime.now(UTC))
        before = _count(path)
        size = path.stat().st_size / 2**20
        print(f"version 3 store: {before:,} rows, {size:.0f} MB, loaded in {load:.1f} s")
        new = Store.open(url)
        started = time.perf_counter()
        version = new.init_schema()
        took = time.perf_counter() - started
        new.close()
        after = _count(path)
        assert version == SCHEMA_VERSION and after == before, (version, before, after)
        print(
            f"init to version {version}: {took:.1f} s ({before / took:,.0f} rows/s), "
            f"{after:,} rows kept"
        )


def _count(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        (count,) = conn.execute("SELECT count(*) FROM fires").fetchone()
    conn.close()
    return int(count)


if __name__ == "__main__":
    main()
