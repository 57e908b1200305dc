"""A real 3-replica PySyncObj group under heavily pipelined load, in one process.

Goal: with hundreds of entries in flight, followers never truncate entries they already
applied (PySyncObj's CRITICAL "truncating already-applied log entries", which its stock
``nextIndex`` handling provokes under pipelining), nothing is lost or applied twice, and the
three LevelDB replicas end byte-identical; compaction keeps running meanwhile (small
``compaction_entries``) without stalling the group.

Method: three ``ShardReplica`` objects on loopback ports, each over its own LevelDB in a temp
dir; ``entries`` CommandBatch entries submitted to the leader with up to ``in_flight``
outstanding; a logging handler counts CRITICAL records from PySyncObj.
"""

from __future__ import annotations

import logging
import pathlib
import threading
import time

from ledger.pb import ledger_internal_pb2 as pb
from ledger.replication.raft_group import EntryFate, ShardReplica, raft_settings, tick_period_s
from ledger.replication.snapshot import ShardSnapshots
from ledger.replication.state_machine import ShardStateMachine
from ledger.replication.tick_loop import TickLoop
from ledger.storage.base import digest_items
from ledger.storage.leveldb import LevelDBShardStore
from ledger.tools.processes import free_port_range, wait_until

T = 1_700_000_000_000_000_000
ACCOUNT = 77
entries = 3_000
in_flight = 300
compaction_entries = 200


class _Critical(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.CRITICAL)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _entry(number: int) -> bytes:
    command = pb.Command(
        request_id=number.to_bytes(16, "big"),
        now_ns=T + number,
        create_transaction=pb.CreateTransaction(account_id=ACCOUNT, amount=1, settled=True),
    )
    return pb.CommandBatch(commands=[command]).SerializeToString()


def test_pipelined_entries_are_never_truncated_and_replicas_agree(tmp_path: pathlib.Path) -> None:
    critical = _Critical()
    logging.getLogger("pysyncobj").addHandler(critical)
    base = free_port_range(3)
    addresses = [f"127.0.0.1:{base + n}" for n in range(3)]
    replicas = []
    ticks = TickLoop(tick_period_s)  # one loop for all three: its groups talk to each other
    try:
        for position, address in enumerate(addresses):
            directory = tmp_path / f"r{position}"
            directory.mkdir()
            machine = ShardStateMachine(LevelDBShardStore(directory / "db"))
            settings = raft_settings(
                shard_dir=directory,
                secret="test-secret",
                snapshots=ShardSnapshots(0, machine),
                compaction_entries=compaction_entries,
                position=position,
            )
            partners = [other for other in addresses if other != address]
            replicas.append(ShardReplica(0, address, partners, machine, settings, ticks))
        leader = wait_until(
            lambda: next((r for r in replicas if r.is_leader()), None), 30.0, what="a leader"
        )
        slots = threading.Semaphore(in_flight)
        outcomes: list[EntryFate] = []

        def done(_result: object, fate: EntryFate) -> None:
            outcomes.append(fate)
            slots.release()

        create = pb.Command(now_ns=T, create_account=pb.CreateAccount(account_id=ACCOUNT))
        leader.submit(pb.CommandBatch(commands=[create]).SerializeToString(), done)
        for number in range(1, entries + 1):
            assert slots.acquire(timeout=30.0)
            leader.submit(_entry(number), done)
        wait_until(lambda: len(outcomes) == entries + 1, 60.0, what="every outcome")
        assert outcomes.count(EntryFate.APPLIED) == entries + 1, set(outcomes)
        wait_until(
            lambda: len({r.machine.applied_index for r in replicas}) == 1,
            30.0,
            what="replicas at one index",
        )
        digests = {digest_items(r.machine.store.items()) for r in replicas}
        assert len(digests) == 1
        account = leader.machine.read(pb.Query(get_account=pb.GetAccount(account_id=ACCOUNT)))
        assert account.account.settled_balance == entries  # each applied exactly once
        assert critical.messages == []
    finally:
        logging.getLogger("pysyncobj").removeHandler(critical)
        for replica in replicas:
            replica.stop()
        ticks.stop()
        for replica in replicas:
            replica.machine.store.close()
        time.sleep(0.1)
