"""The internal node API (``LedgerNode``): submit command batches, linearizable reads, status.

Runs on the node's asyncio loop; PySyncObj runs every shard on the node's one Raft thread (the
``TickLoop``) and reports back through callbacks, which are handed to the loop with
``call_soon_threadsafe``. Only the leader of a shard accepts work: anything else gets NOT_LEADER
with the leader's gRPC address, so the gateway goes there directly instead of paying PySyncObj's
forwarding (and its unknown outcomes). In-flight entries per shard are bounded: beyond
``inflight_entries_max`` a submit is refused at once with OVERLOADED, never queued without bound.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from ledger import limits
from ledger.config import ClusterConfig
from ledger.node.read_barrier import BarrierFailed, ReadBarrier
from ledger.pb import ledger_internal_pb2 as pb
from ledger.pb import ledger_node_pb2 as node_pb
from ledger.pb import ledger_node_pb2_grpc
from ledger.replication.fatal import halt_on_apply_failure
from ledger.replication.leader_executor import LeaderExecutor
from ledger.replication.raft_group import EntryFate, ShardReplica
from ledger.replication.state_machine import (
    WRITE_SET_APPLIED,
    WRITE_SET_STALE,
    parse_commands,
)
from ledger.storage.base import APPLIED_KEY, ShardStore, decode_applied, digest_items

__all__ = ["NodeService", "inflight_entries_max"]

log = logging.getLogger(__name__)

inflight_entries_max = 64
write_set_attempts_max = 3  # a stale write set is executed again on the fresh state
timeout_ms_default = 5_000
timeout_ms_max = 60_000

# An entry that did not apply -> what the gateway may assume about the batch.
_REFUSALS: dict[EntryFate, node_pb.Refusal] = {
    EntryFate.OVERLOADED: node_pb.REFUSAL_OVERLOADED,
    EntryFate.NOT_LEADER: node_pb.REFUSAL_NOT_LEADER,
    EntryFate.UNKNOWN: node_pb.REFUSAL_APPLIED_UNKNOWN,
}


def _timeout_s(timeout_ms: int) -> float:
    return min(timeout_ms or timeout_ms_default, timeout_ms_max) / 1000


class NodeService(ledger_node_pb2_grpc.LedgerNodeServicer):
    def __init__(self, config: ClusterConfig, node_id: str, replicas: dict[int, ShardReplica]):
        self._config = config
        self._node_id = node_id
        self._replicas = replicas
        self._inflight = dict.fromkeys(replicas, 0)
        self._barriers = {
            shard: ReadBarrier(replica.confirm_read) for shard, replica in replicas.items()
        }
        self._executors = {
            shard: LeaderExecutor(replica.machine) for shard, replica in replicas.items()
        }

    # -- routing checks ---------------------------------------------------------------------

    def leader_address(self, shard: int) -> str:
        return self._node_address(shard, self._replicas[shard].leader_raft_address())

    def _node_address(self, shard: int, raft_address: str | None) -> str:
        """The node API address of a shard replica's Raft address ("" when unknown)."""
        if raft_address is None:
            return ""
        node = self._config.node_by_raft_address(shard, raft_address)
        return "" if node is None else node.address

    def _refuse(self, shard: int, refusal: node_pb.Refusal, message: str) -> node_pb.ShardOutcome:
        leader = self.leader_address(shard) if shard in self._replicas else ""
        return node_pb.ShardOutcome(
            shard=shard, refusal=refusal, leader_address=leader, message=message
        )

    def _check_leader(self, shard: int) -> node_pb.ShardOutcome | None:
        replica = self._replicas.get(shard)
        if replica is None:
            return self._refuse(shard, node_pb.REFUSAL_NOT_HOSTED, "shard is not hosted here")
        if not replica.is_leader():
            return self._refuse(shard, node_pb.REFUSAL_NOT_LEADER, "not the leader")
        if not replica.has_quorum():
            return self._refuse(shard, node_pb.REFUSAL_NO_QUORUM, "leader has no quorum")
        return None

    # -- Submit -----------------------------------------------------------------------------

    async def Submit(self, request: node_pb.SubmitRequest, context: Any) -> node_pb.SubmitResponse:
        await _check_shard_count(len(request.shards), context)
        timeout_s = _timeout_s(request.timeout_ms)
        outcomes = await asyncio.gather(
            *(
                self._submit_shard(item.shard, item.command_batch, timeout_s)
                for item in request.shards
            )
        )
        return node_pb.SubmitResponse(outcomes=outcomes)

    async def _submit_shard(
        self, shard: int, data: bytes, timeout_s: float
    ) -> node_pb.ShardOutcome:
        refusal = self._check_leader(shard)
        if refusal is not None:
            executor = self._executors.get(shard)  # None: not a shard of ours (or not a shard)
            if executor is not None:
                executor.reset()  # a view from an earlier leadership is not trusted
            return refusal
        if self._inflight[shard] >= inflight_entries_max:
            return self._refuse(shard, node_pb.REFUSAL_OVERLOADED, "too many entries in flight")
        commands = parse_commands(data)  # junk executes as no commands (never from a gateway)
        deadline_s = time.monotonic() + timeout_s
        for _ in range(write_set_attempts_max):
            outcome = await self._propose_once(shard, commands, deadline_s)
            if outcome is not None:
                return outcome
        # Every attempt was stale: nothing was applied, the gateway may retry.
        return self._refuse(shard, node_pb.REFUSAL_OVERLOADED, "write sets kept going stale")

    async def _propose_once(
        self, shard: int, commands: Sequence[pb.Command], deadline_s: float
    ) -> node_pb.ShardOutcome | None:
        """Execute, propose, wait: the outcome, or None when the write set was stale."""
        executor = self._executors[shard]
        try:
            prepared = executor.prepare(commands)
        except BaseException:  # noqa: BLE001 - a bug in the core: stop rather than diverge
            halt_on_apply_failure(shard)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[Any, EntryFate]] = loop.create_future()

        def on_applied(result: Any, fate: EntryFate) -> None:  # tick thread, or this one
            loop.call_soon_threadsafe(_resolve, future, (result, fate))

        self._inflight[shard] += 1
        try:
            self._replicas[shard].submit(prepared.entry, on_applied)
            remaining_s = max(deadline_s - time.monotonic(), 0.0)
            result, fate = await asyncio.wait_for(asyncio.shield(future), remaining_s)
        except TimeoutError:
            executor.reset()
            return self._refuse(shard, node_pb.REFUSAL_APPLIED_UNKNOWN, "no outcome in time")
        finally:
            self._inflight[shard] -= 1
        if fate is EntryFate.APPLIED and result == WRITE_SET_APPLIED:
            executor.applied(prepared.write_set_id)
            return node_pb.ShardOutcome(shard=shard, result_batch=prepared.result_batch)
        executor.reset()
        if fate is EntryFate.APPLIED and result == WRITE_SET_STALE:
            return None
        if fate is not EntryFate.APPLIED:
            return self._refuse(shard, _REFUSALS[fate], f"raft refused the entry ({fate.value})")
        # None: the index was applied before, so it cannot be this entry.
        return self._refuse(shard, node_pb.REFUSAL_APPLIED_UNKNOWN, "entry was a replay")

    # -- Read -------------------------------------------------------------------------------

    async def Read(self, request: node_pb.ReadRequest, context: Any) -> node_pb.ReadResponse:
        outcome = await self._read_shard(
            request.shard, request.queries, _timeout_s(request.timeout_ms)
        )
        return node_pb.ReadResponse(outcome=outcome)

    async def ReadMany(
        self, request: node_pb.ReadManyRequest, context: Any
    ) -> node_pb.ReadManyResponse:
        await _check_shard_count(len(request.reads), context)
        timeout_s = _timeout_s(request.timeout_ms)
        outcomes = await asyncio.gather(
            *(self._read_shard(read.shard, read.queries, timeout_s) for read in request.reads)
        )
        return node_pb.ReadManyResponse(outcomes=outcomes)

    async def _read_shard(
        self, shard: int, queries: Sequence[pb.Query], timeout_s: float
    ) -> node_pb.ShardOutcome:
        refusal = self._check_leader(shard)
        if refusal is not None:
            return refusal
        try:
            await asyncio.wait_for(self._barriers[shard].wait(), timeout_s)
        except (TimeoutError, BarrierFailed) as error:
            return self._refuse(shard, node_pb.REFUSAL_NOT_LEADER, f"read barrier: {error}")
        results = self._replicas[shard].machine.read_many(queries)
        return node_pb.ShardOutcome(shard=shard, results=results)

    # -- Status -----------------------------------------------------------------------------

    async def Status(self, request: node_pb.StatusRequest, context: Any) -> node_pb.StatusResponse:
        shards = []
        for shard, replica in sorted(self._replicas.items()):
            status = replica.status()
            digest = ""
            store_applied_index = replica.machine.applied_index
            if request.include_digest:
                digest, store_applied_index = await asyncio.to_thread(
                    _digest_and_index, replica.machine.store
                )
            shards.append(
                node_pb.ShardStatus(
                    shard=shard,
                    role=status.role.value,
                    term=status.term,
                    leader_address=self._node_address(shard, status.leader_raft_address),
                    raft_applied_index=status.applied_index,
                    raft_commit_index=status.commit_index,
                    store_applied_index=store_applied_index,
                    digest=digest,
                    has_quorum=status.has_quorum,
                    log_length=status.log_length,
                )
            )
        return node_pb.StatusResponse(node_id=self._node_id, shards=shards)


