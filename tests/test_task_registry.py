"""Tests for asyncio's task registry with a compiled `add` (`daw_popular.task_registry`)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daw_popular import task_registry
from daw_popular.task_registry import CompiledAdd


class Thing:
    """Something a weak reference can point to."""


def compiled(weak_set: weakref.WeakSet[Any]) -> weakref.WeakSet[Any]:
    weak_set.add = CompiledAdd(weak_set).add  # type: ignore[method-assign]
    return weak_set


def test_an_added_item_is_in_the_set_until_it_is_freed() -> None:
    things = compiled(weakref.WeakSet())
    kept, dropped = Thing(), Thing()
    things.add(kept)
    things.add(dropped)
    things.add(kept)
    assert len(things) == 2 and kept in things and dropped in things
    del dropped
    assert len(things) == 1 and list(things) == [kept]


def test_an_item_freed_during_an_iteration_leaves_at_the_next_add() -> None:
    things = compiled(weakref.WeakSet())
    held = [Thing(), Thing()]
    things.add(held[0])
    things.add(held[1])
    walk = iter(things)
    seen = next(walk)  # the iteration holds this one
    held.remove(seen)
    held.pop()  # the other one, freed now
    # WeakSet's own rule: an entry is not removed while the set is being iterated over.
    assert len(things._pending_removals) == 1  # type: ignore[attr-defined]
    assert len(things.data) == 2 and len(things) == 1
    newcomer = Thing()
    things.add(newcomer)  # commits the pending removal, as WeakSet.add does
    assert things._pending_removals == []  # type: ignore[attr-defined]
    assert len(things.data) == 2
    walk.close()
    assert set(things) == {seen, newcomer}


# An operation: add a new item, add a held item again, free a held item, start an
# iteration, or end the oldest one still going.
Step = tuple[str, int]
STEPS = st.lists(
    st.tuples(st.sampled_from(["new", "again", "free", "iterate", "stop"]), st.integers(0, 20)),
    max_size=60,
)


def _play(weak_set: weakref.WeakSet[Any], steps: list[Step]) -> None:
    """Apply `steps` to `weak_set`, checking after each that it holds the live items."""
    held: list[Thing] = []
    # Each iteration going on, with the item it stopped at (which it keeps alive).
    walks: list[tuple[Iterator[Any], Thing]] = []
    for op, n in steps:
        if op == "new":
            held.append(Thing())
            weak_set.add(held[-1])
        elif op == "again" and held:
            weak_set.add(held[n % len(held)])
        elif op == "free" and held:
            del held[n % len(held)]
        elif op == "iterate" and held:
            walk = iter(weak_set)
            walks.append((walk, next(walk)))
        elif op == "stop" and walks:
            walks.pop(0)[0].close()
        live = {id(thing) for thing in held} | {id(thing) for _, thing in walks}
        assert len(weak_set) == len(live)
        assert {id(thing) for thing in weak_set} == live
    while walks:
        walks.pop()[0].close()
    assert weak_set._pending_removals == []  # type: ignore[attr-defined]
    assert len(weak_set.data) == len(held)


@given(STEPS)
def test_it_keeps_the_live_items_as_weakset_does_for_any_sequence_of_steps(
    steps: list[Step],
) -> None:
    _play(weakref.WeakSet(), steps)  # the reference behaviour, checked the same way
    _play(compiled(weakref.WeakSet()), steps)


def test_install_gives_asyncio_s_registry_the_compiled_add_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry: weakref.WeakSet[Any] = weakref.WeakSet()
    monkeypatch.setattr(asyncio.tasks, "_all_tasks", registry, raising=False)
    assert task_registry.install()
    assert isinstance(registry.add.__self__, CompiledAdd)  # type: ignore[attr-defined]
    assert not task_registry.install()


def test_install_leaves_a_registry_of_another_kind_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    registry: set[Any] = set()
    monkeypatch.setattr(asyncio.tasks, "_all_tasks", registry, raising=False)
    assert not task_registry.install()


def test_asyncio_sees_and_forgets_its_tasks_as_before() -> None:
    """In a process of its own: the real registry, asyncio's C code adding to it."""
    script = textwrap.dedent(
        """
        import asyncio, gc
        import uvloop
        from daw_popular import task_registry
        assert task_registry.install()
        registry = asyncio.tasks._all_tasks

        async def main():
            gate = asyncio.Event()
            tasks = [asyncio.create_task(gate.wait()) for _ in range(50)]
            await asyncio.sleep(0)
            assert set(tasks) <= asyncio.all_tasks()
            added = [entry for entry in registry.data if entry() in tasks]
            assert len(added) == 50
            assert all(
                isinstance(entry.__callback__.__self__, task_registry.CompiledAdd)
                for entry in added
            )
            before = len(registry.data)
            del added
            gate.set()
            await asyncio.gather(*tasks)
            del tasks
            for _ in range(3):  # the loop's callbacks let go of the tasks
                await asyncio.sleep(0)
            gc.collect()
            assert len(registry.data) == before - 50, (before, len(registry.data))
            print("ok")

        uvloop.run(main())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
