"""ClusterStub: the gateway's route to shard leaders, with group commit and bounded retries.

Per shard, calls queue up (at most ``submit_queue_depth_max``; beyond that they are refused at
once with RESOURCE_EXHAUSTED) and travel to the leader in batches: whatever queued until the
leader's link is ready to send leaves together as one batch, one Raft entry, one WriteBatch.
The batches of all shards led by one node share one Submit rpc (``NodeLink``, which also
decides when the next one leaves). Reads batch the same way into one ReadMany, each shard's
answered after one leadership check.

Leaders are cached per shard, starting at the config's preferred leader; NOT_LEADER answers
carry a hint that is followed, an unreachable node moves the guess to the next replica. A batch
is retried with exponential backoff until the latest deadline among its calls; it is always
resent as the same bytes, so its commands keep their request ids and the state machine applies
each at most once, whatever happened to earlier attempts. A call that runs out of time gets
UNAVAILABLE (nothing applied, e.g. no quorum) or DEADLINE_EXCEEDED (outcome unknown).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc

from ledger import limits
from ledger.config import ClusterConfig
from ledger.pb import ledger_internal_pb2 as pb
from ledger.pb import ledger_node_pb2 as node_pb
from ledger.pb import ledger_node_pb2_grpc
from ledger.stubs.errors import DeadlineExceeded, Overloaded, ShardUnavailable
from ledger.stubs.node_link import NodeLink

__all__ = ["ClusterStub"]

log = logging.getLogger(__name__)

_UNKNOWN_OUTCOME = {node_pb.REFUSAL_APPLIED_UNKNOWN}


@dataclass
class _Call:
    payloads: list[Any]  # commands or queries of one caller, answered together
    deadline_s: float  # time.monotonic()
    future: asyncio.Future[Any] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class _AttemptFailed(Exception):
    def __init__(self, message: str, outcome_unknown: bool, hint: str = "") -> None:
        super().__init__(message)
        self.outcome_unknown = outcome_unknown
        self.hint = hint  # the leader's address, when the node knew it


class _Leaders:
    """Leader cache: shard -> node gRPC address, and one channel per node."""

    def __init__(self, config: ClusterConfig) -> None:
        self._config = config
        self._leader = {s.index: config.node(s.preferred_leader).address for s in config.shards}
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._links: dict[tuple[str, bool], NodeLink] = {}  # (address, reads) -> link
        # Sent with every call: TLS-only channels, no per-call credential plugin (see
        # ``ledger.node.credentials.node_call_metadata``).
        self.call_metadata = config.node_call_metadata()

    def leader(self, shard: int) -> str:
        return self._leader[shard]

    def stub(self, address: str) -> ledger_node_pb2_grpc.LedgerNodeStub:
        channel = self._channels.get(address)
        if channel is None:
            channel = self._config.node_channel(address, aio=True, attach_token=False)
            self._channels[address] = channel
        return ledger_node_pb2_grpc.LedgerNodeStub(channel)

    def link(self, address: str, *, reads: bool = False) -> NodeLink:
        """The node's Submit link, or its read link (``reads``): one of each per node."""
        link = self._links.get((address, reads))
        if link is None:
            link = NodeLink(self.stub(address), self.call_metadata, reads=reads)
            self._links[address, reads] = link
        return link

    def follow(self, shard: int, failed_address: str, hint: str) -> None:
        replicas = [node.address for node in self._config.replicas(shard)]
        if hint and hint in replicas and hint != failed_address:
            self._leader[shard] = hint
        elif self._leader[shard] == failed_address:
            position = replicas.index(failed_address) if failed_address in replicas else -1
            self._leader[shard] = replicas[(position + 1) % len(replicas)]

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()


Encode = Callable[[list[Any]], Any]
Attempt = Callable[[str, Any, float], Awaitable[list[Any]]]


