"""asyncio's registry of live tasks, with its two calls per task compiled.

On Python 3.11 each task is added, as it is made, to `asyncio.tasks._all_tasks`: a
`weakref.WeakSet`, written in Python, that `asyncio.all_tasks()` reads. The set's own
weak-reference callback removes the task again when the task is freed. That is two
interpreted calls per task, and a cold answer makes about ten tasks: one per upstream
call, one for the composition. Compiled, the two calls cost about 1,070 instructions
less per task: 1.6% of a cold answer (`make bench-instructions`; bench/README.md).

`install()` gives that one set an `add`, and new entries a removal callback, that do
what `WeakSet.add` and `WeakSet._remove` do, compiled. The set itself, its other
methods, and everything that reads it stay as they are. It is meant for a serving
process. Later Pythons name or keep this registry otherwise (3.12 as
`_scheduled_tasks`, 3.14 in C), and there `install()` changes nothing.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any, Final

_REF: Final = weakref.ref


class CompiledAdd:
    """`WeakSet.add` and the set's removal callback, for one `WeakSet` (see the module)."""

    __slots__ = ("_data", "_iterating", "_pending", "_remove", "_set")

    def __init__(self, weak_set: Any) -> None:
        # WeakSet keeps these three containers for its whole life and changes them only
        # in place, so holding them here reads the set's own state.
        self._set = weak_set
        self._data: set[Any] = weak_set.data
        self._pending: list[Any] = weak_set._pending_removals
        self._iterating: set[Any] = weak_set._iterating
        self._remove = self.remove  # one bound method for every entry

    def add(self, item: object) -> None:
        if self._pending:
            self._set._commit_removals()
        self._data.add(_REF(item, self._remove))

    def remove(self, entry: weakref.ref[Any]) -> None:
        """An entry's referent was freed: forget the entry, or, while someone iterates
        over the set, leave that to the set's next commit, as WeakSet does."""
        if self._iterating:
            self._pending.append(entry)
        else:
            self._data.discard(entry)


def install() -> bool:
    """Give asyncio's task registry the compiled `add`; True if it was installed now.

    Only where the registry is a plain `weakref.WeakSet` (Python 3.11), and only once.
    """
    registry = getattr(asyncio.tasks, "_all_tasks", None)
    if type(registry) is not weakref.WeakSet or "add" in vars(registry):
        return False
    # An instance attribute: asyncio's C code calls `registry.add(task)` by name, which
    # finds it before the class's method.
    registry.add = CompiledAdd(registry).add  # type: ignore[method-assign]
    return True
