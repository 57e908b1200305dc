"""The shard store interface and the overlay that lets a batch of commands see its own writes.

A store holds one shard's data and its applied Raft index. ``commit`` is the only way to write:
effects and the new applied index go to disk together (one LevelDB WriteBatch), so a crash can
never leave one without the other, and an entry at or below the stored index is never applied
again (exactly-once apply).
"""

from __future__ import annotations

import bisect
import hashlib
import struct
from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol

__all__ = ["APPLIED_KEY", "META_PREFIX", "Overlay", "ShardStore", "digest_items"]

META_PREFIX = b"m"
APPLIED_KEY = META_PREFIX + b"applied"
_U64 = struct.Struct(">Q")


class SnapshotReader(Protocol):
    def get(self, key: bytes) -> bytes | None: ...

    def scan(self, start: bytes, stop: bytes, limit: int) -> Sequence[tuple[bytes, bytes]]: ...

    def close(self) -> None: ...


class ShardStore(Protocol):
    """One shard's data: reads for the core, one atomic commit per applied entry."""

    @property
    def applied_index(self) -> int: ...

    def get(self, key: bytes) -> bytes | None: ...

    def scan(self, start: bytes, stop: bytes, limit: int) -> Sequence[tuple[bytes, bytes]]: ...

    def commit(self, writes: Iterable[tuple[bytes, bytes | None]], applied_index: int) -> None:
        """Write ``writes`` (None deletes) and ``applied_index`` atomically."""
        ...

    def sync(self) -> None:
        """Make every committed write durable (survive a power loss) before returning."""
        ...

    def snapshot_reader(self) -> SnapshotReader:
        """A consistent point-in-time reader for queries (close it when done)."""
        ...

    def replace_all(self, items: Iterable[tuple[bytes, bytes]], applied_index: int) -> None:
        """Replace the whole shard with ``items`` (a snapshot restore)."""
        ...

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """Every pair in key order, from a consistent point in time."""
        ...

    def close(self) -> None: ...


def encode_applied(index: int) -> bytes:
    return _U64.pack(index)


def decode_applied(data: bytes | None) -> int:
    return 0 if data is None else int(_U64.unpack(data)[0])


def digest_items(items: Iterable[tuple[bytes, bytes]]) -> str:
    """SHA-256 over the length-prefixed data pairs, meta keys excluded.

    Meta keys (the applied index) legitimately differ between replicas that applied the same
    data through different paths (log vs. snapshot), so the digest compares data only.
    """
    digest = hashlib.sha256()
    for key, value in items:
        if key.startswith(META_PREFIX):
            continue
        digest.update(_U64.pack(len(key)) + key + _U64.pack(len(value)) + value)
    return digest.hexdigest()


class KeyReader(Protocol):
    def get(self, key: bytes) -> bytes | None: ...


class Overlay:
    """Pending writes of one batch layered over a store, for gets only (apply never scans data)."""

    def __init__(self, base: KeyReader) -> None:
        self._base = base
        self._writes: dict[bytes, bytes | None] = {}

    def get(self, key: bytes) -> bytes | None:
        if key in self._writes:
            return self._writes[key]
        return self._base.get(key)

    def scan(self, start: bytes, stop: bytes, limit: int) -> Sequence[tuple[bytes, bytes]]:
        raise AssertionError("scans go to the committed store, never through a write overlay")

    def put(self, key: bytes, value: bytes) -> None:
        self._writes[key] = value

    def delete(self, key: bytes) -> None:
        self._writes[key] = None

    def writes(self) -> list[tuple[bytes, bytes | None]]:
        # Sorted: the batch content must not depend on the order of dict insertion.
        return sorted(self._writes.items())


def sorted_scan(
    keys: list[bytes], data: dict[bytes, bytes], start: bytes, stop: bytes, limit: int
) -> list[tuple[bytes, bytes]]:
    """Range scan over a sorted key list (the in-memory store's index)."""
    position = bisect.bisect_left(keys, start)
    rows: list[tuple[bytes, bytes]] = []
    while position < len(keys) and len(rows) < limit and keys[position] < stop:
        rows.append((keys[position], data[keys[position]]))
        position += 1
    return rows