class _ShardQueue:
    """Group commit for one shard and one kind of call (submit or read)."""

    def __init__(
        self, shard: int, leaders: _Leaders, encode: Encode, attempt: Attempt, *, reads: bool
    ) -> None:
        self._shard = shard
        self._leaders = leaders
        self._reads = reads  # which of the leader's links carries this queue's batches
        self._encode = encode
        self._attempt = attempt
        self._queue: deque[_Call] = deque()
        self._senders: set[asyncio.Task[None]] = set()  # referenced: the loop keeps weak refs

    async def call(self, payloads: list[Any], timeout_s: float) -> list[Any]:
        """Results for ``payloads``, in order; they travel in one entry with other callers'."""
        assert 0 < len(payloads) <= limits.entry_commands_max
        if len(self._queue) >= limits.submit_queue_depth_max:
            raise Overloaded(f"shard {self._shard} queue is full")
        call = _Call(payloads, time.monotonic() + timeout_s)
        self._queue.append(call)
        if len(self._senders) < limits.shard_batches_in_flight_max:
            task = asyncio.get_running_loop().create_task(self._send_until_empty())
            self._senders.add(task)
            task.add_done_callback(self._senders.discard)
        results: list[Any] = await call.future
        return results

    async def _send_until_empty(self) -> None:
        try:
            while self._queue:
                await self._wait_for_the_link()
                batch = self._next_batch()
                if not batch:
                    continue
                try:
                    await self._send(batch)
                except Exception as error:  # a bug below us: fail these calls, keep the queue
                    log.exception("shard %d: sending a batch failed", self._shard)
                    for call in batch:
                        if not call.future.done():
                            call.future.set_exception(error)
        finally:
            # Leave the sender set in the same step that found the queue empty: a done callback
            # runs a loop iteration later, and a call queued meanwhile would find no sender.
            self._senders.discard(asyncio.current_task())

    async def _wait_for_the_link(self) -> None:
        """Take the calls as late as possible: whatever queues until the leader's link forms
        its next rpc joins this batch (see ``NodeLink.wait_turn``)."""
        try:
            link = self._leaders.link(self._leaders.leader(self._shard), reads=self._reads)
            await link.wait_turn()
        except Exception:  # only batching is lost: never strand the queued calls
            log.exception("shard %d: waiting for the node link failed", self._shard)

    def _next_batch(self) -> list[_Call]:
        """Queued calls for one entry; a call whose deadline passed while it waited is answered
        DEADLINE_EXCEEDED (it was never sent) instead of riding along with newer calls."""
        now_s = time.monotonic()
        batch: list[_Call] = []
        size = 0
        while self._queue and (
            not batch or size + len(self._queue[0].payloads) <= limits.batch_commands_max
        ):
            call = self._queue.popleft()
            if call.deadline_s - limits.deadline_margin_s <= now_s:
                if not call.future.done():
                    call.future.set_exception(
                        DeadlineExceeded(
                            f"shard {self._shard}: deadline passed before the call was sent"
                        )
                    )
                continue
            batch.append(call)
            size += len(call.payloads)
        return batch

    async def _send(self, batch: list[_Call]) -> None:
        backoff_s = limits.leader_backoff_ms_min / 1000
        deadline_s = max(call.deadline_s for call in batch) - limits.deadline_margin_s
        # Time ran out before any attempt: nothing was sent, but the answer is the deadline.
        failure = _AttemptFailed("deadline passed before the call was sent", outcome_unknown=True)
        # Once one attempt may have reached a leader, later clean refusals prove nothing: that
        # entry can still commit after a new leader is elected. Never answer "nothing applied".
        maybe_applied = False
        # Encoded once: every retry resends the same bytes, so request ids never change.
        prepared = self._encode([payload for call in batch for payload in call.payloads])
        while True:
            remaining_s = deadline_s - time.monotonic()
            if remaining_s <= 0:
                break
            address = self._leaders.leader(self._shard)
            try:
                results = await self._attempt(address, prepared, remaining_s)
            except _AttemptFailed as error:
                failure = error
                maybe_applied = maybe_applied or error.outcome_unknown
                self._leaders.follow(self._shard, address, error.hint)
            else:
                if len(results) != sum(len(call.payloads) for call in batch):
                    raise AssertionError(f"{len(results)} results for {len(batch)} calls")
                start = 0
                for call in batch:
                    end = start + len(call.payloads)
                    if not call.future.done():
                        call.future.set_result(results[start:end])
                    start = end
                return
            if deadline_s - time.monotonic() < backoff_s:
                break
            await asyncio.sleep(backoff_s)
            backoff_s = min(backoff_s * 2, limits.leader_backoff_ms_max / 1000)
        unknown = failure.outcome_unknown or maybe_applied
        error_type = DeadlineExceeded if unknown else ShardUnavailable
        detail = " (an earlier attempt's outcome is unknown)" if maybe_applied else ""
        for call in batch:
            if not call.future.done():
                call.future.set_exception(error_type(f"shard {self._shard}: {failure}{detail}"))


