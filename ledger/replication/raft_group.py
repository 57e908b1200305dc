"""One shard replica: a PySyncObj Raft group whose state machine is the shard's LevelDB.

Settings are spelled out in ``raft_settings``:

* ``appendEntriesUseBatch=False``: the default batch mode costs ~100 ms per write.
* ``autoTick=False``: no tick thread per group. One ``TickLoop`` per node (``tick_loop``) polls
  every group's sockets at once and ticks the groups that had an event, and each group at least
  every ``tick_period_s``: 16 threads fewer taking turns on the GIL.
* heartbeat every 0.2 s, tick every 0.1 s: 16 groups x 3 nodes idle at ~8 % of a core per node
  instead of ~14 % at PySyncObj's 0.1/0.05 s; new commands and messages wake the group's tick at
  once either way, and leader loss is detected by the election timeout, not the heartbeat.
* election timeouts 1-3 s (16 groups x 3 nodes share 2 cores; 0.4 s caused elections under load),
  ``leaderFallbackTimeout`` 6 s, reconnect every 1 s.
* ``commandsWaitLeader=False``: without a leader a submit fails at once (the gateway retries).
* journal + our snapshot seam (``pysyncobj_serializer``): compaction is O(1) (a synced LevelDB
  write and a marker file), a follower that needs a snapshot gets the shard streamed in 256 KiB
  chunks. Compaction runs every ``log_compaction_entries`` entries or ``log_bytes_max`` bytes,
  whichever comes first, so the in-RAM log and the journal stay bounded; each shard and replica
  gets its own offset so that compactions spread in time instead of all landing together.
* journal: ``DurableJournal`` (``durable_journal``): a follower acknowledges AppendEntries and
  the leader counts its own copy only once the entries are fdatasync'ed, one flush per poll
  (group commit); term and vote are durable before they are acted on. ``fsync=False``
  (``--unsafe-no-fsync``) is for benchmarks only.
* ``password``: Raft messages are pickles; the cluster secret encrypts and authenticates them
  (with AES-GCM-SIV, see ``raft_cipher``). They are pickled with protocol 4 and not deflated
  (``raft_wire``): PySyncObj's protocol 2 and per-message zlib cost more than the rest of a
  message's trip.

Apply never raises into PySyncObj (an exception would make it retry the entry forever and wedge
the group): domain failures are values, and a failed assertion is logged and stops the process.

Everything outside ``ledger/replication`` talks to a replica through a small typed interface:
``is_leader()``, ``has_quorum()``, ``leader_raft_address()``, ``status()`` (a ``ReplicaStatus``),
``submit`` and ``confirm_read`` (whose callbacks get an ``EntryFate``), ``request_transfer`` and
``stop()``. PySyncObj's role numbers, status dict keys and ``FAIL_REASON`` codes stay in here.
"""

from __future__ import annotations

import enum
import logging
import pathlib
import pickle
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, replicated

from ledger.replication import (
    durable_journal,
    pysyncobj_serializer,
    raft_cipher,
    raft_wire,
    tick_loop,
)
from ledger.replication.durable_journal import DurableJournal, JournalSpec
from ledger.replication.fatal import halt_on_apply_failure
from ledger.replication.fates import EntryCallback, EntryFate
from ledger.replication.read_index import ReadIndex
from ledger.replication.snapshot import ShardSnapshots
from ledger.replication.state_machine import WRITE_SET_MAGIC, ShardStateMachine
from ledger.replication.tick_loop import TickLoop, building_with

__all__ = [
    "EntryCallback",
    "EntryFate",
    "ReplicaRole",
    "ReplicaStatus",
    "ShardReplica",
    "raft_settings",
]

log = logging.getLogger(__name__)

log_compaction_entries = 1_000  # the log is also held in RAM: keep it short
log_compaction_interval_s = 120
commands_queue_size = 10_000  # PySyncObj's own queue; the node bounds in-flight before it
snapshot_chunk_bytes = 256 * 1024  # one install-snapshot message
tick_period_s = 0.1  # every group ticks at least this often (timers); messages wake it at once


class ReplicaRole(enum.Enum):
    """A replica's Raft role; the value is how the node's Status rpc spells it."""

    FOLLOWER = "follower"
    CANDIDATE = "candidate"
    LEADER = "leader"


