"""NodeLink's coalescing (ledger.stubs.node_link) and the shard queues' late batching.

Goal: a lone caller is sent at once every time; the shard batches of several shards share one
Submit; while a Submit is in flight, a shard queue waits for the link's next turn before it
forms its batch, so every call that queued meanwhile rides in one batch (one Raft entry);
batches beyond ``node_submit_batches_max`` go in the next Submit; a transport error fails every
batch of its Submit and no other.

Method: the flush loop is driven through ``submit`` against a fake node, with
``time.monotonic`` replaced by a fake clock that only the fake Submits move; the late-batching
test runs a real ``ClusterStub`` over a NodeLink whose fake node holds a Submit until told.
No wall-clock time is measured.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import grpc
import pytest

from ledger import limits
from ledger.config import generate_config, parse_config
from ledger.pb import ledger_internal_pb2 as pb
from ledger.pb import ledger_node_pb2 as node_pb
from ledger.stubs import node_link
from ledger.stubs.cluster import ClusterStub
from ledger.stubs.node_link import NodeLink

# -- the flush loop, driven through ``submit`` with a fake node and a fake clock ----------------


class Clock:
    """``time.monotonic`` for node_link: moves only when a fake Submit moves it."""

    def __init__(self) -> None:
        self.now_s = 1_000.0

    def monotonic(self) -> float:
        return self.now_s


class FakeNode:
    """A node's Submit: takes ``rtt_s`` of fake time, echoes each shard's batch back as its
    outcome, or raises the next error in ``failures``."""

    def __init__(self, clock: Clock, rtt_s: float) -> None:
        self.clock = clock
        self.rtt_s = rtt_s
        self.requests: list[node_pb.SubmitRequest] = []
        self.failures: list[Exception] = []

    async def Submit(
        self, request: node_pb.SubmitRequest, timeout: float, metadata: Any = ()
    ) -> Any:
        self.requests.append(request)
        await _real_sleep(0)  # callers that arrive meanwhile queue for the next Submit
        self.clock.now_s += self.rtt_s
        if self.failures:
            raise self.failures.pop(0)
        return node_pb.SubmitResponse(
            outcomes=[
                node_pb.ShardOutcome(shard=item.shard, result_batch=item.command_batch)
                for item in request.shards
            ]
        )

    async def ReadMany(
        self, request: node_pb.ReadManyRequest, timeout: float, metadata: Any = ()
    ) -> Any:
        """Answers each shard's queries with one result per query (naming its account)."""
        self.requests.append(request)
        await _real_sleep(0)
        self.clock.now_s += self.rtt_s
        if self.failures:
            raise self.failures.pop(0)
        return node_pb.ReadManyResponse(
            outcomes=[
                node_pb.ShardOutcome(
                    shard=read.shard,
                    results=[
                        pb.Result(account=pb.AccountRecord(account_id=query.get_account.account_id))
                        for query in read.queries
                    ],
                )
                for read in request.reads
            ]
        )


_real_sleep = asyncio.sleep


class HeldNode:
    """A node whose first Submit waits until ``release`` is set; later ones answer at once.
    Each shard's outcome echoes its batch, or (``results``) names each command's account."""

    def __init__(self, *, results: bool = False) -> None:
        self.results = results
        self.requests: list[node_pb.SubmitRequest] = []
        self.submitted = asyncio.Event()
        self.release = asyncio.Event()

    async def Submit(
        self, request: node_pb.SubmitRequest, timeout: float, metadata: Any = ()
    ) -> Any:
        self.requests.append(request)
        self.submitted.set()
        if len(self.requests) == 1:
            await self.release.wait()
        return node_pb.SubmitResponse(outcomes=[self._outcome(item) for item in request.shards])

    def _outcome(self, item: node_pb.ShardCommands) -> node_pb.ShardOutcome:
        if not self.results:
            return node_pb.ShardOutcome(shard=item.shard, result_batch=item.command_batch)
        commands = pb.CommandBatch.FromString(item.command_batch).commands
        results = [
            pb.Result(account=pb.AccountRecord(account_id=c.create_account.account_id))
            for c in commands
        ]
        return node_pb.ShardOutcome(
            shard=item.shard, result_batch=pb.ResultBatch(results=results).SerializeToString()
        )


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(node_link, "time", SimpleNamespace(monotonic=clock.monotonic))
    return clock


def unavailable() -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "connection reset"
    )


