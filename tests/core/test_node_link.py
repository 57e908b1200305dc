"""NodeLink's adaptive linger (ledger.stubs.node_link).

Goal: a lone caller never waits; under concurrency the wait follows the recent Submit round
trip (a fraction of it, counted from the previous send) and never exceeds the configured cap; a
link idle for a while stops waiting; batches beyond ``node_submit_batches_max`` go in the next
Submit; a transport error fails every batch of its Submit and no other.

Method: the link's state is set directly and ``linger_s`` read; then the flush loop is driven
through ``submit`` against a fake node, with ``time.monotonic`` and the linger's sleep replaced
by a fake clock that only the fake Submits and lingers move. No wall-clock time is measured.
"""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import grpc
import pytest

from ledger import limits
from ledger.pb import ledger_internal_pb2 as pb
from ledger.pb import ledger_node_pb2 as node_pb
from ledger.stubs import node_link
from ledger.stubs.node_link import NodeLink

CAP_S = limits.group_commit_linger_max_ms / 1000


def link(batches: int, rtt_s: float, since_last_s: float = 0.0) -> NodeLink:
    node_link = NodeLink(stub=None)  # type: ignore[arg-type] - linger_s never calls the node
    node_link._last_send_batches = batches
    node_link._rtt_ewma_s = rtt_s
    node_link._last_send_s = time.monotonic() - since_last_s
    return node_link


def test_a_lone_caller_never_waits() -> None:
    assert link(batches=1, rtt_s=0.5).linger_s() == 0.0


@pytest.mark.parametrize("rtt_s", [0.001, 0.004, 0.012])
def test_under_load_the_wait_follows_the_round_trip(rtt_s: float) -> None:
    wait_s = link(batches=6, rtt_s=rtt_s).linger_s()
    assert 0 < wait_s <= limits.group_commit_linger_rtt_fraction * rtt_s


def test_the_wait_is_capped() -> None:
    assert link(batches=6, rtt_s=10.0).linger_s() <= CAP_S


def test_time_since_the_last_submit_counts_and_an_idle_link_does_not_wait() -> None:
    assert link(batches=6, rtt_s=10.0, since_last_s=CAP_S / 2).linger_s() <= CAP_S / 2
    assert link(batches=6, rtt_s=10.0, since_last_s=CAP_S * 3).linger_s() == 0.0


# -- the flush loop, driven through ``submit`` with a fake node and a fake clock ----------------


class Clock:
    """``time.monotonic`` for node_link: moves only when a fake Submit or a linger moves it."""

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


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(node_link, "time", SimpleNamespace(monotonic=clock.monotonic))
    return clock


@pytest.fixture
def lingers(monkeypatch: pytest.MonkeyPatch, clock: Clock) -> list[float]:
    """Every linger the link sleeps, in fake seconds (no real time passes)."""
    slept: list[float] = []

    async def sleep(delay_s: float) -> None:
        slept.append(delay_s)
        clock.now_s += delay_s
        await _real_sleep(0)

    monkeypatch.setattr(node_link.asyncio, "sleep", sleep)
    return slept


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


def test_a_lone_caller_is_sent_at_once_every_time(clock: Clock, lingers: list[float]) -> None:
    node = FakeNode(clock, rtt_s=0.004)
    link = NodeLink(node)  # type: ignore[arg-type]

    async def scenario() -> None:
        for shard in range(5):
            outcome = await link.submit(shard, b"alone", 5.0)
            assert outcome.result_batch == b"alone"

    asyncio.run(scenario())
    assert lingers == []
    assert [len(request.shards) for request in node.requests] == [1] * 5


def test_after_a_busy_submit_the_link_lingers_a_fraction_of_the_round_trip(
    clock: Clock, lingers: list[float]
) -> None:
    """Slow Submits raise the round-trip average; after a quick Submit that carried several
    batches, the next one waits for the rest of ``fraction * average`` since the last send."""
    node = FakeNode(clock, rtt_s=0.008)
    link = NodeLink(node)  # type: ignore[arg-type]

    async def scenario() -> None:
        for _ in range(20):  # busy Submits at 8 ms: the average approaches 8 ms
            await submit_together(link, range(3))
        assert lingers == []  # a busy link that is slow gathers callers while it waits anyway
        average_s = link._rtt_ewma_s
        assert 0.007 < average_s < 0.008
        node.rtt_s = 0.001  # the node is quick again
        await submit_together(link, range(3))
        quick_average_s = link._rtt_ewma_s
        await submit_together(link, range(3))
        expected_s = limits.group_commit_linger_rtt_fraction * quick_average_s - 0.001
        assert lingers == [pytest.approx(expected_s)]

    asyncio.run(scenario())
    assert all(len(request.shards) == 3 for request in node.requests)


def test_the_linger_never_exceeds_the_cap(clock: Clock, lingers: list[float]) -> None:
    node = FakeNode(clock, rtt_s=1.0)  # a very slow node: half its round trip is far past 10 ms
    link = NodeLink(node)  # type: ignore[arg-type]

    async def scenario() -> None:
        for _ in range(20):
            await submit_together(link, range(3))
        node.rtt_s = 0.0
        await submit_together(link, range(3))
        await submit_together(link, range(3))

    asyncio.run(scenario())
    assert lingers == [pytest.approx(CAP_S)]


def test_batches_beyond_the_submit_bound_go_in_the_next_submit(
    clock: Clock, lingers: list[float]
) -> None:
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


def test_a_transport_error_fails_every_batch_of_that_submit_and_no_other(
    clock: Clock, lingers: list[float]
) -> None:
    node = FakeNode(clock, rtt_s=0.002)
    node.failures = [unavailable()]
    link = NodeLink(node)  # type: ignore[arg-type]

    async def scenario() -> tuple[list[Any], list[Any]]:
        first = asyncio.ensure_future(submit_together(link, range(4)))
        await _real_sleep(0)
        await _real_sleep(0)  # the first Submit is on the wire; these wait for the next
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


def test_reads_of_several_shards_share_one_read_many(clock: Clock, lingers: list[float]) -> None:
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
