"""The gateway's status page without a cluster: HTTP handling, the snapshot, the rates.

Goal: the page's server answers exactly ``GET /`` and ``GET /status.json``, refuses everything
else with the right status (404, 405, 400, 403, 408, 431, 503) and survives any client; the
snapshot says what the node answers mean (leader, lag, digests compared only at one applied
index, nodes down with their error); rates and p99 come from the metric deltas of the window.
Method: the HTTP server in-process on a free loopback port with raw sockets as clients;
snapshots built from hand-made ``Status`` answers; a private Prometheus registry. The real
cluster and browser are in ``tests/integration/test_status_page.py``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram

from ledger.config import ClusterConfig, NodeConfig, generate_config, parse_config
from ledger.gateway import cluster_status, status_page
from ledger.gateway.cluster_status import DigestSample, NodeAnswer, StatusPoller, build_snapshot
from ledger.gateway.rpc_stats import PUBLIC_METHODS, RpcRates, histogram_quantile
from ledger.gateway.status_html import PAGE_HTML
from ledger.gateway.status_page import StatusServer, respond
from ledger.node.service import _digest_and_index
from ledger.node.status_audit import digests_agree, quorum_leaders
from ledger.pb import ledger_node_pb2 as node_pb
from ledger.storage.base import APPLIED_KEY, digest_items, encode_applied

SNAPSHOT = b'{"shards":[]}'

# -- the shared health rules ---------------------------------------------------------------


def test_digests_are_compared_only_at_one_applied_index() -> None:
    assert digests_agree([(5, "a"), (5, "a"), (7, "b")]) is True
    assert digests_agree([(5, "a"), (5, "b"), (7, "b")]) is False
    assert digests_agree([(5, "a"), (6, "b"), (7, "c")]) is None  # nothing comparable yet
    assert digests_agree([(5, "a"), (5, ""), (5, "")]) is None  # digests not computed
    assert digests_agree([]) is None


def test_only_a_leader_with_quorum_counts() -> None:
    replicas = [
        node_pb.ShardStatus(shard=1, role="leader", has_quorum=False),  # a cut-off old leader
        node_pb.ShardStatus(shard=1, role="leader", has_quorum=True),
        node_pb.ShardStatus(shard=1, role="follower", has_quorum=True),
    ]
    assert quorum_leaders(replicas) == [replicas[1]]


class _RacingStore:
    """A store whose snapshot is at index 5 while its live applied index moved on to 6."""

    applied_index = 6
    pairs = ((APPLIED_KEY, encode_applied(5)), (b"a", b"1"))

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        return iter(self.pairs)


def test_a_digest_comes_with_the_index_of_its_own_snapshot() -> None:
    digest, index = _digest_and_index(_RacingStore())  # type: ignore[arg-type]
    assert (digest, index) == (digest_items(_RacingStore.pairs), 5)


# -- rates from the metrics ------------------------------------------------------------------


def test_histogram_quantile_interpolates_like_prometheus() -> None:
    assert histogram_quantile(0.99, []) is None
    assert histogram_quantile(0.99, [(0.1, 0.0), (float("inf"), 0.0)]) is None
    assert histogram_quantile(0.5, [(1.0, 0.0), (2.0, 10.0), (float("inf"), 10.0)]) == 1.5
    # The rank lands in +Inf: the largest finite bound, as Prometheus answers.
    assert histogram_quantile(0.99, [(1.0, 5.0), (float("inf"), 10.0)]) == 1.0


def _registry() -> tuple[CollectorRegistry, Counter, Histogram]:
    registry = CollectorRegistry()
    calls = Counter("ledger_calls_total", "calls", ["method", "code"], registry=registry)
    seconds = Histogram(
        "ledger_call_seconds",
        "latency",
        ["method"],
        buckets=(0.001, 0.005, 0.2, 0.5, 1.0),
        registry=registry,
    )
    return registry, calls, seconds


def test_rates_errors_and_p99_come_from_the_window() -> None:
    registry, calls, seconds = _registry()
    rates = RpcRates(registry, window_s=10.0)
    first, span = rates.sample(0.0)
    assert span == 0.0 and [r.method for r in first] == list(PUBLIC_METHODS)
    for _ in range(10):
        calls.labels("CreateAccount", "OK").inc()
        seconds.labels("CreateAccount").observe(0.004)
    calls.labels("CreateAccount", "OK").inc()
    seconds.labels("CreateAccount").observe(0.3)
    for _ in range(2):
        calls.labels("GetAccount", "INVALID_ARGUMENT").inc()
        seconds.labels("GetAccount").observe(0.0005)

    by_method = {r.method: r for r in rates.sample(5.0)[0]}
    created, got = by_method["CreateAccount"], by_method["GetAccount"]
    assert (created.calls_per_s, created.errors_per_s, created.calls_in_window) == (2.2, 0.0, 11)
    assert created.p99_ms == pytest.approx(200 + 300 * 0.89)  # rank 10.89 of 11, in (0.2, 0.5]
    assert (got.errors_per_s, got.calls_total) == (0.4, 2)
    assert got.errors_by_code == {"INVALID_ARGUMENT": 2}
    assert by_method["GetTransfer"].p99_ms is None

    # Eleven seconds later the calls have left the window; the totals stay.
    later, span = rates.sample(16.0)
    created = {r.method: r for r in later}["CreateAccount"]
    assert span == 11.0
    assert (created.calls_per_s, created.p99_ms, created.calls_total) == (0.0, None, 11)


# -- the snapshot ---------------------------------------------------------------------------


def _config() -> ClusterConfig:
    return parse_config(generate_config(), environ={})


def _answer(config: ClusterConfig, node: NodeConfig, follower_applied: int) -> NodeAnswer:
    """Node ``node`` leads the shards it prefers (term 2, commit 10); it follows the others."""
    shards = []
    for shard in config.shards_of(node.node_id):
        leads = shard.preferred_leader == node.node_id
        shards.append(
            node_pb.ShardStatus(
                shard=shard.index,
                role="leader" if leads else "follower",
                term=2,
                raft_applied_index=10 if leads else follower_applied,
                raft_commit_index=10,
                store_applied_index=4,
                has_quorum=True,
            )
        )
    return NodeAnswer(node_pb.StatusResponse(node_id=node.node_id, shards=shards), None, 0.002)


def _snapshot_document(config: ClusterConfig) -> dict[str, Any]:
    one, two, three = (node.node_id for node in config.nodes)
    answers = {
        one: _answer(config, config.nodes[0], follower_applied=7),
        two: _answer(config, config.nodes[1], follower_applied=10),
        three: NodeAnswer(None, "UNAVAILABLE: connection refused", 0.001),
    }
    digests = {
        (one, 0): DigestSample(4, "same", 0.0),
        (two, 0): DigestSample(4, "same", 0.0),
        (one, 1): DigestSample(4, "one", 0.0),
        (two, 1): DigestSample(4, "other", 0.0),
        (one, 3): DigestSample(4, "x", 0.0),
        (two, 3): DigestSample(3, "y", 0.0),
        (three, 3): DigestSample(4, "z", 0.0),  # not answering now: left out
    }
    snapshot = build_snapshot(
        config,
        answers,
        digests,
        RpcRates(_registry()[0]).sample(0.0),
        now_s=100.0,
        now_unix=1_800_000_000.25,
        started_s=40.0,
    )
    document: dict[str, Any] = json.loads(snapshot.to_json())
    return document


def test_the_snapshot_says_who_leads_who_lags_and_who_is_down() -> None:
    config = _config()
    one, two, three = (node.node_id for node in config.nodes)
    document = _snapshot_document(config)

    assert document["generated_at"] == "2027-01-15T08:00:00.250Z"
    assert document["gateway_uptime_s"] == 60.0
    assert [node["up"] for node in document["nodes"]] == [True, True, False]
    assert document["unreachable_nodes"] == [
        {
            "node_id": three,
            "address": config.nodes[2].address,
            "error": document["nodes"][2]["error"],
        }
    ]
    assert "UNAVAILABLE" in document["nodes"][2]["error"]
    # Generated configs rotate the preferred leader: shards 2, 5, 8, 11, 14 prefer node three.
    led_by_three = [s.index for s in config.shards if s.preferred_leader == three]
    assert document["summary"] == {
        "nodes_up": 2,
        "nodes_down": 1,
        "shards_with_leader": 16 - len(led_by_three),
        "shards_without_leader": led_by_three,
        "shards_digests_differ": [1],
    }
    assert [node["leads"] for node in document["nodes"]] == [
        sum(1 for s in config.shards if s.preferred_leader == n) for n in (one, two)
    ] + [0]

    shards = document["shards"]
    assert len(shards) == 16 and [s["shard"] for s in shards] == list(range(16))
    assert [s["digests_agree"] for s in shards[:4]] == [True, False, None, None]
    first = shards[0]  # led by node one, replicas one, two, three
    assert (first["leader"], first["leaders"], first["term"]) == (one, [one], 2)
    replicas = {r["node_id"]: r for r in first["replicas"]}
    assert replicas[one]["lag"] == 0 and replicas[two]["lag"] == 0  # two follows at 10
    assert replicas[three] == dict.fromkeys(replicas[three], None) | {
        "node_id": three,
        "answered": False,
    }
    second = shards[1]  # led by node two; node one follows at 7: 3 behind the commit index
    assert second["leader"] == two
    assert {r["node_id"]: r["lag"] for r in second["replicas"]}[one] == 3
    leaderless = shards[led_by_three[0]]
    assert (leaderless["leader"], leaderless["leaders"], leaderless["term"]) == (None, [], 2)
    assert all(r["lag"] is None for r in leaderless["replicas"])
    assert set(first["replicas"][0]) == {
        "node_id",
        "answered",
        "role",
        "term",
        "has_quorum",
        "applied_index",
        "raft_applied_index",
        "commit_index",
        "lag",
        "digest",
        "digest_applied_index",
        "digest_age_s",
    }
    assert [r["method"] for r in document["rpcs"]] == list(PUBLIC_METHODS)


def test_the_poller_marks_nodes_that_fail_or_hang(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cluster_status, "status_timeout_s", 0.05)
    monkeypatch.setattr(cluster_status, "digest_timeout_s", 0.05)
    config = _config()
    one, two, three = config.nodes

    async def fetch(node: NodeConfig, include_digest: bool, timeout_s: float) -> Any:
        if node == two:
            raise ConnectionRefusedError("refused")
        if node == three:
            await asyncio.sleep(3600)  # ignores its timeout: the poller's own bound holds
        answer = _answer(config, one, follower_applied=10).status
        if include_digest:
            for shard in answer.shards:
                shard.digest = "d"
        return answer

    async def run() -> None:
        poller = StatusPoller(config, RpcRates(_registry()[0]), fetch, interval_s=0.01)
        assert poller.latest_json() is None
        await poller.digest_once()
        snapshot = await poller.poll_once()
        assert [node.up for node in snapshot.nodes] == [True, False, False]
        assert snapshot.nodes[1].error == "ConnectionRefusedError: refused"
        assert snapshot.nodes[2].error == "no answer within the timeout"
        replica = snapshot.shards[0].replicas[0]
        assert (replica.node_id, replica.digest) == (one.node_id, "d")
        assert replica.digest_applied_index == 4
        # In the background: snapshots keep coming, and stop ends it all.
        poller.start()
        first = poller.latest_json()
        for _ in range(200):
            await asyncio.sleep(0.01)
            if poller.latest_json() is not first:
                break
        assert poller.latest_json() is not first
        await poller.stop()

    asyncio.run(run())


# -- HTTP -----------------------------------------------------------------------------------


def _respond(head: str, snapshot: bytes | None = SNAPSHOT, loopback_only: bool = True) -> int:
    return respond(head.encode("latin-1"), lambda: snapshot, loopback_only)[0]


def test_only_get_of_two_paths_is_served() -> None:
    assert _respond("GET / HTTP/1.1\r\nHost: 127.0.0.1:9") == 200
    assert _respond("GET /status.json?cache=1 HTTP/1.1\r\nHost: localhost:9") == 200
    assert _respond("GET /status.json HTTP/1.0") == 200  # no Host at all
    assert _respond("GET /status.json HTTP/1.1\r\nHost: [::1]:9") == 200
    assert _respond("GET /status.json HTTP/1.1", snapshot=None) == 503  # no poll finished yet
    assert _respond("GET /metrics HTTP/1.1") == 404
    assert _respond("GET /../etc/passwd HTTP/1.1") == 404
    for method in ("POST", "HEAD", "PUT", "DELETE", "OPTIONS", "get"):
        assert _respond(f"{method} / HTTP/1.1") == 405
    for malformed in (
        "",
        "GET",
        "GET /",
        "GET / HTTP/2",
        "GET  / HTTP/1.1",
        "GET http://example.test/ HTTP/1.1",
        "GET / HTTP/1.1\r\nno colon here",
        "GET / HTTP/1.1\r\n folded: header",
        "GET / HTTP/1.1\r\nHost : x",
        "GET /\xe9 HTTP/1.1",
    ):
        assert _respond(malformed) == 400, malformed


def test_a_loopback_page_answers_only_to_loopback_host_names() -> None:
    """A web page in a local browser cannot read it through DNS rebinding."""
    assert _respond("GET /status.json HTTP/1.1\r\nHost: attacker.example:9") == 403
    assert _respond("GET /status.json HTTP/1.1\r\nHost: 10.0.0.5") == 403
    assert _respond("GET /status.json HTTP/1.1\r\nHost: ops.example", loopback_only=False) == 200


def test_the_page_is_self_contained() -> None:
    status, headers, body = respond(b"GET / HTTP/1.1", lambda: None, True)
    assert status == 200 and body == PAGE_HTML.encode()
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    lowered = PAGE_HTML.lower()
    for external in ("http:", "https:", "//", "src=", "href=", "@import", "url("):
        assert external not in lowered, external


Client = Callable[[bytes], Awaitable[bytes]]


def _with_server(
    scenario: Callable[[StatusServer, int, Client], Awaitable[None]],
    snapshot: bytes | None = SNAPSHOT,
) -> None:
    async def run() -> None:
        server = StatusServer(lambda: snapshot, "127.0.0.1", 0)
        port = await server.start()

        async def client(request: bytes) -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(request)
                writer.write_eof()  # all it will send
                await writer.drain()
                return await asyncio.wait_for(reader.read(), 10)
            finally:
                writer.close()

        try:
            await scenario(server, port, client)
            # Whatever happened before, the server still answers.
            assert (await client(b"GET / HTTP/1.1\r\n\r\n")).endswith(PAGE_HTML.encode())
        finally:
            await server.stop()

    asyncio.run(run())


def _status_line(answer: bytes) -> bytes:
    return answer.split(b"\r\n", 1)[0]


def test_http_answers_over_a_socket() -> None:
    async def scenario(server: StatusServer, port: int, client: Client) -> None:
        answer = await client(b"GET /status.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        head, _, body = answer.partition(b"\r\n\r\n")
        assert _status_line(answer) == b"HTTP/1.1 200 OK" and body == SNAPSHOT
        assert b"Content-Type: application/json" in head and b"Connection: close" in head
        assert f"Content-Length: {len(SNAPSHOT)}".encode() in head
        assert _status_line(await client(b"GET / HTTP/1.1\r\n\r\n")) == b"HTTP/1.1 200 OK"
        assert _status_line(await client(b"GET /x HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 404")
        post = b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
        assert _status_line(await client(post)).startswith(b"HTTP/1.1 405")
        assert _status_line(await client(b"\x16\x03\x01junk\r\n\r\n")).startswith(b"HTTP/1.1 400")
        oversized = b"GET / HTTP/1.1\r\nX: " + b"a" * 12_000 + b"\r\n\r\n"
        assert _status_line(await client(oversized)).startswith(b"HTTP/1.1 431")
        assert await client(b"GET / HTTP/1.1\r\n") == b""  # half a request, then gone

    _with_server(scenario)


def test_slow_clients_and_too_many_connections_are_cut_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(status_page, "read_timeout_s", 0.2)
    monkeypatch.setattr(status_page, "connections_max", 2)

    async def scenario(server: StatusServer, port: int, client: Client) -> None:
        idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        await asyncio.sleep(0.05)
        assert _status_line(await client(b"GET / HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 503")
        for reader, writer in idle:  # they never finished their request
            answer = await asyncio.wait_for(reader.read(), 5)
            assert _status_line(answer).startswith(b"HTTP/1.1 408")
            writer.close()

    _with_server(scenario)


def test_before_the_first_poll_the_json_is_503() -> None:
    async def scenario(server: StatusServer, port: int, client: Client) -> None:
        answer = await client(b"GET /status.json HTTP/1.1\r\n\r\n")
        assert _status_line(answer).startswith(b"HTTP/1.1 503")

    _with_server(scenario, snapshot=None)
