"""The cluster as the gateway's status page shows it: polled in the background, one snapshot.

Why in the gateway: it already holds the cluster config (and so the node API's credential)
and its own call metrics, so one process can show both without anything new to deploy.

``StatusPoller`` asks every node's ``Status`` rpc about once a second, all nodes at once, each
call bounded by a short timeout, so a dead or paused node costs one timeout, not a stalled
page. Data digests hash every key of a shard (O(data) on the node), so they are asked for in a
separate, slower round that takes at most ``digest_duty_max`` of the time and never runs twice
at once. After every fast poll the poller builds one immutable ``StatusSnapshot`` and encodes it
once; the HTTP side only hands out the latest bytes, so page views cost the nodes nothing.

Health is judged by ``ledger.node.status_audit``, the same rules as ``ledger-dev check``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc

from ledger.config import ClusterConfig, NodeConfig
from ledger.gateway.rpc_stats import RpcRate, RpcRates
from ledger.node.status_audit import digests_agree, is_quorum_leader
from ledger.pb import ledger_node_pb2 as node_pb
from ledger.pb import ledger_node_pb2_grpc

__all__ = [
    "DigestSample",
    "NodeAnswer",
    "NodeView",
    "ReplicaView",
    "ShardView",
    "StatusPoller",
    "StatusSnapshot",
    "build_snapshot",
]

log = logging.getLogger(__name__)

poll_interval_s = 1.0
status_timeout_s = 1.0  # a node that cannot answer a status call in 1 s is shown as down
digest_timeout_s = 30.0  # as ledger-dev check: a digest hashes every key of every shard
digest_interval_min_s = 10.0
digest_duty_max = 0.05  # digest rounds take at most this share of the time on the nodes
error_chars_max = 300
# A node that comes back is seen within about a second, not after grpc's growing reconnect
# backoff (up to two minutes by default).
_CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 1000),
]

# (node, include_digest, timeout_s) -> the node's answer; raises when it does not answer.
StatusFetcher = Callable[[NodeConfig, bool, float], Awaitable[node_pb.StatusResponse]]


@dataclass(frozen=True, slots=True)
class NodeAnswer:
    """One node's answer to one status poll: ``status`` or ``error``, and how long it took."""

    status: node_pb.StatusResponse | None
    error: str | None
    seconds: float


@dataclass(frozen=True, slots=True)
class DigestSample:
    """A replica's data digest and the applied index it belongs to (one node snapshot)."""

    applied_index: int
    digest: str
    taken_at_s: float  # monotonic


@dataclass(frozen=True, slots=True)
class NodeView:
    node_id: str
    address: str
    up: bool
    error: str | None
    status_ms: float | None
    leads: int  # shards it leads with quorum


@dataclass(frozen=True, slots=True)
class ReplicaView:
    node_id: str
    answered: bool
    role: str | None
    term: int | None
    has_quorum: bool | None
    applied_index: int | None  # the store's applied index (what digests are compared at)
    raft_applied_index: int | None
    commit_index: int | None
    lag: int | None  # the leader's commit index minus this replica's raft applied index
    digest: str | None
    digest_applied_index: int | None
    digest_age_s: float | None


@dataclass(frozen=True, slots=True)
class ShardView:
    shard: int
    leader: str | None  # the one leader with quorum, None when there is not exactly one
    leaders: tuple[str, ...]
    term: int | None
    digests_agree: bool | None  # None: no two replicas' digests are at the same index yet
    replicas: tuple[ReplicaView, ...]


@dataclass(frozen=True, slots=True)
class StatusSnapshot:
    generated_at: str  # ISO 8601, UTC
    generated_at_unix: float
    gateway_uptime_s: float
    poll_interval_s: float
    status_timeout_s: float
    rpc_window_s: float
    summary: dict[str, Any]
    nodes: tuple[NodeView, ...]
    unreachable_nodes: tuple[dict[str, str | None], ...]
    shards: tuple[ShardView, ...]
    rpcs: tuple[RpcRate, ...]

    def to_json(self) -> bytes:
        return json.dumps(dataclasses.asdict(self), separators=(",", ":")).encode()


