"""LevelDB (plyvel) shard store: one database per shard.

One DB per shard (not one DB with per-shard key ranges) because each shard is its own Raft group
with its own applied index, snapshot and restore: a snapshot is the whole DB, a restore replaces
the whole DB, and no shard's compaction or restore stalls another.

Durability policy (README, Guarantees): writes use ``sync=False``. A committed batch is in the
OS page cache when ``commit`` returns, so it survives a process crash (SIGKILL) but not a power
loss; PySyncObj's journal has the same property, and the two must agree (notes/pysyncobj.md §2.4).
"""

from __future__ import annotations

import pathlib
import threading
from collections.abc import Iterable, Iterator, Sequence

import plyvel

from ledger.storage.base import APPLIED_KEY, decode_applied, encode_applied

__all__ = ["LevelDBShardStore"]


class LevelDBShardStore:
    def __init__(self, path: pathlib.Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = plyvel.DB(
            str(path),
            create_if_missing=True,
            paranoid_checks=True,
            write_buffer_size=4 * 1024 * 1024,
            lru_cache_size=8 * 1024 * 1024,
            compression="snappy",
        )
        self._applied_index = decode_applied(self._db.get(APPLIED_KEY))
        self._commit_lock = threading.Lock()  # commits come from one applier; this asserts it

    @property
    def applied_index(self) -> int:
        return self._applied_index

    def get(self, key: bytes) -> bytes | None:
        value: bytes | None = self._db.get(key)
        return value

    def scan(self, start: bytes, stop: bytes, limit: int) -> Sequence[tuple[bytes, bytes]]:
        assert limit > 0
        rows: list[tuple[bytes, bytes]] = []
        with self._db.iterator(start=start, stop=stop) as iterator:
            for key, value in iterator:
                rows.append((key, value))
                if len(rows) >= limit:
                    break
        return rows

    def commit(self, writes: Iterable[tuple[bytes, bytes | None]], applied_index: int) -> None:
        acquired = self._commit_lock.acquire(blocking=False)
        assert acquired, "two concurrent commits on one shard store"
        try:
            assert applied_index > self._applied_index
            with self._db.write_batch(transaction=True, sync=False) as batch:
                for key, value in writes:
                    if value is None:
                        batch.delete(key)
                    else:
                        batch.put(key, value)
                batch.put(APPLIED_KEY, encode_applied(applied_index))
            self._applied_index = applied_index
        finally:
            self._commit_lock.release()

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        snapshot = self._db.snapshot()
        try:
            with snapshot.iterator() as iterator:
                yield from iterator
        finally:
            snapshot.close()

    def close(self) -> None:
        if not self._db.closed:
            self._db.close()
