"""A bounded least-recently-used cache: the plans of the shapes a stream has seen lately."""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class LRUCache(Generic[T]):
    """At most ``limit`` values; ``get(key, make)`` builds a missing one and drops the least recently used.

    A dropped value is only dereferenced: what it holds (CUDA graphs, buffers) goes back to its
    allocator once nothing else refers to it. ``on_evict`` sees each dropped value first.
    """

    def __init__(self, limit: int, on_evict: Callable[[T], None] | None = None):
        if limit < 1:
            raise ValueError(f"a plan cache holds at least 1 shape, not {limit}")
        self.limit, self.on_evict = limit, on_evict
        self._values: OrderedDict = OrderedDict()
        self.hits = self.misses = self.evictions = 0

    def get(self, key: Hashable, make: Callable[[], T]) -> T:
        if key in self._values:
            self.hits += 1
            self._values.move_to_end(key)
            return self._values[key]
        self.misses += 1
        while len(self._values) >= self.limit:  # make room first: the new value's memory can reuse it
            self._evict()
        value = self._values[key] = make()
        return value

    def peek(self, key: Hashable) -> T:
        """The value, without counting a use."""
        return self._values[key]

    def remove(self, key: Hashable) -> T:
        return self._values.pop(key)

    def _evict(self) -> None:
        _, value = self._values.popitem(last=False)
        self.evictions += 1
        if self.on_evict is not None:
            self.on_evict(value)

    def clear(self) -> None:
        while self._values:
            self._evict()

    def __contains__(self, key) -> bool:
        return key in self._values

    def __len__(self) -> int:
        return len(self._values)

    def keys(self) -> list:
        return list(self._values)
