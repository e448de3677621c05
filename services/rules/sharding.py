"""Which rules replica owns which device.

Rule state is per device, so every message of a device must reach the same replica. Each
replica subscribes to all device streams (a normal, non-shared subscription), keeps the
devices whose stable hash of `project/device` falls on its shard and drops the rest. The
hash is CRC-32, not Python's `hash()`: that one is salted per process, and replicas (and a
replica and its restart) must agree. docs/rules.md compares this with broker-side options.
"""

from __future__ import annotations

import zlib


def shard_of(project: str, device: str, shard_count: int) -> int:
    """The shard (0-based) that owns a device, the same in every process and release."""
    return zlib.crc32(f"{project}/{device}".encode()) % shard_count


class ShardFilter:
    """Remembers each device's verdict, so the hot path is one dict lookup."""

    __slots__ = ("_cache", "count", "index")

    def __init__(self, index: int, count: int) -> None:
        if not 0 <= index < count:
            raise ValueError(f"shard index {index} is not in 0..{count - 1}")
        self.index = index
        self.count = count
        self._cache: dict[tuple[str, str], bool] = {}

    def owns(self, project: str, device: str) -> bool:
        key = (project, device)
        mine = self._cache.get(key)
        if mine is None:
            if len(self._cache) > 1_000_000:  # bounded even under a flood of made-up ids
                self._cache.clear()
            mine = self._cache[key] = shard_of(project, device, self.count) == self.index
        return mine