def _digest_and_index(store: ShardStore) -> tuple[str, int]:
    """The data digest and the applied index it belongs to, from one point-in-time snapshot.

    Read apart, an entry applied while the digest is computed would pair the new index with
    older data, and two healthy replicas at that index would seem to differ.
    """
    applied_index = 0

    def pairs() -> Iterator[tuple[bytes, bytes]]:
        nonlocal applied_index
        for key, value in store.items():
            if key == APPLIED_KEY:
                applied_index = decode_applied(value)
            yield key, value

    digest = digest_items(pairs())
    return digest, applied_index


async def _check_shard_count(count: int, context: Any) -> None:
    """A gateway sends at most ``node_submit_batches_max`` shard batches per rpc; more is not
    a gateway, and each batch costs a task here."""
    if count > limits.node_submit_batches_max:
        await context.abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"{count} shard batches in one call; at most {limits.node_submit_batches_max}",
        )


def _resolve(future: asyncio.Future[tuple[Any, EntryFate]], value: tuple[Any, EntryFate]) -> None:
    if not future.done():
        future.set_result(value)


_METHODS: dict[str, tuple[type[Any], type[Any]]] = {
    "Submit": (node_pb.SubmitRequest, node_pb.SubmitResponse),
    "Read": (node_pb.ReadRequest, node_pb.ReadResponse),
    "ReadMany": (node_pb.ReadManyRequest, node_pb.ReadManyResponse),
    "Status": (node_pb.StatusRequest, node_pb.StatusResponse),
}


def add_to_server(service: NodeService, server: grpc.aio.Server) -> None:
    """The generated servicer's methods, but requests are parsed here: a frame that is not the
    request message is INVALID_ARGUMENT (grpc would answer UNKNOWN for a parse error)."""
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(
            _parsing(getattr(service, name), request_type),
            response_serializer=response_type.SerializeToString,
        )
        for name, (request_type, response_type) in _METHODS.items()
    }
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                node_pb.DESCRIPTOR.services_by_name["LedgerNode"].full_name, handlers
            ),
        )
    )


def _parsing(method: Any, request_type: type[Any]) -> Any:
    async def handle(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
        try:
            request = request_type.FromString(raw)
        except DecodeError:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"not a {request_type.DESCRIPTOR.full_name} message",
            )
        return await method(request, context)

    return handle
