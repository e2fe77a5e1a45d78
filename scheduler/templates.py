"""Safe templates for names, titles, summaries and kick-off values (shared/spec/jobs.md).

STUB: the signatures below are the contract; the implementation is being written.
"""

from __future__ import annotations

from collections.abc import Mapping

FIRE_NAMES: frozenset[str] = frozenset({"fire", "fire_utc", "job", "iso_week", "seq", "deadline"})


class Template:
    """A validated template; rendering cannot run code or read attributes."""

    text: str
    names: frozenset[str]

    def render(self, values: Mapping[str, object]) -> str:
        raise NotImplementedError


def parse_template(text: str, allowed: frozenset[str] = FIRE_NAMES) -> Template:
    """Validate `text`; TemplateError for unknown names, attribute/index access, conversions."""
    raise NotImplementedError
