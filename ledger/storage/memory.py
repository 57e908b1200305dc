"""In-memory shard store for core and property tests: same contract as LevelDB, no disk."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence

from ledger.storage.base import APPLIED_KEY, decode_applied, encode_applied, sorted_scan

__all__ = ["MemoryShardStore"]


class MemoryShardStore:
    def __init__(self) -> None:
        self._data: dict[bytes, bytes] = {}
        self._keys: list[bytes] = []

    @property
    def applied_index(self) -> int:
        return decode_applied(self._data.get(APPLIED_KEY))

    def get(self, key: bytes) -> bytes | None:
        return self._data.get(key)

    def scan(self, start: bytes, stop: bytes, limit: int) -> Sequence[tuple[bytes, bytes]]:
        return sorted_scan(self._keys, self._data, start, stop, limit)

    def commit(self, writes: Iterable[tuple[bytes, bytes | None]], applied_index: int) -> None:
        assert applied_index > self.applied_index
        for key, value in [*writes, (APPLIED_KEY, encode_applied(applied_index))]:
            if value is None:
                if self._data.pop(key, None) is not None:
                    self._keys.pop(bisect.bisect_left(self._keys, key))
            else:
                if key not in self._data:
                    bisect.insort(self._keys, key)
                self._data[key] = value

    def sync(self) -> None:
        pass  # nothing to make durable

    def snapshot_reader(self) -> MemoryShardStore:
        return self  # single-threaded tests: the store itself is a consistent view

    def replace_all(self, items: Iterable[tuple[bytes, bytes]], applied_index: int) -> None:
        self._data = dict(items)
        self._data[APPLIED_KEY] = encode_applied(applied_index)
        self._keys = sorted(self._data)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        return iter([(key, self._data[key]) for key in self._keys])

    def close(self) -> None:
        pass
