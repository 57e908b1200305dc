"""Shard snapshots whose cost does not grow with the ledger.

A shard's LevelDB already holds its state and the Raft index it has applied, so Raft log
compaction needs no copy of the data:

* **Compaction** (``write_marker``) makes LevelDB durable up to its applied index with one synced
  write, then writes a small *marker* file: PySyncObj's raft header (the last two compacted log
  entries and the cluster) and the applied index. O(1), whatever the shard holds.
* **A full stream** of the shard (``open_stream``) is produced only when a follower needs an
  install-snapshot: from a LevelDB snapshot, chunk by chunk, each chunk bounded in bytes, as
  PySyncObj's heartbeat loop asks for them. Nothing is staged on disk on the leader.
* A stream's data may be *newer* than its raft header: the LevelDB snapshot is taken when the
  stream starts, the header at the last compaction. That is safe because the state machine
  skips every index at or below its stored applied index, so the follower replays the entries
  between the two as no-ops, and every applied index is committed (never speculative).

Formats (each ends with the SHA-256 of every preceding byte, verified before anything is
unpickled)::

    marker: MARKER_MAGIC | u32 header length | header | u64 applied index | sha256
    stream: STREAM_MAGIC | u32 header length | header
            | records: u32 key length, u32 value length, key, value   (applied-index key excluded)
            | u32 END | u64 applied index of the records | sha256

The header is PySyncObj's raft data, pickled as PySyncObj itself does (it holds PySyncObj's node
objects); it only arrives over the authenticated Raft channel or from local disk, and is
unpickled only after the checksum matched. A node whose marker is ahead of its LevelDB lost data
it had acknowledged (the journal was truncated past it): ``DataLost`` stops it loudly.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import struct
import time
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from ledger.replication.state_machine import ShardStateMachine
from ledger.storage.base import APPLIED_KEY, decode_applied
from ledger.storage.durable_files import write_durably

__all__ = [
    "DataLost",
    "ShardSnapshots",
    "SnapshotError",
    "SnapshotStream",
]

log = logging.getLogger(__name__)

MARKER_MAGIC = b"LEDGERMARK\x01"
STREAM_MAGIC = b"LEDGERSNAP\x02"
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_RECORD = struct.Struct(">II")
_END = 0xFFFFFFFF
_DIGEST_BYTES = 32
_READ_CHUNK_BYTES = 1 << 20
# The header carries two whole log entries; an entry is at most one gRPC message (4 MiB).
header_bytes_max = 16 << 20
record_bytes_max = 1 << 24
# --- In-RAM Raft log bounds (bytes of entries applied since the last compaction).
log_bytes_max = 4 << 20  # compaction is forced beyond this, whatever the entry count
log_bytes_streaming_max = 32 << 20  # while a stream is out, compaction waits up to this
restore_pause_records = 4096  # a restore lets the node's other groups tick this often
stream_idle_s = 30.0  # a stream nobody asked a chunk of for this long is dropped

assert 0 < log_bytes_max < log_bytes_streaming_max


class SnapshotError(ValueError):
    """A snapshot file is truncated, corrupt or not ours."""


class DataLost(RuntimeError):
    """The marker says the log was compacted past what LevelDB holds: acknowledged data is gone."""


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


def _entry_index(raft_data: Any) -> int:
    """The log index of the last compacted entry: raft data is (entry N, entry N-1, cluster)."""
    return int(raft_data[0][1])


class SnapshotStream:
    """One install-snapshot transmission: the shard at one point in time, in bounded chunks."""

    def __init__(self, header: bytes, items: Iterator[tuple[bytes, bytes]]) -> None:
        self._items = items
        self._digest = hashlib.sha256()
        self._head = STREAM_MAGIC + _U32.pack(len(header)) + header
        self._applied_index: int | None = None
        self.finished = False
        self.records = 0
        self.last_used_s = time.monotonic()

    def next_chunk(self, chunk_bytes: int) -> tuple[bytes, bool]:
        """The next chunk (about ``chunk_bytes``, one record may overshoot); True if last."""
        assert chunk_bytes > 0 and not self.finished
        self.last_used_s = time.monotonic()
        parts = [self._head]
        size = len(self._head)
        self._head = b""
        while size < chunk_bytes:
            item = next(self._items, None)
            if item is None:
                assert self._applied_index is not None, "a store without an applied index"
                parts.append(_U32.pack(_END) + _U64.pack(self._applied_index))
                self.finished = True
                break
            key, value = item
            if key == APPLIED_KEY:
                self._applied_index = decode_applied(value)
                continue
            record = _RECORD.pack(len(key), len(value)) + key + value
            parts.append(record)
            size += len(record)
            self.records += 1
        data = b"".join(parts)
        self._digest.update(data)
        if self.finished:
            data += self._digest.digest()
            self.close()
        return data, self.finished

    def close(self) -> None:
        """Release the LevelDB snapshot (the items generator closes it)."""
        close = getattr(self._items, "close", None)
        if close is not None:
            close()


class ShardSnapshots:
    """Marker files, outgoing streams and snapshot loading for one shard."""

    def __init__(self, shard: int, machine: ShardStateMachine) -> None:
        self.shard = shard
        self.machine = machine
        self.store = machine.store
        self._header: bytes | None = None  # pickled raft data of the latest compaction
        self.log_bytes = 0  # bytes of entries applied since the last compaction
        # Called after a restore that replaced the shard's data (long: the tick thread was busy).
        self.after_restore: Callable[[], None] | None = None
        # Called in the middle of long work on the tick thread, which the node's other groups
        # share (their heartbeats must go on): every ``restore_pause_records`` records of a
        # restore, and between the chunks of an outgoing stream.
        self.let_others_run: Callable[[], None] | None = None

    # -- compaction -------------------------------------------------------------------------

    def note_entry(self, size_bytes: int) -> None:
        self.log_bytes += size_bytes

    def compaction_due(self) -> bool:
        return self.log_bytes >= log_bytes_max

    def compaction_may_interrupt_streams(self) -> bool:
        return self.log_bytes >= log_bytes_streaming_max

    def write_marker(self, path: str, raft_data: Any) -> None:
        """Compaction: LevelDB durable up to its applied index, then a small marker file. O(1)."""
        header = pickle.dumps(raft_data, protocol=pickle.HIGHEST_PROTOCOL)
        assert len(header) <= header_bytes_max
        compacted_index = _entry_index(raft_data)
        if self.store.applied_index < compacted_index:
            # PySyncObj compacts at its last applied index, so every entry up to it has been
            # applied; the ones after the store's index had no effect on it (read barriers,
            # PySyncObj's own no-ops). Record that, so the store always covers its marker.
            self.store.commit([], compacted_index)
        self.store.sync()
        self._write_marker_file(path, header, self.store.applied_index)
        self._header = header
        self.log_bytes = 0

    def _write_marker_file(self, path: str, header: bytes, applied_index: int) -> None:
        body = MARKER_MAGIC + _U32.pack(len(header)) + header + _U64.pack(applied_index)
        write_durably(path, body + hashlib.sha256(body).digest())

    # -- install-snapshot, leader side -------------------------------------------------------

    def open_stream(self) -> SnapshotStream | None:
        """A stream of the whole shard as it is now; None before the first compaction."""
        if self._header is None:
            return None
        return SnapshotStream(self._header, self.store.items())

    # -- loading -----------------------------------------------------------------------------

    def load(self, path: str) -> Any:
        """``SyncObjConf.deserializer``: PySyncObj's raft data; restores the DB from a stream.

        Raises ``SnapshotError`` for a corrupt file (nothing changed) and ``DataLost`` when a
        marker is ahead of the local data.
        """
        magic, header, applied_index = self._verify(path)
        raft_data = pickle.loads(header)  # only after the checksum matched
        compacted_index = _entry_index(raft_data)
        if magic == MARKER_MAGIC:
            if self.store.applied_index < compacted_index:
                raise DataLost(
                    f"shard {self.shard}: the log was compacted at index {compacted_index} but "
                    f"the local data is at {self.store.applied_index}; wipe this shard's "
                    "directory so that it is restored from a peer"
                )
            self._header = header
            return raft_data
        if applied_index < compacted_index:
            raise SnapshotError("snapshot data is older than its raft header")
        if self.store.applied_index >= applied_index:
            log.info(
                "shard %d: kept local data at %d (snapshot at %d)",
                self.shard,
                self.store.applied_index,
                applied_index,
            )
        else:
            self.machine.restore(self._pausing(self._records(path)), applied_index)
            log.info("shard %d: restored snapshot at applied index %d", self.shard, applied_index)
            if self.after_restore is not None:
                self.after_restore()
        # The data is in LevelDB now: keep a small marker instead of the whole stream.
        self.store.sync()
        self._write_marker_file(path, header, self.store.applied_index)
        self._header = header
        self.log_bytes = 0
        return raft_data

    def marker_raft_data(self, path: str) -> Any:
        """The raft data of the compaction marker at ``path``; None if there is no valid one."""
        try:
            magic, header, _ = self._verify(path)
        except (OSError, SnapshotError):
            return None
        return pickle.loads(header) if magic == MARKER_MAGIC else None

    def _verify(self, path: str) -> tuple[bytes, bytes, int]:
        """(magic, raw header, applied index) once the whole file's checksum matched."""
        with open(path, "rb", buffering=_READ_CHUNK_BYTES) as handle:
            reader = _HashingReader(handle)
            magic = reader.read(len(MARKER_MAGIC))
            if magic not in (MARKER_MAGIC, STREAM_MAGIC):
                raise SnapshotError("not a ledger snapshot")
            (header_length,) = _U32.unpack(reader.read(_U32.size))
            if header_length > header_bytes_max:
                raise SnapshotError("snapshot header too large")
            header = reader.read(header_length)
            if magic == STREAM_MAGIC:
                for _ in _read_records(reader):
                    pass
            (applied_index,) = _U64.unpack(reader.read(_U64.size))
            if handle.read(_DIGEST_BYTES) != reader.digest.digest():
                raise SnapshotError("snapshot checksum mismatch")
            if handle.read(1):
                raise SnapshotError("trailing bytes after the snapshot checksum")
        return magic, header, int(applied_index)

    def _pausing(self, records: Iterator[tuple[bytes, bytes]]) -> Iterator[tuple[bytes, bytes]]:
        for count, record in enumerate(records, start=1):
            if count % restore_pause_records == 0 and self.let_others_run is not None:
                self.let_others_run()
            yield record

    def _records(self, path: str) -> Iterator[tuple[bytes, bytes]]:
        with open(path, "rb", buffering=_READ_CHUNK_BYTES) as handle:
            reader = _HashingReader(handle)
            reader.read(len(STREAM_MAGIC))
            (header_length,) = _U32.unpack(reader.read(_U32.size))
            reader.read(header_length)
            yield from _read_records(reader)


def _read_records(reader: _HashingReader) -> Iterator[tuple[bytes, bytes]]:
    while True:
        (key_length,) = _U32.unpack(reader.read(_U32.size))
        if key_length == _END:
            return
        (value_length,) = _U32.unpack(reader.read(_U32.size))
        if key_length > record_bytes_max or value_length > record_bytes_max:
            raise SnapshotError("snapshot record too large")
        yield reader.read(key_length), reader.read(value_length)
