"""Execute once, on the shard leader; replicate the resulting writes with a version check.

Re-executing every command on all three replicas made the apply path the cluster's limit on a
shared machine (three times the core's work per item). Instead, the leader runs the
deterministic core once per batch and proposes a ``WriteSet``: the keys and values it computed,
plus the id of the write set it was computed on top of. Every replica applies it only if that
is the last write set it applied (``ShardStateMachine.apply_write_set``); otherwise it is
*stale*: it changes nothing, and the leader executes the batch again on the fresh state.

The leader does not wait for an entry to apply before executing the next batch: it reads
through its own write sets still in flight (their writes, newest value per key first), then the
committed store. Why that is safe:

* A write set is applied only on the exact state it was computed on: its ``previous_id`` names
  that state, ids are random and never reused, so no other history can carry the same name.
* Pending values of a write set that will apply equal the committed ones once it has; a
  committed key this leader has no pending write for was written by this leader's applied
  write sets or by someone else's, and someone else's moves the last id, which makes every
  write set computed meanwhile stale.
* Anything unusual (a stale or failed entry, a timeout, a leadership change) resets the view:
  pending writes and the account cache are dropped and the chain restarts from the committed
  last id. Exactly-once is unchanged: request records are part of the write sets.

Single-threaded by design: ``prepare``, ``applied`` and ``reset`` run on the node's event loop;
the Raft tick thread only commits to the store (LevelDB reads and writes are thread-safe).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from ledger.pb import ledger_internal_pb2 as pb
from ledger.replication.account_cache import AccountCache
from ledger.replication.state_machine import (
    PruneHint,
    ShardStateMachine,
    encode_write_set,
    frame_results,
    write_set_id_bytes,
)

__all__ = ["LeaderExecutor", "Prepared", "pending_write_sets_max"]

pending_write_sets_max = 64  # a shard leader's write sets in flight; the node bounds entries too
_MISSING = object()


@dataclass(frozen=True)
class Prepared:
    write_set_id: bytes
    entry: bytes  # the Raft entry: a serialized WriteSet
    result_batch: bytes  # serialized ResultBatch, valid once the entry is applied


class _View:
    """The leader's view: pending writes (newest per key), then cached accounts and the store."""

    __slots__ = ("_committed", "_latest")

    def __init__(self, latest: dict[bytes, bytes | None], committed: AccountCache) -> None:
        self._latest = latest
        self._committed = committed

    def get(self, key: bytes) -> bytes | None:
        value = self._latest.get(key, _MISSING)
        if value is _MISSING:
            return self._committed.get(key)
        assert value is None or isinstance(value, bytes)
        return value


class LeaderExecutor:
    def __init__(self, machine: ShardStateMachine) -> None:
        self._machine = machine
        self._committed = AccountCache(machine.store)
        self._latest: dict[bytes, bytes | None] = {}  # newest pending value per key
        self._owner: dict[bytes, bytes] = {}  # key -> the pending write set that wrote it last
        self._pending: dict[bytes, list[bytes]] = {}  # write set id -> its keys, in order
        self._tip: bytes | None = None  # the id the next write set follows (None: committed)
        # The last write set id the account cache is known to reflect (None: nothing cached).
        self._cached_id: bytes | None = None
        self._prune_hint = PruneHint()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def prepare(self, commands: Sequence[pb.Command]) -> Prepared:
        """Run ``commands`` on the current view; propose ``entry`` right after, in call order."""
        assert len(self._pending) < pending_write_sets_max
        previous = self._tip
        if previous is None:
            previous = self._machine.last_write_set_id
            if previous != self._cached_id:
                # Someone else's write set (or re-executed commands) applied since the cache
                # was last known right: it may hold accounts they changed.
                self._committed.clear()
                self._cached_id = previous
        execution = self._machine.execute(
            commands, _View(self._latest, self._committed), self._prune_hint
        )
        write_set_id = os.urandom(write_set_id_bytes)
        for key, value in execution.writes:
            self._latest[key] = value
            self._owner[key] = write_set_id
        self._pending[write_set_id] = [key for key, _ in execution.writes]
        self._tip = write_set_id
        return Prepared(
            write_set_id,
            encode_write_set(write_set_id, previous, execution.writes),
            frame_results(execution.results),
        )

    def applied(self, write_set_id: bytes) -> None:
        """The entry applied (not stale): its writes are committed, stop shadowing them."""
        keys = self._pending.pop(write_set_id, None)
        if keys is None:
            return  # reset since it was prepared
        written = []
        for key in keys:
            if self._owner.get(key) == write_set_id:
                del self._owner[key]
                written.append((key, self._latest.pop(key)))
        self._committed.written(written)
        self._cached_id = write_set_id
        if not self._pending:
            self._tip = None  # the committed last id is this write set's, unless another's

    def reset(self) -> None:
        """Forget everything not known to be committed; the next batch starts from the store."""
        self._latest.clear()
        self._owner.clear()
        self._pending.clear()
        self._tip = None
        self._committed.clear()
        self._cached_id = None
        self._prune_hint = PruneHint()
