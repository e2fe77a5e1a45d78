"""Durations as users write them: `90s`, `15m`, `2h`, `3d`, `1w`, and sums such as `1h30m`."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_TERM = re.compile(r"(\d+)([smhdw])")
_WHOLE = re.compile(r"(?:\d+[smhdw])+")


def parse_duration(text: str) -> timedelta:
    """Parse `1h30m` into a timedelta; ValueError with the reason otherwise.

    A bare `0` is accepted as zero. Units: s, m, h, d (24 h), w (7 d).
    """
    if not isinstance(text, str):
        raise ValueError("must be a string such as '90s', '15m', '1h30m'")
    s = text.strip()
    if s == "0":
        return timedelta(0)
    if not _WHOLE.fullmatch(s):
        raise ValueError("not a duration: write e.g. '90s', '15m', '2h', '3d', '1w' or '1h30m'")
    try:
        return timedelta(seconds=sum(int(n) * _UNITS[u] for n, u in _TERM.findall(s)))
    except (OverflowError, ValueError):  # past timedelta's range, or too many digits for int()
        raise ValueError("too long to be a usable duration") from None


def format_duration(value: timedelta) -> str:
    """The inverse of parse_duration, largest units first (`5400s` -> `1h30m`)."""
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0s"
    out = []
    for unit in ("w", "d", "h", "m", "s"):
        n, seconds = divmod(seconds, _UNITS[unit])
        if n:
            out.append(f"{n}{unit}")
    return "".join(out)
