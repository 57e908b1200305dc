"""NodeLink: coalesces the shard batches a gateway sends to one node into one Submit rpc.

A link carries one kind of call: ``NodeLink(stub)`` the Submits, ``NodeLink(stub, reads=True)``
the reads, whose shard batches travel together in one ReadMany rpc the same way (so reads never
wait behind a Submit, and a node answers many shards' reads for the cost of one rpc).

Each Submit costs a fixed amount of CPU on both ends whatever it carries, and each Raft entry
costs a fixed amount on all three replicas, so the link holds at most one Submit in flight per
node and, when the last Submit showed concurrency (several shard batches), lingers before
sending the next: a fraction of the recent round trip, at most ``group_commit_linger_max_ms``
(``linger_s``). Meanwhile more calls join the batches. An idle link, or a lone caller, sends at
once and pays no linger. All batches of one Submit share its fate on a transport error.
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

_RTT_EWMA_WEIGHT = 0.2


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
        self._last_send_s = 0.0
        self._last_send_batches = 0
        self._rtt_ewma_s = 0.0  # Submit round trip, exponentially weighted

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
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_until_empty())
        return await future

    def linger_s(self) -> float:
        """How long to let the next Submit fill: a fraction of the recent round trip, capped.

        Busy means concurrent callers: the last Submit carried several shard batches and left
        recently. A lone caller (one batch per Submit) never waits. Under load the wait follows
        the node's round trip: when the node is quick, waiting long would only add latency;
        when it is slow, calls pile up anyway and a longer wait fills the Raft entries.
        """
        linger_max_s = limits.group_commit_linger_max_ms / 1000
        since_last_s = time.monotonic() - self._last_send_s
        if self._last_send_batches <= 1 or since_last_s >= linger_max_s * 2:
            return 0.0
        target_s = min(linger_max_s, limits.group_commit_linger_rtt_fraction * self._rtt_ewma_s)
        return max(target_s - since_last_s, 0.0)

    async def _flush_until_empty(self) -> None:
        while self._pending:
            linger_s = self.linger_s()
            if linger_s > 0:
                await asyncio.sleep(linger_s)
            batch = self._pending[: limits.node_submit_batches_max]
            del self._pending[: len(batch)]
            self._last_send_s = time.monotonic()
            self._last_send_batches = len(batch)
            try:
                await self._send(batch)
                rtt_s = time.monotonic() - self._last_send_s
                self._rtt_ewma_s += _RTT_EWMA_WEIGHT * (rtt_s - self._rtt_ewma_s)
            # Anything _send did not turn into outcomes is a bug: hand it to every caller of
            # this Submit (each one raises it) rather than leave them waiting forever.
            except Exception as error:  # noqa: BLE001
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(error)

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
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(error)
            return
        assert len(response.outcomes) == len(batch)
        for item, outcome in zip(batch, response.outcomes, strict=True):
            if not item.future.done():
                item.future.set_result(outcome)
