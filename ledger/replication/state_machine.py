"""ShardStateMachine: executes batches of commands on one shard and applies them exactly once.

The standalone server re-executes (``apply``: index = local counter); a cluster's shard leader
executes once (``execute``, see ``leader_executor``) and every replica applies the resulting
write set (``apply_write_set``: index = the Raft log index). One batch is one log entry and one
LevelDB WriteBatch holding:

* the core's writes for every command in the batch, each command seeing its predecessors' writes;
* a request record per command that carries a ``request_id``: a retry of the same client call
  (after a timeout or leader change) finds it and gets the stored result instead of a new effect;
  and one time-index key per batch listing those records, so that they can expire;
* the deletion of expired request records (older than ``request_retention_ns`` on the shard
  clock: the largest ``now_ns`` applied, so replicas agree), at least as many as the batch adds;
* the shard clock and the applied index.

An entry at or below the stored applied index is skipped: journal replay, snapshot restore and
restart never apply anything twice. Nothing here raises for bad input; a failed assertion is a
bug and must stop the process (the caller logs it and exits, it never answers a client).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ledger import limits
from ledger.core import Failure, Reason
from ledger.core.records import expiry_range_until, parse_expiry_key
from ledger.core.shard import AnyResult, ShardCore
from ledger.pb import ledger_internal_pb2 as pb
from ledger.replication.account_cache import AccountCache
from ledger.replication.codec import command_from_pb, query_from_pb, result_to_pb
from ledger.storage.base import META_PREFIX, KeyReader, Overlay, ShardStore

__all__ = [
    "WRITE_SET_APPLIED",
    "WRITE_SET_MAGIC",
    "WRITE_SET_STALE",
    "Execution",
    "PruneHint",
    "ShardStateMachine",
    "encode_write_set",
    "frame_results",
    "parse_commands",
    "request_id_bytes_max",
]

REQUEST_PREFIX = b"r"
REQUEST_TIME_PREFIX = b"q"
CLOCK_KEY = META_PREFIX + b"clock"
request_id_bytes_max = 32

_NO_REQUESTS = limits.int64_max + 1  # "no request records": above every real time
_I64 = struct.Struct(">q")
_U64 = struct.Struct(">Q")


LAST_WRITE_SET_KEY = META_PREFIX + b"writeset"
WRITE_SET_APPLIED = b"applied"
WRITE_SET_STALE = b"stale"
WRITE_SET_MAGIC = b"W"  # never the first byte of a CommandBatch (0x57: field 10, wire type 7)
_COMMANDS_ID = b"commands@"  # last write set id after re-executed commands: their entry index
write_set_id_bytes = 16


@dataclass
class PruneHint:
    """What the executor knows about the request records left, to prune them cheaply.

    ``oldest_ns`` is the oldest stored_at_ns of any record left (None: unknown, _NO_REQUESTS:
    none), exact or lower, so skipping the prune scan when nothing can have expired changes
    no decision: replicas with cold and warm hints prune the same records.
    """

    oldest_ns: int | None = None
    scan_from: bytes | None = None  # every record before this time key has been pruned


@dataclass
class Execution:
    writes: list[tuple[bytes, bytes | None]]
    results: list[bytes]  # serialized Result per command


def encode_write_set(
    write_set_id: bytes, previous_id: bytes, writes: Sequence[tuple[bytes, bytes | None]]
) -> bytes:
    message = pb.WriteSet(
        id=write_set_id,
        previous_id=previous_id,
        keys=[key for key, _ in writes],
        values=[b"" if value is None else value for _, value in writes],
        deleted=[n for n, (_, value) in enumerate(writes) if value is None],
    )
    return WRITE_SET_MAGIC + message.SerializeToString(deterministic=True)


def decode_write_set(data: bytes, last_id: bytes) -> list[tuple[bytes, bytes | None]] | None:
    """The writes of a WriteSet entry that follows ``last_id``; None if stale or malformed."""
    message = pb.WriteSet()
    try:
        message.ParseFromString(data[len(WRITE_SET_MAGIC) :])
    except Exception:  # noqa: BLE001 - protobuf raises DecodeError or others on junk
        return None
    keys, values = message.keys, message.values
    if (
        message.previous_id != last_id
        or len(message.id) != write_set_id_bytes
        or len(keys) != len(values)
    ):
        return None
    writes: list[tuple[bytes, bytes | None]] = list(zip(keys, values, strict=True))
    for position in message.deleted:
        if position >= len(writes):
            return None
        writes[position] = (writes[position][0], None)
    if any(not key or (key.startswith(META_PREFIX) and key != CLOCK_KEY) for key, _ in writes):
        return None  # the leader never writes other meta keys (applied index, last id)
    writes.append((LAST_WRITE_SET_KEY, message.id))
    return writes


def parse_commands(data: bytes) -> Sequence[pb.Command]:
    """The commands of a serialized CommandBatch; junk parses as no commands (never raises)."""
    batch = pb.CommandBatch()
    try:
        batch.ParseFromString(data)
    except Exception:  # noqa: BLE001 - protobuf raises DecodeError or others on junk
        return []
    return batch.commands


def frame_results(results: Sequence[bytes]) -> bytes:
    """A serialized ResultBatch (``repeated Result results = 1``) from serialized Results:
    the same bytes protobuf writes, without parsing and serializing the results again."""
    return b"".join(_RESULTS_TAG + _varint(len(result)) + result for result in results)


def _varint(value: int) -> bytes:
    assert value >= 0
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_RESULTS_TAG = b"\x0a"  # ResultBatch.results: field 1, length-delimited
_STORED_AT_TAG = b"\x08"  # RequestRecord.stored_at_ns: field 1, varint
_RECORD_RESULT_TAG = b"\x12"  # RequestRecord.result: field 2, length-delimited


def _serialize(result: AnyResult) -> bytes:
    return result_to_pb(result).SerializeToString(deterministic=True)


def _request_record(stored_at_ns: int, result: bytes) -> bytes:
    """A serialized RequestRecord, framed from the result's bytes (protobuf's own layout)."""
    head = b"" if stored_at_ns == 0 else _STORED_AT_TAG + _varint(stored_at_ns % (1 << 64))
    return head + _RECORD_RESULT_TAG + _varint(len(result)) + result


_TIME_KEY_HEAD = len(REQUEST_TIME_PREFIX) + 8  # prefix + stored_at


def _time_key(stored_at_ns: int, request_id: bytes) -> bytes:
    # Offset so that negative times still sort before positive ones as unsigned bytes.
    return REQUEST_TIME_PREFIX + _U64.pack(stored_at_ns - limits.int64_min) + request_id


class ShardStateMachine:
    def __init__(self, store: ShardStore) -> None:
        self.store = store
        # Account records, written through at every commit: most commands read one account.
        self._cache = AccountCache(store)
        self._prune_hint = PruneHint()
        self.last_write_set_id = self._stored_last_write_set_id()

    def restore(self, items: Iterable[tuple[bytes, bytes]], applied_index: int) -> None:
        """Replace the shard with a snapshot's items (see ledger.replication.snapshot)."""
        self._cache.clear()
        self.store.replace_all(items, applied_index)
        self._prune_hint = PruneHint()
        self.last_write_set_id = self._stored_last_write_set_id()

    def _stored_last_write_set_id(self) -> bytes:
        stored_id = self.store.get(LAST_WRITE_SET_KEY)
        return b"" if stored_id is None else stored_id

    @property
    def applied_index(self) -> int:
        return self.store.applied_index

    def apply(self, commands: Sequence[pb.Command], index: int) -> list[pb.Result] | None:
        """Apply one log entry; None when ``index`` was already applied (a replay)."""
        results = self._apply(commands, index)
        return None if results is None else [pb.Result.FromString(r) for r in results]

    def apply_encoded(self, data: bytes, index: int) -> bytes | None:
        """``apply`` on a serialized CommandBatch, returning a serialized ResultBatch."""
        if index <= self.store.applied_index:
            return None
        # A junk entry still advances the index, applying nothing.
        results = self._apply(parse_commands(data), index)
        assert results is not None
        return frame_results(results)

    def _apply(self, commands: Sequence[pb.Command], index: int) -> list[bytes] | None:
        """Serialized results of one log entry; None when ``index`` was already applied."""
        if index <= self.store.applied_index:
            return None
        execution = self.execute(commands, self._cache, self._prune_hint)
        # Re-executed commands move the state without a write set: a write set computed
        # before this entry must not apply after it.
        writes = [*execution.writes, (LAST_WRITE_SET_KEY, _COMMANDS_ID + _U64.pack(index))]
        self._commit(writes, index)
        return execution.results

    def execute(
        self, commands: Sequence[pb.Command], view: KeyReader, prune_hint: PruneHint
    ) -> Execution:
        """Run one entry's commands over ``view`` and return its writes; commits nothing.

        ``view`` is the committed store (re-execution on every replica) or the leader's view
        of it plus its write sets still in flight (``LeaderExecutor``).
        """
        if len(commands) > limits.entry_commands_max:  # never from a gateway; refuse, not crash
            refusal = _serialize(Failure.of(Reason.INVALID_COMMAND, "entry has too many commands"))
            return Execution([], [refusal] * len(commands))
        overlay = Overlay(view)
        core = ShardCore(overlay)
        clock_before = self._clock(overlay)
        clock = clock_before
        results = []
        new_request_ids: list[bytes] = []
        for message in commands:
            clock = max(clock, message.now_ns)
            results.append(self._apply_one(core, overlay, message, clock, new_request_ids))
        if clock != clock_before:
            overlay.put(CLOCK_KEY, _I64.pack(clock))
            self._expire_holds(core, overlay, clock)
        added_oldest_ns = _NO_REQUESTS
        if new_request_ids:
            # One time-index key per entry lists its new records. It is stamped with the shard
            # clock, not the commands' now_ns (a lagging gateway clock must not make a fresh
            # record look expired), at the entry's end: no record expires early.
            overlay.put(_time_key(clock, new_request_ids[0]), _pack_ids(new_request_ids))
            added_oldest_ns = clock
        # Prune at least as fast as records are added, whatever the entry size.
        budget = max(limits.request_prune_per_entry_max, 2 * len(commands))
        self._prune_requests(overlay, clock, prune_hint, added_oldest_ns, budget)
        return Execution(overlay.writes(), results)

    def apply_write_set(self, data: bytes, index: int) -> bytes | None:
        """Apply one serialized WriteSet entry: ``WRITE_SET_APPLIED`` or ``WRITE_SET_STALE``.

        None when ``index`` was already applied (a replay). A write set that does not follow
        the last one applied here, or that is malformed, changes nothing but the index.
        """
        if index <= self.store.applied_index:
            return None
        writes = decode_write_set(data, self.last_write_set_id)
        if writes is None:
            self._commit([], index)
            return WRITE_SET_STALE
        self._commit(writes, index)
        self._prune_hint.oldest_ns = None  # records came from elsewhere: unknown
        return WRITE_SET_APPLIED

    def _commit(self, writes: list[tuple[bytes, bytes | None]], index: int) -> None:
        self.store.commit(writes, index)
        self._cache.written(writes)
        for key, value in writes:
            if key == LAST_WRITE_SET_KEY:
                assert value is not None
                self.last_write_set_id = value

    def read(self, query: pb.Query) -> pb.Result:
        return self.read_many([query])[0]

    def read_many(self, queries: Sequence[pb.Query]) -> list[pb.Result]:
        """Answer the queries from one point-in-time snapshot (one view, one snapshot)."""
        reader = self.store.snapshot_reader()
        try:
            core = ShardCore(reader)
            results = []
            for query in queries:
                decoded = query_from_pb(query)
                outcome = decoded if isinstance(decoded, Failure) else core.query(decoded)
                results.append(result_to_pb(outcome))
            return results
        finally:
            reader.close()

    def _apply_one(
        self,
        core: ShardCore,
        overlay: Overlay,
        message: pb.Command,
        clock_ns: int,
        new_request_ids: list[bytes],
    ) -> bytes:
        """One command's serialized Result; its writes and request record go to ``overlay``,
        its request id (if it stored a record) to ``new_request_ids``."""
        request_id = message.request_id
        if len(request_id) > request_id_bytes_max:
            return _serialize(Failure.of(Reason.INVALID_COMMAND, "request id is too long"))
        if request_id:
            stored = overlay.get(REQUEST_PREFIX + request_id)
            if stored is not None:
                record = pb.RequestRecord.FromString(stored)
                return record.result.SerializeToString(deterministic=True)
        command = command_from_pb(message)
        if isinstance(command, Failure):
            result = _serialize(command)
        else:
            applied = core.execute(command)
            _write_all(overlay, applied.writes)
            result = _serialize(applied.result)
        if request_id:
            overlay.put(REQUEST_PREFIX + request_id, _request_record(clock_ns, result))
            new_request_ids.append(request_id)
        return result

    def _clock(self, overlay: Overlay) -> int:
        data = overlay.get(CLOCK_KEY)
        return limits.int64_min if data is None else int(_I64.unpack(data)[0])

    def _expire_holds(self, core: ShardCore, overlay: Overlay, clock: int) -> None:
        """Cancel pending holds whose timeout the shard clock has reached, a bounded number per
        entry (the rest go with the next entries). The index is read from the committed store;
        each hold is decided on the entry's own view, so one settled meanwhile is left alone."""
        start, stop = expiry_range_until(clock)
        for key, _ in self.store.scan(start, stop, limits.hold_expiries_per_entry_max):
            if overlay.get(key) is None:
                continue  # gone already: cancelled or settled in a write set in flight
            _, account_id, number = parse_expiry_key(key)
            _write_all(overlay, core.expire_hold(account_id, number, clock).writes)

    def _prune_requests(
        self, overlay: Overlay, clock: int, hint: PruneHint, added_oldest_ns: int, budget: int
    ) -> None:
        """Delete expired request records, whole entries' worth, until ``budget`` is reached.

        The scan starts where the last one stopped (``hint.scan_from``): every time-index key
        before it is deleted, and LevelDB would otherwise step over all their tombstones again
        on every entry, a cost that grows with everything ever pruned.
        """
        horizon = clock - limits.request_retention_ns
        cached = hint.oldest_ns
        if horizon <= limits.int64_min or (cached is not None and cached >= horizon):
            # Nothing can have expired.
            hint.oldest_ns = None if cached is None else min(cached, added_oldest_ns)
            return
        rows = self.store.scan(
            hint.scan_from or REQUEST_TIME_PREFIX, REQUEST_TIME_PREFIX + b"\xff" * 9, budget + 1
        )
        deleted = 0
        oldest_left_ns = _NO_REQUESTS
        for key, value in rows:
            stored_at_ns = int(_U64.unpack_from(key, 1)[0]) + limits.int64_min
            if stored_at_ns >= horizon or deleted >= budget:
                oldest_left_ns = stored_at_ns
                break
            overlay.delete(key)
            # A key without a list is one record, named by the key itself (one key per
            # record, an earlier layout).
            request_ids = _unpack_ids(value) if value else [key[_TIME_KEY_HEAD:]]
            for request_id in request_ids:
                overlay.delete(REQUEST_PREFIX + request_id)
            deleted += len(request_ids)
            # New keys are stamped with the shard clock, never older than this one: no key can
            # appear before this time any more (keys of the same time may).
            hint.scan_from = key[:_TIME_KEY_HEAD]
        hint.oldest_ns = min(oldest_left_ns, added_oldest_ns)


def _write_all(overlay: Overlay, writes: Sequence[tuple[bytes, bytes | None]]) -> None:
    for key, value in writes:
        if value is None:
            overlay.delete(key)
        else:
            overlay.put(key, value)


def _pack_ids(request_ids: Sequence[bytes]) -> bytes:
    assert all(0 < len(request_id) <= request_id_bytes_max for request_id in request_ids)
    return b"".join(bytes((len(request_id),)) + request_id for request_id in request_ids)


def _unpack_ids(data: bytes) -> list[bytes]:
    ids, position = [], 0
    while position < len(data):
        length = data[position]
        ids.append(data[position + 1 : position + 1 + length])
        position += 1 + length
    assert position == len(data), "a malformed request time-index value"
    return ids
