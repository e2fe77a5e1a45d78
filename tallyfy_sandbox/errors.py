"""The sandbox's own errors: a bad request or fixture (`InvalidInput`), a missing resource.

The sandbox does not raise the product's errors (`scheduler.errors`): it is the oracle the
product is tested against, so it shares nothing with the code under test beyond plain Python
values. Only a `Problem`'s key and message reach a client (the 422 `errors` map); the rest is
for people reading a refused fixture or fault rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One fault in a request, a fault rule or a fixture: where, which key, what is wrong."""

    message: str
    key: str | None = None
    file: str | None = None
    value: Any = None
    has_value: bool = field(default=False, compare=False)

    def __str__(self) -> str:
        head = ": ".join(p for p in (self.file, self.key) if p)
        if self.has_value:
            head = f"{head} = {self.value!r}" if head else repr(self.value)
        text = f"{head}: {self.message}" if head else self.message
        # One problem, one line: a key or value taken from a request may hold line breaks.
        return text.replace("\r", "\\r").replace("\n", "\\n")


def problem(
    message: str, *, key: str | None = None, file: str | None = None, value: Any = ...
) -> Problem:
    """A Problem; pass `value` to have it shown (even when it is None)."""
    if value is ...:
        return Problem(message, key, file)
    return Problem(message, key, file, value, has_value=True)


class SandboxError(Exception):
    """Base of every error the sandbox raises on purpose."""


class InvalidInput(SandboxError, ValueError):
    """A request body, fault rule, setting or fixture that cannot be accepted; lists every fault.

    For API requests the server answers 422 with `problems` as the `errors` map.
    """

    def __init__(self, problems: list[Problem] | Problem | str) -> None:
        if isinstance(problems, str):
            problems = [Problem(problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    def located(self, *, key: str) -> InvalidInput:
        """The same error with every key prefixed by `key` (a fault rule's index in a list)."""
        out = [
            Problem(
                p.message,
                f"{key}.{p.key}" if p.key else key,
                p.file,
                p.value,
                has_value=p.has_value,
            )
            for p in self.problems
        ]
        return type(self)(out)


class ResourceNotFound(SandboxError, LookupError):
    """An organization, run, task, template, guest... the request names does not exist."""

    def __init__(self, kind: str, ident: str) -> None:
        self.kind = kind
        self.ident = ident
        super().__init__(f"no {kind} {ident!r}")
