"""The send pool on its own: one item of a job at a time, groups, turns, stop (real threads).

The handler is a fake that records what ran and can hold an item (an Event) the way a server
that never answers holds a request. Every wait is bounded (a second or two).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pytest

from scheduler.daemon.sendpool import SendPool

WAIT = 2.0


@dataclass(frozen=True)
class Item:
    key: str
    name: str
    group: bool = True


@dataclass
class FakeHandler:
    """Runs items at once, except those named in `hold` (until `release` is set)."""

    hold: set[str] = field(default_factory=set)
    release: threading.Event = field(default_factory=threading.Event)
    later: set[str] = field(default_factory=set)  # done only when `finish_later()` is called
    ran: list[str] = field(default_factory=list)
    groups: list[list[str]] = field(default_factory=list)
    running: dict[str, int] = field(default_factory=dict)
    most_running: dict[str, int] = field(default_factory=dict)
    waiting_done: list[Callable[[], None]] = field(default_factory=list)
    idles: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, group: Sequence[Item]) -> list[Item | None]:
        with self.lock:
            self.groups.append([item.name for item in group])
        return list(group)

    def run(self, item: Item, done: Callable[[], None]) -> None:
        with self.lock:
            self.running[item.key] = self.running.get(item.key, 0) + 1
            self.most_running[item.key] = max(
                self.most_running.get(item.key, 0), self.running[item.key]
            )
        if item.name in self.hold:
            self.release.wait(WAIT * 5)
        with self.lock:
            self.running[item.key] -= 1
            self.ran.append(item.name)
            if item.name in self.later:
                self.waiting_done.append(done)
                return
        done()

    def idle(self) -> None:
        with self.lock:
            self.idles += 1

    def finish_later(self) -> None:
        with self.lock:
            waiting, self.waiting_done = self.waiting_done, []
        for done in waiting:
            done()


def until(predicate: Callable[[], bool], message: str) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out: {message}")
        time.sleep(0.005)


def pool(handler: FakeHandler, *, workers: int = 4, group_size: int = 1) -> SendPool[Item]:
    made = SendPool(
        handler, workers=workers, group_size=group_size, groupable=lambda item: item.group
    )
    made.start()
    return made


def submit(p: SendPool[Item], *items: Item) -> None:
    for index, item in enumerate(items):
        assert p.submit(item.key, hash(item.name) + index, item)


def test_a_held_item_holds_back_its_own_job_only() -> None:
    handler = FakeHandler(hold={"a1"})
    p = pool(handler)
    try:
        submit(p, Item("a", "a1"), Item("a", "a2"), Item("b", "b1"), Item("c", "c1"))
        until(lambda: {"b1", "c1"} <= set(handler.ran), "the other jobs ran")
        time.sleep(0.05)
        assert "a2" not in handler.ran  # behind a1, not beside it
        handler.release.set()
        until(lambda: handler.ran[-1] == "a2", "a2 after a1")
        assert handler.ran.index("a1") < handler.ran.index("a2")
        assert handler.most_running == {"a": 1, "b": 1, "c": 1}
    finally:
        handler.release.set()
        p.stop(WAIT)


def test_a_held_item_of_a_group_holds_back_no_other_item_of_the_group() -> None:
    handler = FakeHandler(hold={"a1"})
    p = pool(handler, workers=3, group_size=4)
    try:
        submit(p, Item("a", "a1"), Item("b", "b1"), Item("c", "c1"), Item("d", "d1"))
        until(lambda: {"b1", "c1", "d1"} <= set(handler.ran), "the group's others ran")
        assert handler.groups[0] == ["a1", "b1", "c1", "d1"]  # started together
    finally:
        handler.release.set()
        p.stop(WAIT)


def test_an_item_that_goes_alone_is_never_grouped() -> None:
    handler = FakeHandler()
    p = pool(handler, workers=1, group_size=4)
    try:
        submit(p, Item("a", "a1"), Item("b", "b1", group=False), Item("c", "c1"))
        until(lambda: len(handler.ran) == 3, "all ran")
        assert all("b1" not in group for group in handler.groups)
    finally:
        p.stop(WAIT)


def test_a_job_goes_on_only_when_its_item_is_done_even_if_later() -> None:
    handler = FakeHandler(later={"a1"})
    p = pool(handler)
    try:
        submit(p, Item("a", "a1"), Item("a", "a2"))
        until(lambda: handler.ran == ["a1"] and handler.waiting_done, "a1 ran")
        time.sleep(0.05)
        assert handler.ran == ["a1"]  # a1's outcome is not recorded yet
        handler.finish_later()
        until(lambda: handler.ran == ["a1", "a2"], "a2 once a1 is done")
    finally:
        p.stop(WAIT)


def test_jobs_take_turns() -> None:
    handler = FakeHandler(hold={"gate"})
    p = pool(handler, workers=1)
    try:
        submit(p, Item("z", "gate"))  # holds the only worker while the queue fills
        submit(p, Item("a", "a1"), Item("a", "a2"), Item("a", "a3"), Item("b", "b1"))
        handler.release.set()
        until(lambda: len(handler.ran) == 5, "all ran")
        assert handler.ran == ["gate", "a1", "b1", "a2", "a3"]
    finally:
        p.stop(WAIT)


def test_nothing_is_queued_twice() -> None:
    handler = FakeHandler(hold={"a1"})
    p = pool(handler)
    try:
        assert p.submit("a", 1, Item("a", "a1"))
        assert not p.submit("a", 1, Item("a", "a1"))  # under way
        assert p.submit("a", 2, Item("a", "a2"))
        assert not p.submit("a", 2, Item("a", "a2"))  # queued
        handler.release.set()
        until(lambda: p.pending() == 0, "drained")
        assert p.submit("a", 1, Item("a", "a1"))  # finished: may come again
    finally:
        handler.release.set()
        p.stop(WAIT)


def test_stop_drops_what_is_queued_and_counts_what_is_still_under_way() -> None:
    handler = FakeHandler(hold={"a1"})
    p = pool(handler, workers=1)
    submit(p, Item("a", "a1"), Item("a", "a2"), Item("b", "b1"))
    until(lambda: handler.running.get("a") == 1, "a1 under way")
    assert p.stop(0.1) == 1  # a1 still held
    assert not p.submit("c", 99, Item("c", "c1"))
    handler.release.set()
    time.sleep(0.05)
    assert "a2" not in handler.ran and "b1" not in handler.ran


@pytest.mark.parametrize("workers", [0, 3], ids=["inline", "threads"])
def test_every_item_runs_once_in_order_per_job(workers: int) -> None:
    handler = FakeHandler()
    p = pool(handler, workers=workers, group_size=3)
    try:
        items = [Item(k, f"{k}{n}") for n in range(5) for k in "abcd"]
        submit(p, *items)
        until(lambda: len(handler.ran) == len(items), "all ran")
        assert sorted(handler.ran) == sorted(i.name for i in items)
        for key in "abcd":
            assert [n for n in handler.ran if n[0] == key] == [f"{key}{n}" for n in range(5)]
    finally:
        p.stop(WAIT)
