"""One shard replica: a PySyncObj Raft group whose state machine is the shard's LevelDB.

Settings follow notes/pysyncobj.md §6 and are spelled out in ``raft_settings``:

* ``appendEntriesUseBatch=False``: the default batch mode costs ~100 ms per write.
* heartbeat every 0.2 s, tick every 0.1 s: 16 groups x 3 nodes idle at ~8 % of a core per node
  instead of ~14 % at PySyncObj's 0.1/0.05 s; new commands and messages wake the tick thread at
  once either way, and leader loss is detected by the election timeout, not the heartbeat.
* election timeouts 1-3 s (16 groups x 3 nodes share 2 cores; 0.4 s caused elections under load),
  ``leaderFallbackTimeout`` 6 s, reconnect every 1 s.
* ``commandsWaitLeader=False``: without a leader a submit fails at once (the gateway retries).
* journal + full dump with our LevelDB snapshot hooks, compaction every ``log_compaction_entries``
  entries so the in-RAM log and the journal stay bounded.
* ``password``: Raft messages are pickles; the cluster secret encrypts and authenticates them
  (with AES-GCM-SIV, see ``raft_cipher``).

Apply never raises into PySyncObj (an exception would make it retry the entry forever and wedge
the group): domain failures are values, and a failed assertion is logged and stops the process.
"""

from __future__ import annotations

import logging
import pathlib
import threading
from collections.abc import Callable
from typing import Any

from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, replicated

from ledger.replication import raft_cipher
from ledger.replication.fatal import halt_on_apply_failure
from ledger.replication.snapshot import ShardSnapshots
from ledger.replication.state_machine import ShardStateMachine

__all__ = ["FAIL_REASON", "ShardReplica", "raft_settings"]

log = logging.getLogger(__name__)

log_compaction_entries = 1_000        # the log is also held in RAM: keep it short
log_compaction_interval_s = 120
commands_queue_size = 10_000          # PySyncObj's own queue; the node bounds in-flight before it


def raft_settings(
    *,
    shard_dir: pathlib.Path,
    secret: str,
    snapshots: ShardSnapshots,
    compaction_entries: int = log_compaction_entries,
) -> SyncObjConf:
    assert compaction_entries > 0
    return SyncObjConf(
        journalFile=str(shard_dir / "raft.journal"),
        fullDumpFile=str(shard_dir / "raft.dump"),
        serializer=snapshots.write,
        deserializer=snapshots.load,
        appendEntriesUseBatch=False,
        appendEntriesPeriod=0.2,
        autoTick=True,
        autoTickPeriod=0.1,
        raftMinTimeout=1.0,
        raftMaxTimeout=3.0,
        connectionTimeout=5.0,
        connectionRetryTime=1.0,
        leaderFallbackTimeout=6.0,
        commandsWaitLeader=False,
        commandsQueueSize=commands_queue_size,
        logCompactionMinEntries=compaction_entries,
        logCompactionMinTime=log_compaction_interval_s,
        logCompactionSplit=False,
        dynamicMembershipChange=False,
        password=secret,
    )


class ShardReplica(SyncObj):  # type: ignore[misc]
    """A shard's Raft group member. State is created before ``SyncObj.__init__`` on purpose:
    journal replay may start on the tick thread inside it."""

    def __init__(
        self,
        shard: int,
        self_address: str,
        partner_addresses: list[str],
        machine: ShardStateMachine,
        settings: SyncObjConf,
    ) -> None:
        self.shard = shard
        self.machine = machine
        self._transfer_target: str | None = None
        self._transfer_lock = threading.Lock()
        raft_cipher.install()  # before SyncObj.__init__, which creates the encryptor
        super().__init__(self_address, partner_addresses, settings)
        self.addOnTickCallback(self._on_tick)

    @replicated  # type: ignore[misc]
    def apply_entry(self, data: bytes) -> bytes | None:
        """A batch of commands (serialized CommandBatch) -> serialized ResultBatch."""
        try:
            return self.machine.apply_encoded(data, self.raftLastApplied + 1)
        except BaseException:  # noqa: BLE001 - a bug: stop rather than diverge or wedge
            halt_on_apply_failure(self.shard)

    @replicated  # type: ignore[misc]
    def barrier(self) -> int:
        """No effect. Its callback on the leader proves leadership in its term, and that every
        entry committed before the read began has been applied here."""
        return int(self.raftLastApplied + 1)

    def submit(self, data: bytes, callback: Callable[[Any, int], None]) -> None:
        self.apply_entry(data, callback=callback)

    def submit_barrier(self, callback: Callable[[Any, int], None]) -> None:
        self.barrier(callback=callback)

    def request_transfer(self, raft_address: str) -> None:
        """Ask the tick thread (PySyncObj is not thread-safe) to hand leadership over."""
        with self._transfer_lock:
            self._transfer_target = raft_address

    def _on_tick(self) -> None:
        with self._transfer_lock:
            target, self._transfer_target = self._transfer_target, None
        if target is not None and self._isLeader():
            self.transferLeadership(target)

    def leader_raft_address(self) -> str | None:
        leader = self._getLeader()
        return None if leader is None else str(leader.address)