def _replica_view(
    node_id: str,
    status: node_pb.ShardStatus | None,
    leader_commit: int | None,
    digest: DigestSample | None,
    now_s: float,
) -> ReplicaView:
    if status is None:
        return ReplicaView(
            node_id=node_id,
            answered=False,
            role=None,
            term=None,
            has_quorum=None,
            applied_index=None,
            raft_applied_index=None,
            commit_index=None,
            lag=None,
            digest=None,
            digest_applied_index=None,
            digest_age_s=None,
        )
    lag = None
    if leader_commit is not None:
        lag = max(0, leader_commit - status.raft_applied_index)
    return ReplicaView(
        node_id=node_id,
        answered=True,
        role=status.role,
        term=status.term,
        has_quorum=status.has_quorum,
        applied_index=status.store_applied_index,
        raft_applied_index=status.raft_applied_index,
        commit_index=status.raft_commit_index,
        lag=lag,
        digest=None if digest is None else digest.digest,
        digest_applied_index=None if digest is None else digest.applied_index,
        digest_age_s=None if digest is None else round(now_s - digest.taken_at_s, 1),
    )


def _shard_view(
    config: ClusterConfig,
    shard: int,
    answers: Mapping[str, NodeAnswer],
    digests: Mapping[tuple[str, int], DigestSample],
    now_s: float,
) -> ShardView:
    by_node: dict[str, node_pb.ShardStatus] = {}
    for node_id in config.shards[shard].replica_node_ids:
        answer = answers.get(node_id)
        if answer is not None and answer.status is not None:
            for status in answer.status.shards:
                if status.shard == shard:
                    by_node[node_id] = status
    leader_ids = tuple(node_id for node_id, s in by_node.items() if is_quorum_leader(s))
    leader = by_node[leader_ids[0]] if len(leader_ids) == 1 else None
    terms = [s.term for s in by_node.values()]
    samples = [digests[key] for key in digests if key[1] == shard and key[0] in by_node]
    return ShardView(
        shard=shard,
        leader=leader_ids[0] if leader is not None else None,
        leaders=leader_ids,
        term=leader.term if leader is not None else (max(terms) if terms else None),
        digests_agree=digests_agree((s.applied_index, s.digest) for s in samples),
        replicas=tuple(
            _replica_view(
                node_id,
                by_node.get(node_id),
                None if leader is None else leader.raft_commit_index,
                digests.get((node_id, shard)),
                now_s,
            )
            for node_id in config.shards[shard].replica_node_ids
        ),
    )


def build_snapshot(
    config: ClusterConfig,
    answers: Mapping[str, NodeAnswer],
    digests: Mapping[tuple[str, int], DigestSample],
    rpcs: tuple[list[RpcRate], float],
    *,
    now_s: float,
    now_unix: float,
    started_s: float,
) -> StatusSnapshot:
    """The snapshot of one poll (pure: every input is an argument, so tests build their own)."""
    shards = tuple(_shard_view(config, s.index, answers, digests, now_s) for s in config.shards)
    nodes = []
    for node in config.nodes:
        answer = answers.get(node.node_id) or NodeAnswer(None, "not polled yet", 0.0)
        up = answer.status is not None
        nodes.append(
            NodeView(
                node_id=node.node_id,
                address=node.address,
                up=up,
                error=answer.error,
                status_ms=round(answer.seconds * 1000, 1) if up else None,
                leads=sum(1 for shard in shards if shard.leader == node.node_id),
            )
        )
    rates, window_s = rpcs
    summary = {
        "nodes_up": sum(1 for node in nodes if node.up),
        "nodes_down": sum(1 for node in nodes if not node.up),
        "shards_with_leader": sum(1 for shard in shards if shard.leader is not None),
        "shards_without_leader": [shard.shard for shard in shards if shard.leader is None],
        "shards_digests_differ": [shard.shard for shard in shards if shard.digests_agree is False],
    }
    generated = datetime.datetime.fromtimestamp(now_unix, datetime.UTC)
    return StatusSnapshot(
        generated_at=generated.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        generated_at_unix=round(now_unix, 3),
        gateway_uptime_s=round(now_s - started_s, 1),
        poll_interval_s=poll_interval_s,
        status_timeout_s=status_timeout_s,
        rpc_window_s=round(window_s, 1),
        summary=summary,
        nodes=tuple(nodes),
        unreachable_nodes=tuple(
            {"node_id": node.node_id, "address": node.address, "error": node.error}
            for node in nodes
            if not node.up
        ),
        shards=shards,
        rpcs=tuple(rates),
    )


def describe_error(error: BaseException) -> str:
    """One short line for the page: the grpc status and its details, or the exception."""
    if isinstance(error, grpc.aio.AioRpcError):
        text = f"{error.code().name}: {error.details() or ''}"
    elif isinstance(error, TimeoutError):
        text = "no answer within the timeout"
    else:
        text = f"{type(error).__name__}: {error}"
    return text[:error_chars_max]


