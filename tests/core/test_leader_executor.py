"""Execute once on the leader, apply write sets everywhere (ledger.replication.leader_executor).

Goal: a write set applied on every replica leaves exactly the state re-executing the commands
would; the leader pipelines (a batch sees its predecessors still in flight); a write set
computed on a view that did not become the committed state is stale and changes nothing, also
after a reset, also when another leader's write set or re-executed commands slipped in, also
when the leader's account cache was warm; request ids keep retries exactly-once; malformed or
meta-writing write sets are refused.

Method: ``MemoryShardStore`` replicas; the Raft log is simulated by applying entries in order
with increasing indexes; results are compared as protobuf messages and stores by digest.
"""

from __future__ import annotations

import pytest

from ledger.pb import ledger_internal_pb2 as pb
from ledger.replication.leader_executor import LeaderExecutor, Prepared
from ledger.replication.state_machine import (
    LAST_WRITE_SET_KEY,
    WRITE_SET_APPLIED,
    WRITE_SET_STALE,
    ShardStateMachine,
    encode_write_set,
)
from ledger.storage.base import APPLIED_KEY, digest_items
from ledger.storage.memory import MemoryShardStore

T = 1_700_000_000_000_000_000
A = 0x3D2DBE651AB536A1


def create_account(account_id: int, rid: bytes = b"") -> pb.Command:
    return pb.Command(
        request_id=rid, now_ns=T, create_account=pb.CreateAccount(account_id=account_id)
    )


def top_up(account_id: int, amount: int, rid: bytes = b"", now: int = T) -> pb.Command:
    body = pb.CreateTransaction(account_id=account_id, amount=amount, settled=True)
    return pb.Command(request_id=rid, now_ns=now, create_transaction=body)


class Cluster:
    """Three replicas fed the same entries in the same order, like a Raft log."""

    def __init__(self) -> None:
        self.replicas = [ShardStateMachine(MemoryShardStore()) for _ in range(3)]
        self.index = 0

    @property
    def leader(self) -> ShardStateMachine:
        return self.replicas[0]

    def append(self, entry: bytes) -> bytes:
        self.index += 1
        outcomes = {machine.apply_write_set(entry, self.index) for machine in self.replicas}
        assert len(outcomes) == 1, "replicas disagree on an entry"
        outcome = outcomes.pop()
        assert outcome is not None
        return outcome

    def append_commands(self, commands: list[pb.Command]) -> None:
        self.index += 1
        entry = pb.CommandBatch(commands=commands).SerializeToString()
        for machine in self.replicas:
            machine.apply_encoded(entry, self.index)

    def digests(self) -> set[str]:
        return {digest_items(machine.store.items()) for machine in self.replicas}


def commit(cluster: Cluster, executor: LeaderExecutor, batch: list[pb.Command]) -> Prepared:
    """Prepare ``batch``, append its write set, tell the executor: the path of a normal write."""
    prepared = executor.prepare(batch)
    assert cluster.append(prepared.entry) == WRITE_SET_APPLIED
    executor.applied(prepared.write_set_id)
    return prepared


def results(prepared: Prepared) -> list[pb.Result]:
    return list(pb.ResultBatch.FromString(prepared.result_batch).results)


def balance(machine: ShardStateMachine, account_id: int) -> int:
    result = machine.read(pb.Query(get_account=pb.GetAccount(account_id=account_id)))
    return result.account.settled_balance


def test_write_sets_leave_the_state_re_execution_would() -> None:
    cluster = Cluster()
    executor = LeaderExecutor(cluster.leader)
    reference = ShardStateMachine(MemoryShardStore())
    batches = [[create_account(A)], [top_up(A, 50, b"r1"), top_up(A, 7)], [top_up(A, -20)]]
    for number, batch in enumerate(batches, start=1):
        prepared = commit(cluster, executor, batch)
        expected = reference.apply(batch, number)
        assert results(prepared) == expected
    assert cluster.digests() == {digest_items(reference.store.items())}
    assert balance(cluster.leader, A) == 37


