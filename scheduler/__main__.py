"""`python -m scheduler` is the console script `tallyfy-scheduler`."""

from __future__ import annotations

from scheduler.cli import main

if __name__ == "__main__":
    main()
