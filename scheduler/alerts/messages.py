"""The texts of alert messages: one opening and one recovery per incident (pure functions).

Every opening names the job(s), the scheduled instant in the job's zone and in UTC, the reason
(the API's message and its field errors, for a 422), what the scheduler does next, the command
that shows more, and the incident's id (`ref`: a receiver may drop a second copy by it). Text
from outside (an API's message, a job id from a file) goes through `logs.escape_controls`, so
it can neither split a line nor paint a terminal that shows the message.

`detail` is the incident's stored detail (`monitor.py` writes it): plain JSON values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from scheduler.alertstate import IncidentKind
from scheduler.logs import escape_controls

PREFIX = "[tallyfy-scheduler]"
JOBS_LISTED = 20  # jobs named one by one in a daemon-wide message; the rest are counted


def instant_text(instant: str | None, zone: str | None) -> str:
    """`2026-05-04 10:00:00 Europe/London (2026-05-04T09:00:00Z)`: the instant in the job's
    zone and in UTC (`instant` is ISO 8601 with an offset)."""
    if not instant:
        return "-"
    moment = datetime.fromisoformat(instant).astimezone(UTC)
    utc = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        tz = ZoneInfo(zone or "UTC")
    except (ValueError, KeyError):
        tz = ZoneInfo("UTC")
    local = moment.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")
    return f"{local} {tz.key} ({utc})"


def _safe(text: object) -> str:
    return escape_controls(str(text))


def _reason(detail: Mapping[str, Any]) -> list[str]:
    lines = [f"Reason: {_safe(detail.get('reason') or 'not given')}"]
    field_errors = detail.get("field_errors") or {}
    for name, messages in sorted(field_errors.items()):
        shown = "; ".join(_safe(m) for m in messages) if isinstance(messages, list) else messages
        lines.append(f"  field {_safe(name)}: {_safe(shown)}")
    return lines


def _jobs(detail: Mapping[str, Any], what: str) -> list[str]:
    jobs: Sequence[Mapping[str, Any]] = detail.get("jobs") or []
    total = int(detail.get("total") or len(jobs))
    lines = [f"Jobs affected: {len(jobs)} ({total} {what})"]
    for job in jobs[:JOBS_LISTED]:
        count = int(job.get("count") or 1)
        more = f", and {count - 1} later" if count > 1 else ""
        lines.append(
            f"  {_safe(job['job'])}: {instant_text(job.get('instant'), job.get('zone'))}{more}"
        )
    if len(jobs) > JOBS_LISTED:
        lines.append(f"  ... and {len(jobs) - JOBS_LISTED} more jobs")
    return lines


def _history(job: object | None) -> str:
    return (
        f"More: tallyfy-scheduler history {_safe(job)}" if job else "More: tallyfy-scheduler status"
    )


def opening(kind: IncidentKind, ref: str, detail: Mapping[str, Any]) -> tuple[str, str]:
    """The title and body of the message that opens an incident."""
    job = detail.get("job")
    when = instant_text(detail.get("instant"), detail.get("zone"))
    lines: list[str]
    if kind is IncidentKind.FAILED:
        title = f"{PREFIX} failed: {_safe(job)}"
        lines = [
            f"Job {_safe(job)}: a fire failed.",
            f"Scheduled for: {when}",
            *_reason(detail),
            "Next: the job's later fires are sent as scheduled; this one is not retried. Fix "
            "the job file (or the template) and `tallyfy-scheduler jobs apply` it; "
            "`tallyfy-scheduler backfill` sends a failed instant again. Later failures of this "
            "job send nothing more until it succeeds again.",
            _history(job),
        ]
    elif kind is IncidentKind.SKIPPED:
        title = f"{PREFIX} skipped: {_safe(job)}"
        lines = [
            f"Job {_safe(job)}: {detail.get('count')} scheduled instant(s) were not fired "
            "(catch-up after downtime).",
            f"From: {when}",
            f"To: {instant_text(detail.get('until'), detail.get('zone'))}",
            *_reason(detail),
            "Next: nothing; the job fires on from now. `tallyfy-scheduler backfill` fires "
            "skipped instants on purpose.",
            _history(job),
        ]
    elif kind is IncidentKind.QUARANTINED:
        title = f"{PREFIX} quarantined: {_safe(job)}"
        lines = [
            f"Job {_safe(job)}: its stored definition no longer validates; it is kept but "
            "never fired.",
            *_reason(detail),
            "Next: fix its file and `tallyfy-scheduler jobs apply` it.",
            f"More: tallyfy-scheduler jobs show {_safe(job)}",
        ]
    elif kind is IncidentKind.TEMPLATE:
        title = f"{PREFIX} template: {_safe(job)}"
        lines = [
            f"Job {_safe(job)}: checked against its template in Tallyfy, it would fail.",
            f"Next fire: {when}",
            *[f"Problem: {_safe(p)}" for p in detail.get("problems") or []],
            "Next: the job still fires; fix the job file or the template before its next fire "
            "(`tallyfy-scheduler jobs validate --online FILE`).",
            _history(job),
        ]
    elif kind is IncidentKind.LATE:
        title = f"{PREFIX} late: {len(detail.get('jobs') or [])} job(s)"
        lines = [
            f"Fires are not sent {_safe(detail.get('after'))} after their scheduled instant.",
            *_jobs(detail, "fires waiting"),
            *_reason(detail),
            "Next: they are sent as soon as the daemon can (a rate limit, the API or the "
            "daemon itself holds them back); each keeps its scheduled instant.",
            "More: tallyfy-scheduler status",
        ]
    elif kind is IncidentKind.UNCERTAIN:
        title = f"{PREFIX} uncertain: {len(detail.get('jobs') or [])} job(s)"
        lines = [
            f"Fires are still uncertain {_safe(detail.get('after'))} after their first "
            "attempt: they may have reached Tallyfy, and cannot be read back.",
            *_jobs(detail, "fires uncertain"),
            *_reason(detail),
            "Next: each is read back (never sent again before that) until Tallyfy answers.",
            "More: tallyfy-scheduler status",
        ]
    elif kind is IncidentKind.CREDENTIALS:
        title = f"{PREFIX} credentials: the API refuses the token"
        lines = [
            "Tallyfy refuses the access token (HTTP 401/403): no fire can be sent.",
            *_jobs(detail, "fires waiting"),
            *_reason(detail),
            "Next: fires wait (retrying), none is given up inside its job's catch-up window. "
            "Renew the token (TALLYFY_ACCESS_TOKEN, its file, or the credential "
            "'tallyfy-token'), then `systemctl reload tallyfy-scheduler`: they are sent.",
            "More: tallyfy-scheduler doctor",
        ]
    elif kind is IncidentKind.TOKEN_EXPIRY:
        title = f"{PREFIX} token expires {_safe(detail.get('expires_at'))}"
        lines = [
            f"The access token expires at {_safe(detail.get('expires_at'))} (the token says so).",
            "Next: fires go on until then; after it, they wait for a renewed token. Create a new "
            "one in Tallyfy (Settings > Integrations > REST API), put it where the daemon reads "
            "it, then `systemctl reload tallyfy-scheduler`.",
            "More: tallyfy-scheduler doctor",
        ]
    else:
        title = f"{PREFIX} store unreachable"
        lines = [
            f"Daemon {_safe(detail.get('daemon'))} cannot reach its store since "
            f"{_safe(detail.get('since'))} (longer than {_safe(detail.get('after'))}).",
            *_reason(detail),
            "Next: nothing is claimed or recorded until the store answers; instants missed "
            "meanwhile follow each job's catch-up policy. This message was sent from memory; "
            "it is recorded once the store is back.",
            "More: tallyfy-scheduler doctor",
        ]
    lines.append(f"Incident: {ref}")
    return title, "\n".join(lines)


def recovery(
    kind: IncidentKind, ref: str, detail: Mapping[str, Any], now: datetime
) -> tuple[str, str]:
    """The title and body of the message that says an incident is over."""
    job = detail.get("job")
    subject = _safe(job) if job else str(kind)
    at = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    what = {
        IncidentKind.FAILED: f"job {subject} succeeded again",
        IncidentKind.QUARANTINED: f"job {subject} validates again (or was removed)",
        IncidentKind.TEMPLATE: f"job {subject} matches its template again",
        IncidentKind.LATE: "no fire is late any more",
        IncidentKind.UNCERTAIN: "no fire is uncertain any more",
        IncidentKind.CREDENTIALS: "the API accepts the token again; waiting fires are sent",
        IncidentKind.TOKEN_EXPIRY: "the token no longer expires soon (renewed)",
        IncidentKind.STORE: f"daemon {_safe(detail.get('daemon'))} reaches its store again",
    }.get(kind, str(kind))
    title = f"{PREFIX} recovered: {subject}"
    body = "\n".join([f"Recovered at {at}: {what}.", _history(job), f"Incident: {ref} (closed)"])
    return title, body


def test_message(target: str, url_index: int, now: datetime) -> tuple[str, str]:
    """`alerts test`: the message each URL of each target gets."""
    at = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        f"{PREFIX} test message",
        f"A test of alert target {target} #{url_index + 1}, sent at {at} by "
        "`tallyfy-scheduler alerts test`. Nothing is wrong.",
    )