class _Refused(_AttemptFailed):
    def __init__(self, outcome: node_pb.ShardOutcome) -> None:
        super().__init__(
            f"{node_pb.Refusal.Name(outcome.refusal)}: {outcome.message}",
            outcome_unknown=outcome.refusal in _UNKNOWN_OUTCOME,
            hint=outcome.leader_address,
        )


def _attempt_timeout_s(remaining_s: float) -> float:
    """One attempt on one node never takes the whole deadline: a paused node costs this much."""
    return min(remaining_s, limits.node_attempt_timeout_s)


class ClusterStub:
    def __init__(self, config: ClusterConfig) -> None:
        self._leaders = _Leaders(config)
        self._submits = {
            s.index: _ShardQueue(
                s.index,
                self._leaders,
                _encode_commands,
                self._submit_attempt(s.index),
                reads=False,
            )
            for s in config.shards
        }
        self._reads = {
            s.index: _ShardQueue(
                s.index, self._leaders, list, self._read_attempt(s.index), reads=True
            )
            for s in config.shards
        }

    async def submit(self, shard: int, command: pb.Command, timeout_s: float) -> pb.Result:
        results = await self._submits[shard].call([command], timeout_s)
        return results[0]  # type: ignore[no-any-return]

    async def submit_many(
        self, shard: int, commands: list[pb.Command], timeout_s: float
    ) -> list[pb.Result]:
        return await self._submits[shard].call(commands, timeout_s)

    async def read(self, shard: int, query: pb.Query, timeout_s: float) -> pb.Result:
        results = await self._reads[shard].call([query], timeout_s)
        return results[0]  # type: ignore[no-any-return]

    async def close(self) -> None:
        await self._leaders.close()

    def _submit_attempt(self, shard: int) -> Attempt:
        async def attempt(address: str, command_batch: bytes, remaining_s: float) -> list[Any]:
            link = self._leaders.link(address)
            outcome = await _rpc(
                link.submit,
                shard,
                command_batch,
                _attempt_timeout_s(remaining_s),
                outcome_unknown=True,
            )
            if outcome.refusal != node_pb.REFUSAL_NONE:
                raise _Refused(outcome)
            return list(pb.ResultBatch.FromString(outcome.result_batch).results)

        return attempt

    def _read_attempt(self, shard: int) -> Attempt:
        async def attempt(address: str, queries: list[pb.Query], remaining_s: float) -> list[Any]:
            link = self._leaders.link(address, reads=True)
            outcome = await _rpc(
                link.read, shard, queries, _attempt_timeout_s(remaining_s), outcome_unknown=False
            )
            if outcome.refusal != node_pb.REFUSAL_NONE:
                raise _Refused(outcome)
            return list(outcome.results)

        return attempt


def _encode_commands(commands: list[pb.Command]) -> bytes:
    return pb.CommandBatch(commands=commands).SerializeToString()


# How gRPC words an UNAVAILABLE whose connection was never made (refused, unreachable, TLS
# handshake failed): the request never left this process.
_NEVER_CONNECTED = "failed to connect"


def never_reached_the_node(error: grpc.aio.AioRpcError) -> bool:
    """True only when the request certainly never reached the node.

    UNAVAILABLE alone does not say so: a node killed while it handles the Submit (after
    proposing the entry, which a new leader may still commit) ends the call with UNAVAILABLE
    "Socket closed" too. Only a connection that was never made proves nothing was sent.
    """
    return error.code() == grpc.StatusCode.UNAVAILABLE and _NEVER_CONNECTED in (
        error.details() or ""
    )


async def _rpc(method: Any, *args: Any, outcome_unknown: bool, **kwargs: Any) -> Any:
    try:
        return await method(*args, **kwargs)
    except grpc.aio.AioRpcError as error:
        # A failed submit may still have reached the node and been proposed: its outcome is
        # unknown unless the connection was never made, which is what a dead node looks like.
        unknown = outcome_unknown and not never_reached_the_node(error)
        reason = error.details() or error.code().name
        raise _AttemptFailed(f"node call failed: {error.code().name} ({reason})", unknown) from None