def test_the_leader_pipelines_on_its_own_write_sets_in_flight() -> None:
    cluster = Cluster()
    executor = LeaderExecutor(cluster.leader)
    first = executor.prepare([create_account(A), top_up(A, 10)])
    second = executor.prepare([top_up(A, 5)])  # before the first is applied
    assert executor.pending == 2
    assert results(second)[0].transaction.transaction_number == 2
    assert cluster.append(first.entry) == WRITE_SET_APPLIED
    executor.applied(first.write_set_id)
    assert cluster.append(second.entry) == WRITE_SET_APPLIED
    executor.applied(second.write_set_id)
    assert executor.pending == 0
    assert balance(cluster.leader, A) == 15 and len(cluster.digests()) == 1


def test_a_write_set_on_a_lost_predecessor_is_stale_and_changes_nothing() -> None:
    cluster = Cluster()
    executor = LeaderExecutor(cluster.leader)
    commit(cluster, executor, [create_account(A)])
    lost = executor.prepare([top_up(A, 100)])  # its entry never commits (leader change)
    follower = executor.prepare([top_up(A, 1)])
    before = cluster.digests()
    assert cluster.append(follower.entry) == WRITE_SET_STALE
    assert cluster.digests() == before
    executor.reset()
    again = executor.prepare([top_up(A, 1)])
    assert cluster.append(again.entry) == WRITE_SET_APPLIED
    assert balance(cluster.leader, A) == 1
    assert lost.write_set_id != again.write_set_id


def test_another_leaders_write_set_invalidates_a_warm_cache() -> None:
    cluster = Cluster()
    old_leader = LeaderExecutor(cluster.leader)
    new_leader = LeaderExecutor(cluster.replicas[1])
    commit(cluster, old_leader, [create_account(A), top_up(A, 10)])  # its cache: A at 10
    commit(cluster, new_leader, [top_up(A, 5)])
    back = old_leader.prepare([top_up(A, 1)])  # leadership came back: must read 15, not 10
    assert cluster.append(back.entry) == WRITE_SET_APPLIED
    assert balance(cluster.leader, A) == 16
    assert results(back)[0].transaction.transaction_number == 3


def test_re_executed_commands_make_earlier_write_sets_stale() -> None:
    cluster = Cluster()
    executor = LeaderExecutor(cluster.leader)
    commit(cluster, executor, [create_account(A)])
    pending = executor.prepare([top_up(A, 3)])
    cluster.append_commands([top_up(A, 9)])
    assert cluster.append(pending.entry) == WRITE_SET_STALE
    assert balance(cluster.leader, A) == 9


def test_a_retried_request_id_returns_the_stored_result() -> None:
    cluster = Cluster()
    executor = LeaderExecutor(cluster.leader)
    first = commit(cluster, executor, [create_account(A), top_up(A, 40, b"rid-1")])
    retry = executor.prepare([top_up(A, 40, b"rid-1")])
    assert cluster.append(retry.entry) == WRITE_SET_APPLIED
    assert results(retry)[0] == results(first)[1]
    assert balance(cluster.leader, A) == 40


@pytest.mark.parametrize(
    "writes",
    [
        [(APPLIED_KEY, b"\x00" * 8)],
        [(LAST_WRITE_SET_KEY, b"x" * 16)],
        [(b"", b"v")],
    ],
)
def test_write_sets_touching_meta_keys_or_empty_keys_are_refused(
    writes: list[tuple[bytes, bytes | None]],
) -> None:
    cluster = Cluster()
    before = cluster.digests()
    entry = encode_write_set(b"i" * 16, cluster.leader.last_write_set_id, writes)
    assert cluster.append(entry) == WRITE_SET_STALE
    assert cluster.digests() == before


@pytest.mark.parametrize("entry", [b"W", b"W\xff\xff\xff", b"W" + b"\x0a\x05abc"])
def test_junk_write_sets_are_stale_and_advance_the_index(entry: bytes) -> None:
    cluster = Cluster()
    assert cluster.append(entry) == WRITE_SET_STALE
    assert all(machine.applied_index == 1 for machine in cluster.replicas)


def test_a_replayed_write_set_is_a_no_op() -> None:
    cluster = Cluster()
    executor = LeaderExecutor(cluster.leader)
    prepared = executor.prepare([create_account(A), top_up(A, 2)])
    cluster.append(prepared.entry)
    assert cluster.leader.apply_write_set(prepared.entry, cluster.index) is None
    assert balance(cluster.leader, A) == 2
