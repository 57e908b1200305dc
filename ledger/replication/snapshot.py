"""Shard snapshot files: PySyncObj's ``serializer``/``deserializer`` hooks for a LevelDB shard.

PySyncObj's default snapshot pickles Python attributes and would silently drop everything in
LevelDB (notes/pysyncobj.md §2.3), so log compaction and follower catch-up go through here. The
file is what the leader streams to a lagging or wiped follower.

Layout::

    MAGIC | u32 header length | header (PySyncObj's raft data, pickled as PySyncObj does)
          | u64 applied index of the dumped DB
          | records: u32 key length, u32 value length, key, value   (applied-index key excluded)
          | u32 END | sha256 of every preceding byte

The header is pickle because PySyncObj's raft data holds its own node objects; the file only
ever arrives over the password-authenticated Raft channel or from local disk. Loading verifies
the checksum before touching the DB. When the local DB is already at or beyond the snapshot
(a restart), it is kept, and replayed entries are skipped by the applied-index check.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import struct
from collections.abc import Iterator
from typing import Any, BinaryIO

from ledger.replication.state_machine import ShardStateMachine
from ledger.storage.base import APPLIED_KEY

__all__ = ["ShardSnapshots", "SnapshotError"]

log = logging.getLogger(__name__)

MAGIC = b"LEDGERSNAP\x01"
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_RECORD = struct.Struct(">II")
_END = 0xFFFFFFFF
_CHUNK_BYTES = 1 << 20
header_bytes_max = 1 << 20
record_bytes_max = 1 << 24


class SnapshotError(ValueError):
    """A snapshot file is truncated, corrupt or not ours."""


class _HashingReader:
    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self.digest = hashlib.sha256()

    def read(self, size: int) -> bytes:
        data = self._handle.read(size)
        if len(data) != size:
            raise SnapshotError("snapshot file is truncated")
        self.digest.update(data)
        return data


class ShardSnapshots:
    def __init__(self, shard: int, machine: ShardStateMachine) -> None:
        self.shard = shard
        self.machine = machine
        self.store = machine.store

    def write(self, path: str, raft_data: Any) -> None:
        """``SyncObjConf.serializer``: runs on the tick thread, so no apply runs meanwhile."""
        digest = hashlib.sha256()
        count = 0
        with open(path, "wb") as handle:

            def emit(data: bytes) -> None:
                digest.update(data)
                handle.write(data)

            header = pickle.dumps(raft_data, protocol=pickle.HIGHEST_PROTOCOL)
            emit(MAGIC + _U32.pack(len(header)) + header + _U64.pack(self.store.applied_index))
            for key, value in self.store.items():
                if key == APPLIED_KEY:
                    continue
                emit(_RECORD.pack(len(key), len(value)) + key + value)
                count += 1
            emit(_U32.pack(_END))
            handle.write(digest.digest())
            handle.flush()
            os.fsync(handle.fileno())
        log.info("shard %d: wrote snapshot of %d keys at applied index %d",
                 self.shard, count, self.store.applied_index)

    def load(self, path: str) -> Any:
        """``SyncObjConf.deserializer``: returns PySyncObj's raft data, restoring the DB if behind."""
        raft_data, applied_index = self._verify(path)
        if self.store.applied_index >= applied_index:
            log.info("shard %d: kept local data at %d (snapshot at %d)",
                     self.shard, self.store.applied_index, applied_index)
            return raft_data
        self.machine.restore(self._records(path), applied_index)
        log.info("shard %d: restored snapshot at applied index %d", self.shard, applied_index)
        return raft_data

    def _verify(self, path: str) -> tuple[Any, int]:
        with open(path, "rb") as handle:
            reader = _HashingReader(handle)
            raft_data, applied_index = self._read_head(reader)
            for _ in self._read_records(reader):
                pass
            if handle.read(32) != reader.digest.digest():
                raise SnapshotError("snapshot checksum mismatch")
            if handle.read(1):
                raise SnapshotError("trailing bytes after the snapshot checksum")
        return raft_data, applied_index

    def _records(self, path: str) -> Iterator[tuple[bytes, bytes]]:
        with open(path, "rb", buffering=_CHUNK_BYTES) as handle:
            reader = _HashingReader(handle)
            self._read_head(reader)
            yield from self._read_records(reader)

    @staticmethod
    def _read_head(reader: _HashingReader) -> tuple[Any, int]:
        if reader.read(len(MAGIC)) != MAGIC:
            raise SnapshotError("not a ledger snapshot")
        (header_length,) = _U32.unpack(reader.read(_U32.size))
        if header_length > header_bytes_max:
            raise SnapshotError("snapshot header too large")
        raft_data = pickle.loads(reader.read(header_length))
        (applied_index,) = _U64.unpack(reader.read(_U64.size))
        return raft_data, applied_index

    @staticmethod
    def _read_records(reader: _HashingReader) -> Iterator[tuple[bytes, bytes]]:
        while True:
            (key_length,) = _U32.unpack(reader.read(_U32.size))
            if key_length == _END:
                return
            (value_length,) = _U32.unpack(reader.read(_U32.size))
            if key_length > record_bytes_max or value_length > record_bytes_max:
                raise SnapshotError("snapshot record too large")
            yield reader.read(key_length), reader.read(value_length)