_ROLES = {0: ReplicaRole.FOLLOWER, 1: ReplicaRole.CANDIDATE, 2: ReplicaRole.LEADER}  # PySyncObj's
_FOLLOWER = 0  # PySyncObj's role number
# Our own Raft messages (ReadIndex probes), handled before PySyncObj sees them.
_READ_PROBE = "ledger_read_probe"
_READ_ACK = "ledger_read_ack"
_READ_MESSAGES = frozenset({_READ_PROBE, _READ_ACK})


class ReplicaStatus(NamedTuple):
    """One replica's view of its group, read at one moment (it may be stale a moment later)."""

    role: ReplicaRole
    term: int
    commit_index: int  # the highest entry this replica knows to be committed
    applied_index: int  # the highest entry applied here (may lead the store: no-op entries)
    leader_raft_address: str | None  # the last leader this replica heard of
    has_quorum: bool  # connected to a majority, itself included
    log_length: int  # entries held in memory since the last compaction


# PySyncObj's FAIL_REASON -> fate; a reason missing here counts as UNKNOWN (the safe answer).
_FATES = {
    FAIL_REASON.SUCCESS: EntryFate.APPLIED,
    FAIL_REASON.QUEUE_FULL: EntryFate.OVERLOADED,
    FAIL_REASON.MISSING_LEADER: EntryFate.NOT_LEADER,
    FAIL_REASON.NOT_LEADER: EntryFate.NOT_LEADER,
    FAIL_REASON.DISCARDED: EntryFate.NOT_LEADER,
    FAIL_REASON.REQUEST_DENIED: EntryFate.NOT_LEADER,
    FAIL_REASON.LEADER_CHANGED: EntryFate.UNKNOWN,
    FAIL_REASON.UNKNOWN_OUTCOME: EntryFate.UNKNOWN,
}


def _with_fate(callback: EntryCallback) -> Callable[[Any, int], None]:
    def on_done(result: Any, reason: int) -> None:
        callback(result, _FATES.get(reason, EntryFate.UNKNOWN))

    return on_done


def compaction_offset(shard: int, position: int, span: int) -> int:
    """A deterministic offset in ``[0, span)`` that differs for every shard and replica."""
    assert span > 0 and position >= 0
    slots = 16 * 3
    return ((shard * 3 + position) % slots) * span // slots


def raft_settings(
    *,
    shard_dir: pathlib.Path,
    secret: str,
    snapshots: ShardSnapshots,
    compaction_entries: int = log_compaction_entries,
    position: int = 0,
    fsync: bool = True,
) -> SyncObjConf:
    """``position`` is this node's place among the shard's replicas (spreads compactions);
    ``fsync=False`` drops the journal's syncs (benchmarks only: not safe on power loss)."""
    assert compaction_entries > 0
    shard = snapshots.shard
    return SyncObjConf(
        journalFile=JournalSpec(
            shard_dir / "raft.wal", fsync=fsync, legacy_path=shard_dir / "raft.journal"
        ),
        fullDumpFile=str(shard_dir / "raft.dump"),
        serializer=snapshots,  # read by ShardSerializer, see pysyncobj_serializer
        deserializer=snapshots.load,
        logCompactionBatchSize=snapshot_chunk_bytes,
        appendEntriesUseBatch=False,
        appendEntriesPeriod=0.2,
        autoTick=False,  # one TickLoop per node drives all its groups, every tick_period_s
        raftMinTimeout=1.0,
        raftMaxTimeout=3.0,
        connectionTimeout=5.0,
        connectionRetryTime=1.0,
        leaderFallbackTimeout=6.0,
        commandsWaitLeader=False,
        commandsQueueSize=commands_queue_size,
        logCompactionMinEntries=compaction_entries
        + compaction_offset(shard, position, compaction_entries),
        logCompactionMinTime=log_compaction_interval_s
        + compaction_offset(shard, position, log_compaction_interval_s),
        logCompactionSplit=False,
        dynamicMembershipChange=False,
        password=secret,
    )


