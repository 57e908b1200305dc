"""Linearizable reads on a shard leader: the read barrier and the node's Read (ledger.node).

Goal: a read is answered only after a barrier entry proposed after it arrived has applied;
reads that arrive while a barrier is in flight share the next one (one entry per batch of
reads, never the barrier that was proposed before they arrived); a barrier that fails (not
leader, leadership changed) or does not commit in time fails exactly its readers, and the next
batch still gets a barrier; a node that is not the leader refuses a Read with the leader's
address, without proposing anything.

Method: ``ReadBarrier`` over a fake replica that records each proposed barrier and completes it
when the test says so (also from another thread, as PySyncObj's tick thread does); the timeout
case shortens ``barrier_timeout_s`` to a millisecond. ``NodeService.Read`` over the same kind of
fake replica on an in-memory store. No processes; nothing waits on wall-clock time.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from ledger.config import generate_config, parse_config
from ledger.node import read_barrier
from ledger.node.read_barrier import BarrierFailed, ReadBarrier
from ledger.node.service import NodeService
from ledger.pb import ledger_internal_pb2 as pb
from ledger.pb import ledger_node_pb2 as node_pb
from ledger.replication.raft_group import EntryCallback, EntryFate
from ledger.replication.state_machine import ShardStateMachine
from ledger.storage import MemoryShardStore

T = 1_700_000_000_000_000_000
ResultT = TypeVar("ResultT")


class FakeReplica:
    """The part of ``ShardReplica`` the node layer uses, with barriers the test completes."""

    def __init__(self, leader: bool = True, leader_raft_address: str | None = None) -> None:
        self.leader = leader
        self.leader_raft = leader_raft_address
        self.barriers: list[EntryCallback] = []  # proposed, in order
        self.machine = ShardStateMachine(MemoryShardStore())

    def confirm_read(self, callback: EntryCallback) -> None:
        self.barriers.append(callback)

    def complete(self, number: int, fate: EntryFate = EntryFate.APPLIED) -> None:
        self.barriers[number](number + 1 if fate is EntryFate.APPLIED else None, fate)

    def is_leader(self) -> bool:
        return self.leader

    def has_quorum(self) -> bool:
        return True

    def leader_raft_address(self) -> str | None:
        return self.leader_raft


async def steps(count: int = 3) -> None:
    """Let the loop run the callbacks and tasks that are ready (no time passes)."""
    for _ in range(count):
        await asyncio.sleep(0)


def run(scenario: Coroutine[Any, Any, ResultT]) -> ResultT:
    return asyncio.run(scenario)


def test_a_read_waits_for_a_barrier_proposed_after_it_arrived() -> None:
    replica = FakeReplica()
    barrier = ReadBarrier(replica.confirm_read)

    async def scenario() -> None:
        read = asyncio.ensure_future(barrier.wait())
        await steps()
        assert len(replica.barriers) == 1 and not read.done()
        replica.complete(0)
        await steps()
        assert read.done() and read.exception() is None

    run(scenario())


def test_reads_arriving_during_a_barrier_share_the_next_one() -> None:
    replica = FakeReplica()
    barrier = ReadBarrier(replica.confirm_read)

    async def scenario() -> None:
        first = asyncio.ensure_future(barrier.wait())
        await steps()
        later = [asyncio.ensure_future(barrier.wait()) for _ in range(50)]
        await steps()
        assert len(replica.barriers) == 1  # they wait: the first barrier predates them
        replica.complete(0)
        await steps()
        assert first.done() and not any(read.done() for read in later)
        assert len(replica.barriers) == 2  # one barrier for all fifty
        replica.complete(1)
        await steps()
        assert all(read.done() and read.exception() is None for read in later)
        assert len(replica.barriers) == 2

    run(scenario())


def test_a_barrier_completed_on_another_thread_releases_its_readers() -> None:
    replica = FakeReplica()
    barrier = ReadBarrier(replica.confirm_read)

    async def scenario() -> None:
        for number in range(2):  # the second: after a barrier answered from another thread
            read = asyncio.ensure_future(barrier.wait())
            await steps()
            tick_thread = threading.Thread(target=replica.complete, args=(number,))
            tick_thread.start()
            tick_thread.join()
            await asyncio.wait_for(read, timeout=5.0)  # a bound, not a measure

    run(scenario())


@pytest.mark.parametrize("fate", [EntryFate.NOT_LEADER, EntryFate.UNKNOWN, EntryFate.OVERLOADED])
def test_a_barrier_that_does_not_apply_fails_its_readers_only(fate: EntryFate) -> None:
    replica = FakeReplica()
    barrier = ReadBarrier(replica.confirm_read)

    async def scenario() -> None:
        failing = asyncio.ensure_future(barrier.wait())
        await steps()
        waiting = asyncio.ensure_future(barrier.wait())
        await steps()
        replica.complete(0, fate)
        await steps()
        with pytest.raises(BarrierFailed, match=fate.value):
            failing.result()
        assert not waiting.done() and len(replica.barriers) == 2  # a new barrier for it
        replica.complete(1)
        await steps()
        assert waiting.exception() is None

    run(scenario())


def test_a_barrier_that_does_not_commit_in_time_fails_and_a_late_answer_is_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(read_barrier, "barrier_timeout_s", 0.001)
    replica = FakeReplica()
    barrier = ReadBarrier(replica.confirm_read)

    async def scenario() -> None:
        with pytest.raises(BarrierFailed, match="in time"):
            await asyncio.wait_for(barrier.wait(), timeout=5.0)
        replica.complete(0)  # the old barrier commits after all: nobody is left to answer
        await steps()
        monkeypatch.setattr(read_barrier, "barrier_timeout_s", 60.0)
        read = asyncio.ensure_future(barrier.wait())
        await steps()
        assert len(replica.barriers) == 2 and not read.done()
        replica.complete(1)
        await steps()
        assert read.exception() is None

    run(scenario())


def test_too_many_waiting_reads_are_refused_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(read_barrier, "readers_waiting_max", 2)
    replica = FakeReplica()
    barrier = ReadBarrier(replica.confirm_read)

    async def scenario() -> None:
        first = asyncio.ensure_future(barrier.wait())  # in flight: not waiting
        await steps()
        queued = [asyncio.ensure_future(barrier.wait()) for _ in range(2)]
        await steps()
        with pytest.raises(BarrierFailed, match="too many"):
            await barrier.wait()
        replica.complete(0)
        await steps()
        replica.complete(1)
        await steps()
        assert first.exception() is None and all(read.exception() is None for read in queued)

    run(scenario())


# -- NodeService.Read over a fake replica ---------------------------------------------------------

CONFIG = parse_config(generate_config(), environ={})
SHARD = 0
ACCOUNT = 0x0123456789ABCDEF


def service_with(replica: FakeReplica) -> NodeService:
    node_id = CONFIG.replicas(SHARD)[0].node_id
    return NodeService(CONFIG, node_id, {SHARD: replica})  # type: ignore[dict-item]


def read_request() -> node_pb.ReadRequest:
    query = pb.Query(get_account=pb.GetAccount(account_id=ACCOUNT))
    return node_pb.ReadRequest(shard=SHARD, queries=[query], timeout_ms=5_000)


def test_a_node_that_is_not_the_leader_refuses_a_read_with_the_leaders_address() -> None:
    leader = CONFIG.replicas(SHARD)[1]
    replica = FakeReplica(leader=False, leader_raft_address=leader.raft_address(SHARD))
    response = run(service_with(replica).Read(read_request(), None))
    assert response.outcome.refusal == node_pb.REFUSAL_NOT_LEADER
    assert response.outcome.leader_address == leader.address
    assert replica.barriers == []  # nothing proposed


def test_a_read_whose_barrier_fails_is_refused_as_not_leader() -> None:
    replica = FakeReplica()
    service = service_with(replica)

    async def scenario() -> node_pb.ReadResponse:
        read = asyncio.ensure_future(service.Read(read_request(), None))
        await steps()
        replica.complete(0, EntryFate.NOT_LEADER)
        return await read

    response = run(scenario())
    assert response.outcome.refusal == node_pb.REFUSAL_NOT_LEADER
    assert "read barrier" in response.outcome.message


def test_a_read_answers_from_the_store_after_its_barrier() -> None:
    replica = FakeReplica()
    created = pb.Command(now_ns=T, create_account=pb.CreateAccount(account_id=ACCOUNT))
    assert replica.machine.apply([created], 1) is not None
    service = service_with(replica)

    async def scenario() -> Any:
        read = asyncio.ensure_future(service.Read(read_request(), None))
        await steps()
        assert not read.done()
        replica.complete(0)
        return await read

    response = run(scenario())
    assert response.outcome.refusal == node_pb.REFUSAL_NONE
    [result] = response.outcome.results
    assert result.account.account_id == ACCOUNT
