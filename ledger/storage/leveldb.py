"""LevelDB (plyvel) shard store: one database per shard.

One DB per shard (not one DB with per-shard key ranges) because each shard is its own Raft group
with its own applied index, snapshot and restore: a snapshot is the whole DB, a restore replaces
the whole DB, and no shard's compaction or restore stalls another.

Durability policy (README, Guarantees): writes use ``sync=False``, and ``sync`` makes everything
committed so far durable with one synced write. In the cluster the Raft journal is the
write-ahead log: it is synced before anything is acknowledged, and log compaction calls ``sync``
before the journal is truncated, so an entry lost from LevelDB by a power loss is replayed from
the journal. The standalone server has no journal: it calls ``sync`` after each group commit,
before answering.
"""

from __future__ import annotations

import pathlib
import threading
from collections.abc import Iterable, Iterator, Sequence

import plyvel

from ledger.storage.base import APPLIED_KEY, decode_applied, encode_applied

__all__ = ["LevelDBShardStore"]

_RESTORE_BATCH_ITEMS = 10_000  # keys per WriteBatch while restoring: bounded memory


class _SnapshotReader:
    """StoreReader over a plyvel snapshot; released when the query is done."""

    def __init__(self, snapshot: plyvel.Snapshot) -> None:
        self._snapshot = snapshot

    def get(self, key: bytes) -> bytes | None:
        value: bytes | None = self._snapshot.get(key)
        return value

    def scan(self, start: bytes, stop: bytes, limit: int) -> Sequence[tuple[bytes, bytes]]:
        return _scan(self._snapshot, start, stop, limit)

    def close(self) -> None:
        self._snapshot.close()


def _scan(
    source: plyvel.DB | plyvel.Snapshot, start: bytes, stop: bytes, limit: int
) -> list[tuple[bytes, bytes]]:
    assert limit > 0
    rows: list[tuple[bytes, bytes]] = []
    with source.iterator(start=start, stop=stop) as iterator:
        for key, value in iterator:
            rows.append((key, value))
            if len(rows) >= limit:
                break
    return rows


class LevelDBShardStore:
    def __init__(self, path: pathlib.Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = plyvel.DB(
            str(path),
            create_if_missing=True,
            paranoid_checks=True,
            # 16 shards per process: 2 MiB memtable + 4 MiB block cache each keeps a node's
            # LevelDB memory under ~100 MiB whatever the data size.
            write_buffer_size=2 * 1024 * 1024,
            lru_cache_size=4 * 1024 * 1024,
            compression="snappy",
            # A fresh request id or idempotency key is a miss: one filter probe per table
            # instead of a block read.
            bloom_filter_bits=10,
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
        return _scan(self._db, start, stop, limit)

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

    def sync(self) -> None:
        """One synced write: LevelDB's log is append-only, so syncing it covers every earlier
        commit (its table files are synced when written)."""
        with self._commit_lock:
            self._db.put(APPLIED_KEY, encode_applied(self._applied_index), sync=True)

    def snapshot_reader(self) -> _SnapshotReader:
        """A point-in-time reader: a query sees one state even while entries are applied."""
        return _SnapshotReader(self._db.snapshot())

    def replace_all(self, items: Iterable[tuple[bytes, bytes]], applied_index: int) -> None:
        """Replace the whole shard with ``items`` (a snapshot from the leader), crash-safely.

        The applied index is deleted first and written last: a crash in between leaves a DB
        with applied index 0, which the next start treats as empty and restores again.
        """
        with self._commit_lock:
            self._db.delete(APPLIED_KEY, sync=True)
            self._applied_index = 0
            self._delete_everything()
            batch = self._db.write_batch()
            pending = 0
            for key, value in items:
                batch.put(key, value)
                pending += 1
                if pending >= _RESTORE_BATCH_ITEMS:
                    batch.write()
                    batch, pending = self._db.write_batch(), 0
            batch.write()
            self._db.put(APPLIED_KEY, encode_applied(applied_index), sync=True)
            self._applied_index = applied_index

    def _delete_everything(self) -> None:
        """Delete every key, in bounded batches (the DB may hold millions of keys)."""
        while True:
            with self._db.iterator(include_value=False) as iterator:
                keys = [key for key, _ in zip(iterator, range(_RESTORE_BATCH_ITEMS), strict=False)]
            with self._db.write_batch() as batch:
                for key in keys:
                    batch.delete(key)
            if len(keys) < _RESTORE_BATCH_ITEMS:
                return

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
