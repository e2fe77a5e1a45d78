"""The one schedule engine: cron expressions evaluated in a time zone (docs/schedules.md).

Preview (`next`), live firing, catch-up and backfill all call this package; nothing else
evaluates cron::

    schedule = parse_schedule("30 2 * * *", "America/New_York", job_id="my-job")
    schedule.next_after(after)              # first instant > after, aware UTC, or None
    schedule.iter_after(after)              # strictly increasing instants > after, lazily
    schedule.previous_at_or_before(at)      # newest instant <= at, or None
    schedule.count_between(after, until)    # how many in (after, until], not enumerated
    jitter_delay(job_id, scheduled_for, max_jitter)

Modelled on cronsim: a pure function of (expression, zone, start instant), with errors
that name the field. Modules, bottom up: `fields` (one field's text -> bitmask),
`wallclock` (matching local wall-clock seconds, no zone), `transitions` (where the zone's
UTC offset changes, via zoneinfo), `schedule` (the DST rules that turn wall-clock matches
into instants), `expression` (parse_schedule), `jitter`.

Why we evaluate the fields ourselves rather than with croniter (kept as a test-only,
pinned differential oracle, never imported at run time): croniter fires a fixed-time job
twice in a DST overlap; breaks or drops days when `n#k` meets a restricted day-of-month;
treats `1-1` as the full range and wraps reversed ranges around instead of rejecting
them; spells "last Friday" `L5` rather than `5L`; needs `implement_cron_bug=True` for
cronie's star rule on the day fields; and puts a sixth (seconds) field last where we put
it first.
"""

from __future__ import annotations

from scheduler.cron.expression import parse_schedule
from scheduler.cron.jitter import jitter_delay
from scheduler.cron.schedule import CronSchedule

__all__ = ["CronSchedule", "jitter_delay", "parse_schedule"]
