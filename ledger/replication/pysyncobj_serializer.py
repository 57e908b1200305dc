"""Our stand-in for PySyncObj's ``Serializer``: O(1) compaction, streamed install-snapshots.

Checked against **pysyncobj 0.3.17** (the pinned version). PySyncObj builds one
``pysyncobj.syncobj.Serializer`` per group and calls exactly these methods from its tick thread:
``checkSerializing``, ``serialize``, ``deserialize``, ``getTransmissionData``,
``setTransmissionData`` and ``cancelTransmisstion`` (sic). ``install()`` swaps the class for
``ShardSerializer``, which takes the group's ``ShardSnapshots`` as the configured ``serializer``.

What changes against PySyncObj's own file serializer:

* ``serialize`` writes a marker (``ShardSnapshots.write_marker``), synchronously and in O(1),
  instead of dumping the state; PySyncObj truncates its log on the next tick, as before.
* ``getTransmissionData`` streams the shard from a LevelDB snapshot taken when a follower first
  needs it, one bounded chunk per call, instead of reading a dump file. PySyncObj calls it in its
  heartbeat loop, which stops after ``appendEntriesPeriod``: a transmission holds its group's
  tick for at most that long plus one chunk, whatever the shard holds, and lets the node's
  other groups (which share the tick thread) run between chunks.
* While a stream is out, compaction waits (up to ``log_bytes_streaming_max`` of log): a new
  compaction would move the log start past the stream's header and the follower would need the
  whole stream again.
* The receiving side writes chunks to a temporary file, syncs and renames it, then PySyncObj
  calls ``deserialize`` which verifies and restores it (``ShardSnapshots.load``).
"""

from __future__ import annotations

import logging
import os
import pathlib
import time
from typing import Any, BinaryIO

import pysyncobj.syncobj
from pysyncobj.config import SERIALIZER_STATE

from ledger.replication.fatal import halt
from ledger.replication.snapshot import (
    DataLost,
    ShardSnapshots,
    SnapshotStream,
    stream_idle_s,
)
from ledger.storage.durable_files import fsync_directory

__all__ = ["ShardSerializer", "install"]

log = logging.getLogger(__name__)

incoming_bytes_max = 1 << 40  # a stream larger than 1 TiB is not a shard of ours


class ShardSerializer:
    def __init__(
        self,
        fileName: str,
        transmissionBatchSize: int,
        tryUseFork: bool,
        serializer: Any,
        deserializer: Any,
        serializeChecker: Any,
    ) -> None:
        assert isinstance(serializer, ShardSnapshots), "configure serializer=ShardSnapshots"
        assert fileName and transmissionBatchSize > 0
        self._path = fileName
        self._chunk_bytes = transmissionBatchSize
        self._snapshots = serializer
        self._state = SERIALIZER_STATE.NOT_SERIALIZING
        self._compacted_id: Any = None
        self._streams: dict[Any, SnapshotStream] = {}
        self._incoming: BinaryIO | None = None
        self._incoming_bytes = 0

    # -- compaction ---------------------------------------------------------------------------

    def checkSerializing(self) -> tuple[int, Any]:
        state, self._state = self._state, SERIALIZER_STATE.NOT_SERIALIZING
        return state, self._compacted_id

    def serialize(self, data: Any, id: Any) -> None:
        self._drop_idle_streams()
        if self._streams and not self._snapshots.compaction_may_interrupt_streams():
            return  # PySyncObj asks again on a later tick
        for stream in self._streams.values():
            stream.close()
        self._streams.clear()
        try:
            self._snapshots.write_marker(self._path, data[1:])
        except OSError:
            log.exception("shard %d: writing the compaction marker failed", self._snapshots.shard)
            self._state = SERIALIZER_STATE.FAILED
            return
        self._compacted_id = id
        self._state = SERIALIZER_STATE.SUCCESS

    def deserialize(self) -> tuple[Any, ...]:
        try:
            return (None, *self._snapshots.load(self._path))
        except DataLost:
            halt(f"shard {self._snapshots.shard}: snapshot marker ahead of the data")

    # -- install-snapshot, leader side -------------------------------------------------------

    def getTransmissionData(self, transmissionID: Any) -> tuple[bytes, bool, bool] | None:
        stream = self._streams.get(transmissionID)
        first = stream is None
        if not first and self._snapshots.let_others_run is not None:
            # PySyncObj sends chunks in a loop for up to a heartbeat period: between two of
            # them, the node's other groups (sharing the tick thread) get their turn.
            self._snapshots.let_others_run()
        if stream is None:
            stream = self._snapshots.open_stream()
            if stream is None:
                return None
            self._streams[transmissionID] = stream
            log.info("shard %d: streaming a snapshot to %s", self._snapshots.shard, transmissionID)
        data, last = stream.next_chunk(self._chunk_bytes)
        if last:
            del self._streams[transmissionID]
            log.info(
                "shard %d: streamed %d records to %s",
                self._snapshots.shard,
                stream.records,
                transmissionID,
            )
        return data, first, last

    def cancelTransmisstion(self, transmissionID: Any) -> None:
        stream = self._streams.pop(transmissionID, None)
        if stream is not None:
            stream.close()

    def _drop_idle_streams(self) -> None:
        now_s = time.monotonic()
        for key, stream in list(self._streams.items()):
            if now_s - stream.last_used_s > stream_idle_s:
                self.cancelTransmisstion(key)

    # -- install-snapshot, follower side -----------------------------------------------------

    def setTransmissionData(self, data: Any) -> bool:
        """Append one chunk; True once the last chunk is durable at the dump path."""
        if not (isinstance(data, tuple) and len(data) == 3 and isinstance(data[0], bytes)):
            return False
        chunk, first, last = data
        temporary = self._path + ".incoming"
        if first:
            self._close_incoming()
            self._incoming = open(temporary, "wb")  # noqa: SIM115 - spans many calls
            self._incoming_bytes = 0
        if self._incoming is None:
            return False  # a chunk of a stream whose start we never saw
        self._incoming_bytes += len(chunk)
        if self._incoming_bytes > incoming_bytes_max:
            self._close_incoming()
            return False
        self._incoming.write(chunk)
        if not last:
            return False
        self._incoming.flush()
        os.fsync(self._incoming.fileno())
        self._close_incoming()
        os.replace(temporary, self._path)
        fsync_directory(pathlib.Path(self._path).parent)
        return True

    def _close_incoming(self) -> None:
        if self._incoming is not None:
            self._incoming.close()
            self._incoming = None


def install() -> None:
    """Make every SyncObj created from now on use ``ShardSerializer``."""
    pysyncobj.syncobj.Serializer = ShardSerializer