async def submit_together(node_link_: NodeLink, shards: range) -> list[Any]:
    """Callers that arrive in one loop step: they share the next Submit."""
    return await asyncio.gather(
        *(node_link_.submit(shard, b"batch-%d" % shard, 5.0) for shard in shards),
        return_exceptions=True,
    )


def test_a_lone_caller_is_sent_at_once_every_time(clock: Clock) -> None:
    node = FakeNode(clock, rtt_s=0.004)
    link = NodeLink(node)  # type: ignore[arg-type]

    async def scenario() -> None:
        for shard in range(5):
            outcome = await link.submit(shard, b"alone", 5.0)
            assert outcome.result_batch == b"alone"

    asyncio.run(scenario())
    assert [len(request.shards) for request in node.requests] == [1] * 5
    assert clock.now_s == pytest.approx(1_000.0 + 5 * 0.004)  # no wait beyond the round trips


CAP_S = limits.group_commit_linger_max_ms / 1000


def link_after(batches: int, rtt_s: float, *, reads: bool = False) -> NodeLink:
    """A link whose last rpc carried ``batches`` shard batches and took ``rtt_s``."""
    link = NodeLink(stub=None, reads=reads)  # type: ignore[arg-type] - linger_s never calls it
    link._last_batches = batches
    link._last_rtt_s = rtt_s
    return link


def test_a_submit_that_carried_one_batch_earns_no_linger() -> None:
    assert link_after(batches=0, rtt_s=0.5).linger_s() == 0.0
    assert link_after(batches=1, rtt_s=0.5).linger_s() == 0.0


def test_after_a_busy_submit_the_linger_is_a_fraction_of_its_round_trip_capped() -> None:
    quick = link_after(batches=3, rtt_s=0.004).linger_s()
    assert quick == pytest.approx(limits.group_commit_linger_rtt_fraction * 0.004)
    assert 0 < quick < CAP_S  # a quick node: a short wait
    assert link_after(batches=3, rtt_s=10.0).linger_s() == pytest.approx(CAP_S)  # never more


def test_a_read_link_lingers_for_a_larger_share_of_its_shorter_round_trip() -> None:
    assert link_after(batches=1, rtt_s=0.002, reads=True).linger_s() == 0.0  # a lone reader
    probe_round = link_after(batches=3, rtt_s=0.002, reads=True).linger_s()
    assert probe_round == pytest.approx(limits.group_commit_read_linger_rtt_fraction * 0.002)
    assert probe_round > link_after(batches=3, rtt_s=0.002).linger_s()
    assert link_after(batches=3, rtt_s=10.0, reads=True).linger_s() == pytest.approx(CAP_S)


def test_an_idle_link_is_its_turn_at_once_and_a_busy_one_waits_for_its_next_submit(
    clock: Clock,
) -> None:
    node = HeldNode()
    link = NodeLink(node)  # type: ignore[arg-type]

    async def scenario() -> None:
        await asyncio.wait_for(link.wait_turn(), 1.0)  # idle: returns without waiting
        first = asyncio.ensure_future(link.submit(0, b"first", 5.0))
        await node.submitted.wait()  # the first Submit is on the wire, held by the node
        turn = asyncio.ensure_future(link.wait_turn())
        await _real_sleep(0)
        await _real_sleep(0)
        assert not turn.done()  # busy: the turn comes when the link forms its next Submit
        node.release.set()
        await asyncio.wait_for(turn, 1.0)
        assert (await first).result_batch == b"first"

    asyncio.run(scenario())


def test_a_queue_that_lines_up_as_the_link_goes_idle_is_not_stranded() -> None:
    """A waiter that lines up in the very step after the turn was given, when nothing is left
    to send, must still get its turn: the link goes idle and lets it through."""
    node = HeldNode()
    link = NodeLink(node)  # type: ignore[arg-type]

    async def line_up_twice() -> None:
        await link.wait_turn()
        await link.wait_turn()  # lines up again at once, enqueuing nothing

    async def scenario() -> None:
        first = asyncio.ensure_future(link.submit(0, b"first", 5.0))
        await node.submitted.wait()
        waiter = asyncio.ensure_future(line_up_twice())
        await _real_sleep(0)
        node.release.set()
        await asyncio.wait_for(waiter, 1.0)
        await first

    asyncio.run(scenario())
    assert len(node.requests) == 1