class StatusPoller:
    """Polls every node in the background and keeps the latest snapshot (see the module doc).

    ``fetch`` replaces the node API call in tests; by default one authenticated grpc.aio
    channel per node (``ClusterConfig.node_channel``), opened at ``start``.
    """

    def __init__(
        self,
        config: ClusterConfig,
        rpc_rates: RpcRates | None = None,
        fetch: StatusFetcher | None = None,
        *,
        interval_s: float = poll_interval_s,
        digest_interval_s: float = digest_interval_min_s,
    ) -> None:
        self._config = config
        self._rates = rpc_rates or RpcRates()
        self._fetch = fetch or self._fetch_from_node
        self._interval_s = interval_s
        self._digest_interval_s = digest_interval_s
        self._started_s = time.monotonic()
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._digests: dict[tuple[str, int], DigestSample] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._latest: StatusSnapshot | None = None
        self._latest_json: bytes | None = None

    @property
    def latest(self) -> StatusSnapshot | None:
        return self._latest

    def latest_json(self) -> bytes | None:
        """The encoded latest snapshot, None until the first poll finished."""
        return self._latest_json

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._poll_loop(), name="status-poll"),
            asyncio.create_task(self._digest_loop(), name="status-digests"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()

    async def poll_once(self) -> StatusSnapshot:
        """One fast poll of every node (no digests), published as the latest snapshot."""
        answers = await self._ask_all(include_digest=False, timeout_s=status_timeout_s)
        now_s = time.monotonic()
        snapshot = build_snapshot(
            self._config,
            answers,
            self._digests,
            self._rates.sample(now_s),
            now_s=now_s,
            now_unix=time.time(),
            started_s=self._started_s,
        )
        self._latest, self._latest_json = snapshot, snapshot.to_json()
        return snapshot

    async def digest_once(self) -> float:
        """One digest round over every node; how long it took."""
        started = time.monotonic()
        answers = await self._ask_all(include_digest=True, timeout_s=digest_timeout_s)
        taken_at = time.monotonic()
        digests = dict(self._digests)
        for node_id, answer in answers.items():
            for key in [key for key in digests if key[0] == node_id]:
                del digests[key]  # a node that did not answer has no current digest
            if answer.status is not None:
                for shard in answer.status.shards:
                    sample = DigestSample(shard.store_applied_index, shard.digest, taken_at)
                    digests[(node_id, shard.shard)] = sample
        self._digests = digests
        return taken_at - started

    async def _poll_loop(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.poll_once()
            except Exception:  # the page must outlive any one bad poll
                log.exception("status poll failed")
            await asyncio.sleep(max(0.0, self._interval_s - (time.monotonic() - started)))

    async def _digest_loop(self) -> None:
        while True:
            try:
                seconds = await self.digest_once()
            except Exception:  # as above; tried again after the minimum interval
                log.exception("status digest round failed")
                seconds = 0.0
            pause_s = max(self._digest_interval_s, seconds * (1 / digest_duty_max - 1))
            await asyncio.sleep(pause_s)

    async def _ask_all(self, include_digest: bool, timeout_s: float) -> dict[str, NodeAnswer]:
        nodes = self._config.nodes
        answers = await asyncio.gather(*(self._ask(n, include_digest, timeout_s) for n in nodes))
        return {node.node_id: answer for node, answer in zip(nodes, answers, strict=True)}

    async def _ask(self, node: NodeConfig, include_digest: bool, timeout_s: float) -> NodeAnswer:
        started = time.monotonic()
        try:
            async with asyncio.timeout(timeout_s + 0.5):  # in case the fetcher ignores its own
                status = await self._fetch(node, include_digest, timeout_s)
        except Exception as error:  # noqa: BLE001 - any failure means "did not answer", shown
            return NodeAnswer(None, describe_error(error), time.monotonic() - started)
        return NodeAnswer(status, None, time.monotonic() - started)

    async def _fetch_from_node(
        self, node: NodeConfig, include_digest: bool, timeout_s: float
    ) -> node_pb.StatusResponse:
        channel = self._channels.get(node.address)
        if channel is None:
            channel = self._config.node_channel(node.address, aio=True, options=_CHANNEL_OPTIONS)
            self._channels[node.address] = channel
        stub = ledger_node_pb2_grpc.LedgerNodeStub(channel)
        request = node_pb.StatusRequest(include_digest=include_digest)
        response: node_pb.StatusResponse = await stub.Status(request, timeout=timeout_s)
        return response
