"""NodeLink: coalesces the shard batches a gateway sends to one node into one Submit rpc.

Each Submit costs a fixed amount of CPU on both ends whatever it carries, and each Raft entry
costs a fixed amount on all three replicas (notes/throughput-prototype.md), so under load the
link holds at most one Submit in flight per node and lingers ``group_commit_linger_ms`` before
sending the next when the last Submit showed concurrency (several shard batches): meanwhile
more calls join the batches. An idle link, or a lone caller, sends at once and pays no linger. All batches of one Submit share its fate on a transport error.
"""

from __future__ import annotations

import asyncio
import time

import grpc

from ledger import limits
from ledger.pb import ledger_node_pb2 as node_pb
from ledger.pb import ledger_node_pb2_grpc

__all__ = ["NodeLink"]


class _Pending:
    __slots__ = ("commands", "deadline_s", "future")

    def __init__(self, commands: node_pb.ShardCommands, deadline_s: float,
                 future: asyncio.Future[node_pb.ShardOutcome]) -> None:
        self.commands = commands
        self.deadline_s = deadline_s
        self.future = future


class NodeLink:
    def __init__(self, stub: ledger_node_pb2_grpc.LedgerNodeStub) -> None:
        self._stub = stub
        self._pending: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None
        self._last_send_s = 0.0
        self._last_send_batches = 0

    async def submit(self, shard: int, command_batch: bytes, timeout_s: float
                     ) -> node_pb.ShardOutcome:
        """The node's outcome for this batch; raises ``grpc.aio.AioRpcError`` if the rpc fails."""
        future: asyncio.Future[node_pb.ShardOutcome] = asyncio.get_running_loop().create_future()
        commands = node_pb.ShardCommands(shard=shard, command_batch=command_batch)
        self._pending.append(_Pending(commands, time.monotonic() + timeout_s, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_until_empty())
        return await future

    async def _flush_until_empty(self) -> None:
        linger_s = limits.group_commit_linger_ms / 1000
        while self._pending:
            since_last_s = time.monotonic() - self._last_send_s
            # Busy means concurrent callers: the last Submit carried several shard batches and
            # left recently. A lone caller (one batch per Submit) never waits.
            busy = self._last_send_batches > 1 and since_last_s < linger_s * 2
            if busy:
                await asyncio.sleep(max(linger_s - since_last_s, 0.0))
            batch = self._pending[: limits.node_submit_batches_max]
            del self._pending[: len(batch)]
            self._last_send_s = time.monotonic()
            self._last_send_batches = len(batch)
            try:
                await self._send(batch)
            except Exception as error:  # a bug: fail these batches rather than leave them waiting
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(error)

    async def _send(self, batch: list[_Pending]) -> None:
        timeout_s = max(item.deadline_s for item in batch) - time.monotonic()
        request = node_pb.SubmitRequest(
            shards=[item.commands for item in batch], timeout_ms=max(1, int(timeout_s * 1000))
        )
        try:
            response = await self._stub.Submit(request, timeout=max(timeout_s, 0.001))
        except grpc.aio.AioRpcError as error:
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(error)
            return
        assert len(response.outcomes) == len(batch)
        for item, outcome in zip(batch, response.outcomes, strict=True):
            if not item.future.done():
                item.future.set_result(outcome)
