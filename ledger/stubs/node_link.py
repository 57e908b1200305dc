"""NodeLink: coalesces the shard batches a gateway sends to one node into one Submit rpc.

A link carries one kind of call: ``NodeLink(stub)`` the Submits, ``NodeLink(stub, reads=True)``
the reads, whose shard batches travel together in one ReadMany rpc the same way (so reads never
wait behind a Submit, and a node answers many shards' reads for the cost of one rpc).

Each Submit costs a fixed amount of CPU on both ends whatever it carries, and each Raft entry
costs a fixed amount on all three replicas, so the link holds at most one Submit in flight per
node, and the shard queues form their batches as late as they can: a shard queue that finds
the link busy waits for the link's next turn (``wait_turn``) before it takes its queued calls,
so everything that queued meanwhile rides in the next Submit, in one Raft entry per shard.

The turn comes when the previous Submit is back, plus a linger when that Submit showed
concurrency (it carried several shard batches): a fraction of its round trip, at most
``group_commit_linger_max_ms`` (``linger_s``). A read link lingers for a larger multiple of
its round trip, which is only a probe round: each shard batch of reads costs a ReadIndex probe
on the leader, so the fuller the batches, the fewer probes per read. The window adapts: a lone
caller never waits (an idle link is its turn at once, and one batch per Submit means no
linger), a few callers on a quick node wait a millisecond or two, a loaded node (long round
trips) fills its entries for up to the cap. On a CPU-bound cluster this is what raises
throughput: fewer, fuller entries cost less CPU per call than the wait costs in latency. All
batches of one Submit share its fate on a transport error.
"""

from __future__ import annotations

import asyncio
import time

import grpc

from ledger import limits
from ledger.pb import ledger_internal_pb2 as pb
from ledger.pb import ledger_node_pb2 as node_pb
from ledger.pb import ledger_node_pb2_grpc

__all__ = ["NodeLink"]


class _Pending:
    __slots__ = ("commands", "deadline_s", "future")

    def __init__(
        self,
        commands: node_pb.ShardCommands | node_pb.ReadRequest,
        deadline_s: float,
        future: asyncio.Future[node_pb.ShardOutcome],
    ) -> None:
        self.commands = commands
        self.deadline_s = deadline_s
        self.future = future


