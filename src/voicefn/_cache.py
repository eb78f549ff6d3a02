"""Per-function caches for work done once per Function (compiled schemas and templates)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class PerObjectCache(Generic[K, V]):
    """Caches ``build(obj)`` by object identity (functions are immutable), bounded LRU."""

    __slots__ = ("_build", "_entries", "_max")

    def __init__(self, build: Callable[[K], V], max_entries: int = 4096) -> None:
        self._build = build
        self._entries: OrderedDict[int, tuple[K, V]] = OrderedDict()
        self._max = max_entries

    def __call__(self, obj: K) -> V:
        hit = self._entries.get(id(obj))
        if hit is not None and hit[0] is obj:
            return hit[1]
        value = self._build(obj)
        self._entries[id(obj)] = (obj, value)
        if len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return value