def test_calls_that_queue_while_a_submit_is_in_flight_share_the_next_entry() -> None:
    """Shard 1's calls arrive one by one while the leader's link is busy with shard 0. They
    used to leave as soon as shard 1's queue saw its first one (that one alone in the next
    Submit, the rest in yet another): now the queue takes its calls at the link's next turn,
    and all of them travel as one batch, one Raft entry."""
    config = parse_config(generate_config(), environ={})
    leader = config.node(config.shards[0].preferred_leader).address
    same_leader = next(
        shard.index
        for shard in config.shards[1:]
        if config.node(shard.preferred_leader).address == leader
    )
    node = HeldNode(results=True)
    stub = ClusterStub(config)
    stub._leaders._links[leader, False] = NodeLink(node)  # type: ignore[arg-type]

    def command(account_id: int) -> pb.Command:
        return pb.Command(create_account=pb.CreateAccount(account_id=account_id))

    async def scenario() -> list[pb.Result]:
        busy = asyncio.ensure_future(stub.submit(0, command(1), 5.0))
        await node.submitted.wait()
        later = []
        for account_id in range(10, 15):  # one call per loop step, all while shard 0 is out
            later.append(asyncio.ensure_future(stub.submit(same_leader, command(account_id), 5.0)))
            await _real_sleep(0)
        node.release.set()
        return [await busy, *[await call for call in later]]

    results = asyncio.run(scenario())
    assert [r.account.account_id for r in results] == [1, 10, 11, 12, 13, 14]
    assert [[item.shard for item in request.shards] for request in node.requests] == [
        [0],
        [same_leader],
    ]
    entry = pb.CommandBatch.FromString(node.requests[1].shards[0].command_batch)
    assert [c.create_account.account_id for c in entry.commands] == [10, 11, 12, 13, 14]


def test_batches_beyond_the_submit_bound_go_in_the_next_submit(clock: Clock) -> None:
    node = FakeNode(clock, rtt_s=0.002)
    link = NodeLink(node)  # type: ignore[arg-type]
    count = limits.node_submit_batches_max + 6
    outcomes = asyncio.run(submit_together(link, range(count)))
    assert [len(request.shards) for request in node.requests] == [
        limits.node_submit_batches_max,
        6,
    ]
    assert [outcome.shard for outcome in outcomes] == list(range(count))  # each its own answer
    assert [outcome.result_batch for outcome in outcomes] == [b"batch-%d" % s for s in range(count)]


def test_a_transport_error_fails_every_batch_of_that_submit_and_no_other(clock: Clock) -> None:
    node = FakeNode(clock, rtt_s=0.002)
    node.failures = [unavailable()]
    link = NodeLink(node)  # type: ignore[arg-type]

    async def scenario() -> tuple[list[Any], list[Any]]:
        first = asyncio.ensure_future(submit_together(link, range(4)))
        while not node.requests:  # until the first Submit is on the wire
            await _real_sleep(0)
        # These wait for the next Submit.
        second = await submit_together(link, range(4, 6))
        return await first, second

    failed, sent = asyncio.run(scenario())
    assert len(node.requests) == 2 and len(node.requests[0].shards) == 4
    assert all(isinstance(error, grpc.aio.AioRpcError) for error in failed)
    assert {error.code() for error in failed} == {grpc.StatusCode.UNAVAILABLE}
    assert [outcome.shard for outcome in sent] == [4, 5]


# -- the read link: the same coalescing, through ReadMany ---------------------------------------


def query(account_id: int) -> pb.Query:
    return pb.Query(get_account=pb.GetAccount(account_id=account_id))


def test_reads_of_several_shards_share_one_read_many(clock: Clock) -> None:
    node = FakeNode(clock, rtt_s=0.004)
    link = NodeLink(node, reads=True)  # type: ignore[arg-type]

    async def scenario() -> list[Any]:
        first = await link.read(0, [query(1)], 5.0)  # alone: sent at once
        together = await asyncio.gather(
            *(link.read(shard, [query(shard), query(100 + shard)], 5.0) for shard in range(4))
        )
        return [first, *together]

    outcomes = asyncio.run(scenario())
    assert [len(request.reads) for request in node.requests] == [1, 4]  # one rpc for four
    assert all(isinstance(request, node_pb.ReadManyRequest) for request in node.requests)
    for shard, outcome in enumerate(outcomes[1:]):
        assert outcome.shard == shard
        assert [r.account.account_id for r in outcome.results] == [shard, 100 + shard]


def test_a_link_carries_one_kind_of_call() -> None:
    async def scenario() -> None:
        with pytest.raises(AssertionError):
            await NodeLink(None, reads=True).submit(0, b"x", 1.0)  # type: ignore[arg-type]
        with pytest.raises(AssertionError):
            await NodeLink(None).read(0, [query(1)], 1.0)  # type: ignore[arg-type]

    asyncio.run(scenario())