class ShardReplica(SyncObj):  # type: ignore[misc]
    """A shard's Raft group member, ticked by the node's ``TickLoop`` (its "tick thread" below).
    State is created before ``SyncObj.__init__`` on purpose: the loop may tick it at once."""

    def __init__(
        self,
        shard: int,
        self_address: str,
        partner_addresses: list[str],
        machine: ShardStateMachine,
        settings: SyncObjConf,
        ticks: TickLoop,
    ) -> None:
        self.shard = shard
        self.machine = machine
        self._transfer_target: str | None = None
        self._transfer_lock = threading.Lock()
        self._held_acks: list[tuple[Any, dict[str, Any]]] = []  # until the journal is flushed
        snapshots = settings.serializer
        assert isinstance(snapshots, ShardSnapshots)
        self._snapshots = snapshots
        if settings.bindAddress is None:
            # PySyncObj would listen on 0.0.0.0 (every interface): only on our Raft address.
            settings.bindAddress = self_address
        raft_cipher.install()  # before SyncObj.__init__, which creates the encryptor
        pysyncobj_serializer.install()  # likewise for the serializer
        durable_journal.install()  # and for the journal
        raft_wire.install()  # and before any entry is pickled or message sent
        self._read_index = ReadIndex(1 + len(partner_addresses), time.monotonic)
        self._ticks = ticks
        self._group_poller = ticks.new_group()
        tick_loop.install()  # and for the poller
        assert not settings.autoTick, "the node's TickLoop drives every group"
        with building_with(self._group_poller):
            super().__init__(self_address, partner_addresses, settings)
        snapshots.after_restore = self._postpone_election
        snapshots.let_others_run = self._serve_other_groups
        self.addOnTickCallback(self._on_tick)
        ticks.start_group(self._group_poller, self._onTick)

    # -- the narrow seam over PySyncObj 0.3.17 internals ---------------------------------------

    def _SyncObj__onMessageReceived(self, node: Any, message: Any) -> None:
        """Keep the leader's pipelined ``nextIndex`` when a follower acknowledges an older entry.

        PySyncObj 0.3.17 sets ``nextIndex`` to the acknowledged position on every successful
        ``next_node_idx``, throwing away the entries it has already sent past it; the next
        AppendEntries then re-sends them, and the follower truncates its log back to
        ``prevLogIdx`` before re-adding them: the "truncating already-applied log entries"
        CRITICAL, a window in which the follower's log is shorter than its commit index, and
        wasted CPU. A success only ever confirms a prefix, so ``nextIndex`` never needs to move
        back on one; a refusal (``reset``) still moves it back as before.
        """
        if isinstance(message, dict) and message.get("type") in _READ_MESSAGES:
            self._on_read_message(node, message)
            return  # ours: PySyncObj never sees it
        if isinstance(message, dict) and message.get("transmission") == "finish":
            message = self._finish_only_when_complete(message)
        keep = None
        if (
            isinstance(message, dict)
            and message.get("type") == "next_node_idx"
            and message.get("success")
            and not message.get("reset")
            and self._isLeader()
        ):
            keep = self._SyncObj__raftNextIndex.get(node)
        super()._SyncObj__onMessageReceived(node, message)
        if keep is not None and self._isLeader():
            next_index = self._SyncObj__raftNextIndex
            if next_index.get(node, keep) < keep:
                next_index[node] = keep

    @property
    def _journal(self) -> DurableJournal:
        journal = self._SyncObj__raftLog
        assert isinstance(journal, DurableJournal), "configure journalFile=JournalSpec(...)"
        return journal

    def _onTick(self, timeToWait: float = 0.0) -> None:
        """Group commit: the acknowledgements held during the last poll leave after one flush,
        and the leader's own entries are durable before it counts them towards a commit."""
        self._flush_journal()
        super()._onTick(timeToWait)

    def _checkCommandsToApply(self) -> None:
        """New entries went out to the followers inside; flush the leader's copy meanwhile."""
        super()._checkCommandsToApply()
        self._flush_journal()

    def _SyncObj__sendNextNodeIdx(
        self,
        node: Any,
        reset: bool = False,
        nextNodeIdx: int | None = None,
        success: bool = False,
    ) -> None:
        """A follower's answer to AppendEntries: held until the journal is flushed (order kept)."""
        if nextNodeIdx is None:
            nextNodeIdx = self._SyncObj__getCurrentLogIndex() + 1
        arguments = {"reset": reset, "nextNodeIdx": nextNodeIdx, "success": success}
        if self._held_acks or self._journal.needs_flush:
            self._held_acks.append((node, arguments))
        else:
            super()._SyncObj__sendNextNodeIdx(node, **arguments)

    def _flush_journal(self) -> None:
        self._journal.flush()
        held, self._held_acks = self._held_acks, []
        for node, arguments in held:
            super()._SyncObj__sendNextNodeIdx(node, **arguments)

    def _SyncObj__loadDumpFile(self, clearJournal: bool) -> None:
        """At start, trim the journal to the compaction marker instead of letting PySyncObj
        clear it: after a crash between the marker and the journal's truncation, the entries
        after the marker are only in the journal."""
        if not clearJournal:
            raft_data = self._snapshots.marker_raft_data(self._SyncObj__conf.fullDumpFile)
            if raft_data is not None:
                self._journal.drop_before(raft_data[1])
        super()._SyncObj__loadDumpFile(clearJournal)

    def _SyncObj__applyLogEntries(self) -> bool:
        """Apply committed entries, without PySyncObj's extra AppendEntries round after it.

        With ``appendEntriesUseBatch=False``, PySyncObj 0.3.17 answers every apply on the
        leader with an immediate AppendEntries to every follower, only to carry the new commit
        index, and each follower answers it: twice the Raft messages per entry. New entries go
        out at once anyway (and carry the commit index), heartbeats carry it within
        ``appendEntriesPeriod``, and a client's write is acknowledged on the leader's commit,
        so followers merely apply a little later. Raft's safety does not depend on when a
        follower learns the commit index.
        """
        super()._SyncObj__applyLogEntries()
        return False

    def _finish_only_when_complete(self, message: dict[str, Any]) -> dict[str, Any]:
        """PySyncObj 0.3.17 sends an entry larger than ``appendEntriesBatchSizeBytes`` in
        chunks and marks as ``finish`` every chunk past the entry's *command* length, not its
        pickled length: a follower can see ``finish`` one chunk early, fail to unpickle, and
        lose the rest of that tick's messages. Until the pickle is complete, a ``finish`` is
        treated as the ``process`` chunk it really is; the true last chunk completes it."""
        buffered = self._SyncObj__recvTransmission
        data = message.get("data", b"")
        if not (isinstance(buffered, bytes) and isinstance(data, bytes)):
            return message
        try:
            pickle.loads(buffered + data)
        except Exception:  # noqa: BLE001 - truncated: any unpickling error
            return {**message, "transmission": "process"}
        return message

    def _serve_other_groups(self) -> None:
        """In the middle of a long restore or stream: the node's other groups tick meanwhile."""
        self._ticks.serve_others(self._group_poller)

    def _postpone_election(self) -> None:
        """After a long snapshot restore, count the leader's last message as just received: the
        tick thread was busy, not the leader silent (PySyncObj checks its election deadline
        before it reads the messages that queued meanwhile)."""
        min_timeout_s = float(self._SyncObj__conf.raftMinTimeout)
        self._SyncObj__raftElectionDeadline = time.monotonic() + min_timeout_s

    # -- replicated methods -------------------------------------------------------------------

    @replicated  # type: ignore[untyped-decorator]
    def apply_entry(self, data: bytes) -> bytes | None:
        """A WriteSet (the leader's executed batch) -> applied or stale; a CommandBatch
        (journals written before write sets) -> serialized ResultBatch, re-executed here."""
        self._snapshots.note_entry(len(data))
        index = self.raftLastApplied + 1
        try:
            if data.startswith(WRITE_SET_MAGIC):
                return self.machine.apply_write_set(data, index)
            return self.machine.apply_encoded(data, index)
        except BaseException:  # noqa: BLE001 - a bug: stop rather than diverge or wedge
            halt_on_apply_failure(self.shard)

    @replicated  # type: ignore[untyped-decorator]
    def barrier(self) -> int:
        """No effect. Reads once proposed it as a barrier; they use ``confirm_read`` now, and
        it stays so that journals holding such entries replay (PySyncObj numbers replicated
        methods by name: removing one would renumber the others)."""
        return int(self.raftLastApplied + 1)

    # -- the interface for the node layer ------------------------------------------------------

    def submit(self, data: bytes, callback: EntryCallback) -> None:
        """Propose an entry (a write set or a command batch); ``callback`` gets its fate."""
        self.apply_entry(data, callback=_with_fate(callback))

    def is_leader(self) -> bool:
        """This replica is a leader (another may already have been elected without its news)."""
        return bool(self._isLeader())

    def has_quorum(self) -> bool:
        """Connected to a majority of the group, itself included."""
        return bool(self.hasQuorum)

    def leader_raft_address(self) -> str | None:
        """The Raft address of the last leader this replica heard of (None: none known)."""
        leader = self._getLeader()
        return None if leader is None else str(leader.address)

    def status(self) -> ReplicaStatus:
        """Read field by field (``getStatus`` walks dicts the tick thread may be changing)."""
        return ReplicaStatus(
            role=_ROLES[self._SyncObj__raftState],
            term=int(self.raftCurrentTerm),
            commit_index=int(self.raftCommitIndex),
            applied_index=int(self.raftLastApplied),
            leader_raft_address=self.leader_raft_address(),
            has_quorum=self.has_quorum(),
            log_length=len(self._SyncObj__raftLog),
        )

    def stop(self) -> None:
        """Stop the Raft group and wait for its threads (the store stays open)."""
        self._ticks.stop_group(self._group_poller, self.destroy)

    def request_transfer(self, raft_address: str) -> None:
        """Ask the tick thread (PySyncObj is not thread-safe) to hand leadership over."""
        with self._transfer_lock:
            self._transfer_target = raft_address

    # -- reads: ReadIndex (see ``read_index``) ----------------------------------------------

    def confirm_read(self, callback: EntryCallback) -> None:
        """``callback`` gets APPLIED once this replica has proven, after this call, that it is
        the leader and has applied everything committed before: then a read of its state is
        linearizable. Costs a probe round to the followers, shared by every read waiting."""
        self._read_index.request(callback)
        notifier = getattr(self, "_SyncObj__pipeNotifier", None)
        if notifier is not None:
            notifier.notify()  # wake the tick thread from its poll

    def _read_tick(self) -> None:
        """Tick thread: probe for the reads waiting, then answer what is proven and applied."""
        is_leader = bool(self._isLeader())
        term = int(self._SyncObj__raftCurrentTerm)
        commit_index = int(self._SyncObj__raftCommitIndex)
        # The no-op PySyncObj appends when a leader is elected: committed, this leader's commit
        # index covers every entry any earlier leader committed.
        term_start = getattr(self, "_SyncObj__noopIDx", None)
        probe = self._read_index.start_probe(
            is_leader=is_leader,
            term=term,
            commit_index=commit_index,
            term_committed=term_start is not None and commit_index >= term_start,
        )
        if probe is not None:
            message = {"type": _READ_PROBE, "term": probe.term, "probe": probe.probe_id}
            for node in self._SyncObj__otherNodes:
                self._SyncObj__transport.send(node, message)
        self._read_index.release(
            applied_index=int(self._SyncObj__raftLastApplied), is_leader=is_leader, term=term
        )

    def _on_read_message(self, node: Any, message: dict[str, Any]) -> None:
        """A follower acknowledges a probe only in the leader's term and while following it;
        the leader counts acknowledgements of its own term only."""
        term = int(self._SyncObj__raftCurrentTerm)
        if message["type"] == _READ_PROBE:
            if (
                message.get("term") == term
                and self._SyncObj__raftState == _FOLLOWER
                and self._SyncObj__raftLeader == node
            ):
                reply = {"type": _READ_ACK, "term": term, "probe": message.get("probe")}
                self._SyncObj__transport.send(node, reply)
            return
        probe_id, ack_term = message.get("probe"), message.get("term")
        if not self._isLeader() or not isinstance(probe_id, int) or not isinstance(ack_term, int):
            return
        self._read_index.on_ack(node, probe_id, ack_term, current_term=term)
        self._read_index.release(
            applied_index=int(self._SyncObj__raftLastApplied), is_leader=True, term=term
        )

    def _on_tick(self) -> None:
        self._read_tick()
        if self._snapshots.compaction_due():
            self.forceLogCompaction()
        with self._transfer_lock:
            target, self._transfer_target = self._transfer_target, None
        if target is not None and self._isLeader():
            self.transferLeadership(target)