class NodeLink:
    def __init__(
        self,
        stub: ledger_node_pb2_grpc.LedgerNodeStub,
        call_metadata: tuple[tuple[str, str], ...] = (),
        *,
        reads: bool = False,
    ) -> None:
        self._stub = stub
        self._call_metadata = call_metadata  # the node credential, when the channel has none
        self._reads = reads
        self._pending: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None
        self._turn_waiters: list[asyncio.Future[None]] = []  # see wait_turn
        self._last_batches = 0  # shard batches the last Submit carried
        self._last_rtt_s = 0.0  # and its round trip

    async def submit(
        self, shard: int, command_batch: bytes, timeout_s: float
    ) -> node_pb.ShardOutcome:
        """The node's outcome for this batch; raises ``grpc.aio.AioRpcError`` if the rpc fails."""
        assert not self._reads, "a read link carries reads only"
        commands = node_pb.ShardCommands(shard=shard, command_batch=command_batch)
        return await self._enqueue(commands, timeout_s)

    async def read(
        self, shard: int, queries: list[pb.Query], timeout_s: float
    ) -> node_pb.ShardOutcome:
        """The node's outcome for these reads; raises ``grpc.aio.AioRpcError`` if the rpc fails."""
        assert self._reads, "a submit link carries submits only"
        return await self._enqueue(node_pb.ReadRequest(shard=shard, queries=queries), timeout_s)

    async def _enqueue(
        self, item: node_pb.ShardCommands | node_pb.ReadRequest, timeout_s: float
    ) -> node_pb.ShardOutcome:
        future: asyncio.Future[node_pb.ShardOutcome] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(item, time.monotonic() + timeout_s, future))
        if self._idle():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_until_empty())
        return await future

    def _idle(self) -> bool:
        """No flush loop runs: nothing is on the wire, the next call is sent at once."""
        return self._flusher is None or self._flusher.done()

    async def wait_turn(self) -> None:
        """Return when the link is about to form its next rpc, at once if it is idle.

        A shard queue calls this before it takes its queued calls for a batch: while a Submit
        is in flight, more calls join the queue, and the batch (one Raft entry) carries them
        all. Each waiter has its own future, so a cancelled waiter cancels nobody else's.
        """
        if self._idle():
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._turn_waiters.append(turn)
        await turn

    def linger_s(self) -> float:
        """How long to let the next Submit fill once the previous one is back (see module)."""
        if self._last_batches <= 1:
            return 0.0
        fraction = (
            limits.group_commit_read_linger_rtt_fraction
            if self._reads
            else limits.group_commit_linger_rtt_fraction
        )
        return min(limits.group_commit_linger_max_ms / 1000, fraction * self._last_rtt_s)

    def _give_turn(self) -> None:
        """Wake every ``wait_turn`` caller."""
        waiters, self._turn_waiters = self._turn_waiters, []
        for turn in waiters:
            if not turn.done():
                turn.set_result(None)

    async def _flush_until_empty(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: limits.node_submit_batches_max]
                del self._pending[: len(batch)]
                self._last_batches = len(batch)
                sent_s = time.monotonic()
                try:
                    await self._send(batch)
                    self._last_rtt_s = time.monotonic() - sent_s
                # Anything _send did not turn into outcomes is a bug: hand it to every caller
                # of this Submit (each one raises it) rather than leave them waiting forever.
                except Exception as error:  # noqa: BLE001
                    _fail(batch, error)
                await self._next_turn()
        finally:
            # A queue that lined up in the last step must not wait for a turn that never
            # comes: from now on the link is idle, and it sends at once.
            self._give_turn()

    async def _next_turn(self) -> None:
        """Between two Submits: let the shard queues form their batches for the next one.

        One step for the queues whose batches just came back to line up (their senders wake
        in the next step and go straight to ``wait_turn``), the linger, then one step for the
        woken queues to enqueue (no await between their wake-up and ``_enqueue``): every shard
        with calls queued rides in the next Submit.
        """
        await asyncio.sleep(0)
        if not self._turn_waiters:
            return
        linger_s = self.linger_s()
        if linger_s > 0:
            await asyncio.sleep(linger_s)
        self._give_turn()
        await asyncio.sleep(0)

    async def _send(self, batch: list[_Pending]) -> None:
        timeout_s = max(item.deadline_s for item in batch) - time.monotonic()
        timeout_ms = max(1, int(timeout_s * 1000))
        reads = [p.commands for p in batch if isinstance(p.commands, node_pb.ReadRequest)]
        shards = [p.commands for p in batch if isinstance(p.commands, node_pb.ShardCommands)]
        assert len(reads if self._reads else shards) == len(batch), "one kind of call per link"
        try:
            response: node_pb.SubmitResponse | node_pb.ReadManyResponse
            if self._reads:
                response = await self._stub.ReadMany(
                    node_pb.ReadManyRequest(reads=reads, timeout_ms=timeout_ms),
                    timeout=max(timeout_s, 0.001),
                    metadata=self._call_metadata,
                )
            else:
                response = await self._stub.Submit(
                    node_pb.SubmitRequest(shards=shards, timeout_ms=timeout_ms),
                    timeout=max(timeout_s, 0.001),
                    metadata=self._call_metadata,
                )
        except grpc.aio.AioRpcError as error:
            _fail(batch, error)
            return
        assert len(response.outcomes) == len(batch)
        for item, outcome in zip(batch, response.outcomes, strict=True):
            if not item.future.done():
                item.future.set_result(outcome)


def _fail(batch: list[_Pending], error: BaseException) -> None:
    """Every caller of ``batch`` still waiting raises ``error``."""
    for item in batch:
        if not item.future.done():
            item.future.set_exception(error)
