"""Cluster configuration: load, validate with clear errors, and generate ``cluster_config.json``.

The format follows the reference's protojson (``applications[].shards[]`` with base64 4-byte
inclusive bounds, ``replicas[].nodeId``, ``nodes[].address``) plus what PySyncObj needs: each
node's ``raftHost`` and ``raftPortBase`` (shard S listens on ``raftPortBase + S``), and a
``raftSecret`` that encrypts and authenticates Raft traffic (PySyncObj's wire format is pickle,
so an unauthenticated Raft port would run anyone's code). ``LEDGER_RAFT_SECRET`` overrides it.

The first replica of a shard is its *preferred leader*; generated configs rotate it over the
nodes so leadership spreads evenly, and nodes hand leadership back to it when it is healthy.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import pathlib
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ledger import limits
from ledger.node import credentials

__all__ = [
    "DEVELOPMENT_SECRET_SHA256",
    "ClusterConfig",
    "ConfigError",
    "NodeConfig",
    "NodeTls",
    "ShardConfig",
    "generate_config",
    "load_config",
    "parse_config",
    "raft_secret_env",
]

APPLICATION_NAME = "Accounts"
raft_secret_env = "LEDGER_RAFT_SECRET"
# SHA-256 of the raftSecret of the committed development config (cluster_config.json): a node
# refuses to serve a non-loopback address with it unless told --insecure-dev-credentials.
DEVELOPMENT_SECRET_SHA256 = "52ae105bc30f2dc0528192c69c61298b30a1d47d521dcf934de735b81cd0c4ce"
raft_secret_chars_min = 16


class ConfigError(ValueError):
    """The cluster config is unusable; the message says what and where."""


@dataclass(frozen=True, slots=True)
class NodeConfig:
    node_id: str
    address: str  # client-facing (gateway -> node) gRPC address, host:port
    raft_host: str
    raft_port_base: int

    def raft_address(self, shard: int) -> str:
        return f"{self.raft_host}:{self.raft_port_base + shard}"

    @property
    def grpc_port(self) -> int:
        return int(self.address.rsplit(":", 1)[1])

    @property
    def grpc_host(self) -> str:
        return self.address.rsplit(":", 1)[0].strip("[]")


@dataclass(frozen=True, slots=True)
class ShardConfig:
    index: int
    shard_id: str
    lower_bound: bytes
    upper_bound: bytes
    replica_node_ids: tuple[str, ...]  # the first is the preferred leader

    @property
    def preferred_leader(self) -> str:
        return self.replica_node_ids[0]


@dataclass(frozen=True, slots=True)
class NodeTls:
    """The ``nodeTls`` section: the cluster CA and each node's certificate and key (PEM)."""

    ca_cert: str
    certs: dict[str, tuple[str, str]]  # node id -> (certificate, private key)


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    nodes: tuple[NodeConfig, ...]
    shards: tuple[ShardConfig, ...]
    raft_secret: str
    updated_at_ms: int
    node_tls: NodeTls

    def node_channel(
        self,
        address: str,
        *,
        aio: bool = False,
        options: Sequence[tuple[str, Any]] = (),
        attach_token: bool = True,
    ) -> Any:
        """A channel to a node's API: TLS against the cluster CA, the cluster credential (or,
        without ``attach_token``, each call passes ``node_call_metadata()`` itself)."""
        return credentials.node_channel(
            address,
            self.node_tls.ca_cert,
            self.raft_secret,
            aio=aio,
            options=options,
            attach_token=attach_token,
        )

    def node_call_metadata(self) -> tuple[tuple[str, str], ...]:
        return credentials.node_call_metadata(self.raft_secret)

    def node_server_credentials(self, node_id: str) -> Any:
        cert, key = self.node_tls.certs[node_id]
        return credentials.node_server_credentials(self.node_tls.ca_cert, cert, key)

    @property
    def uses_development_secret(self) -> bool:
        """The committed development config's secret: fine on loopback, never on a network."""
        digest = hashlib.sha256(self.raft_secret.encode()).hexdigest()
        return digest == DEVELOPMENT_SECRET_SHA256

    def node(self, node_id: str) -> NodeConfig:
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        known = ", ".join(node.node_id for node in self.nodes)
        raise ConfigError(f"unknown node id {node_id!r} (known: {known})")

    def shards_of(self, node_id: str) -> list[ShardConfig]:
        return [shard for shard in self.shards if node_id in shard.replica_node_ids]

    def replicas(self, shard: int) -> list[NodeConfig]:
        return [self.node(node_id) for node_id in self.shards[shard].replica_node_ids]

    def node_by_raft_address(self, shard: int, raft_address: str) -> NodeConfig | None:
        for node in self.replicas(shard):
            if node.raft_address(shard) == raft_address:
                return node
        return None


def _shard_bounds(index: int) -> tuple[bytes, bytes]:
    step = 256 // limits.shard_count
    return bytes([step * index, 0, 0, 0]), bytes([step * index + step - 1, 0xFF, 0xFF, 0xFF])


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _field(obj: Any, name: str, kind: type, where: str) -> Any:
    _require(isinstance(obj, dict), f"{where}: expected an object")
    value = obj.get(name)
    well_typed = isinstance(value, kind) and not isinstance(value, bool)  # bool is an int
    _require(well_typed, f"{where}.{name}: expected {kind.__name__}, got {type(value).__name__}")
    return value


def _bound(text: Any, where: str) -> bytes:
    _require(isinstance(text, str), f"{where}: expected a base64 string")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{where}: not valid base64: {text!r}") from None
    _require(len(raw) == 4, f"{where}: a bound must be exactly 4 bytes, got {len(raw)}")
    return raw


def _parse_node(raw: Any, where: str) -> NodeConfig:
    node_id = _field(raw, "id", str, where)
    address = _field(raw, "address", str, where)
    raft_host = _field(raw, "raftHost", str, where)
    raft_port_base = _field(raw, "raftPortBase", int, where)
    _require(node_id != "", f"{where}.id: must not be empty")
    host, _, port = address.rpartition(":")
    _require(
        host != "" and port.isdigit() and 0 < int(port) < 65536,
        f"{where}.address: expected host:port, got {address!r}",
    )
    _require(raft_host != "", f"{where}.raftHost: must not be empty")
    _require(
        raft_port_base > 0 and raft_port_base + limits.shard_count < 65536,
        f"{where}.raftPortBase: {raft_port_base} leaves no room for {limits.shard_count} ports",
    )
    return NodeConfig(node_id, address, raft_host, raft_port_base)


def _parse_shards(application: Any, node_ids: set[str]) -> tuple[ShardConfig, ...]:
    where = "applications[0]"
    factor = _field(application, "replicationFactor", int, where)
    _require(
        factor >= limits.replica_count,
        f"{where}.replicationFactor: must be at least {limits.replica_count}, got {factor}",
    )
    raw_shards = _field(application, "shards", list, where)
    _require(
        len(raw_shards) == limits.shard_count,
        f"{where}.shards: expected {limits.shard_count} shards, got {len(raw_shards)}",
    )
    parsed = []
    for position, raw in enumerate(raw_shards):
        at = f"{where}.shards[{position}]"
        shard_id = _field(raw, "id", str, at)
        lower = _bound(raw.get("lowerBound"), f"{at}.lowerBound")
        upper = _bound(raw.get("upperBound"), f"{at}.upperBound")
        _require(
            lower <= upper, f"{at}: lowerBound {lower.hex()} is above upperBound {upper.hex()}"
        )
        replicas = _field(raw, "replicas", list, at)
        _require(
            len(replicas) >= factor,
            f"{at}.replicas: {len(replicas)} replicas, replicationFactor is {factor}",
        )
        owners = tuple(
            _field(r, "nodeId", str, f"{at}.replicas[{i}]") for i, r in enumerate(replicas)
        )
        for owner in owners:
            _require(owner in node_ids, f"{at}.replicas: unknown node id {owner!r}")
        _require(len(set(owners)) == len(owners), f"{at}.replicas: two replicas on one node")
        parsed.append((lower, upper, shard_id, owners, at))
    parsed.sort()
    shards = []
    for index, (lower, upper, shard_id, owners, at) in enumerate(parsed):
        expected_lower, expected_upper = _shard_bounds(index)
        # Routing computes shard = sha256(id)[0] >> 4, so the ranges must be exactly these.
        _require(
            (lower, upper) == (expected_lower, expected_upper),
            f"{at}: shards must cover contiguous equal ranges; expected shard {index} to be "
            f"{expected_lower.hex()}..{expected_upper.hex()}, got {lower.hex()}..{upper.hex()}",
        )
        shards.append(ShardConfig(index, shard_id, lower, upper, owners))
    _require(
        len({s.shard_id for s in shards}) == len(shards), f"{where}.shards: duplicate shard id"
    )
    return tuple(shards)


def parse_config(document: Any, *, environ: dict[str, str] | None = None) -> ClusterConfig:
    environ = dict(os.environ) if environ is None else environ
    _require(isinstance(document, dict), "config: expected a JSON object")
    raw_nodes = _field(document, "nodes", list, "config")
    _require(
        len(raw_nodes) >= limits.replica_count,
        f"config.nodes: at least {limits.replica_count} nodes are needed, got {len(raw_nodes)}",
    )
    nodes = tuple(_parse_node(raw, f"config.nodes[{i}]") for i, raw in enumerate(raw_nodes))
    _require(len({n.node_id for n in nodes}) == len(nodes), "config.nodes: duplicate node id")
    _require(len({n.address for n in nodes}) == len(nodes), "config.nodes: duplicate address")
    raft_ports = [
        (n.raft_host, n.raft_port_base + s) for n in nodes for s in range(limits.shard_count)
    ]
    _require(len(set(raft_ports)) == len(raft_ports), "config.nodes: raft port ranges overlap")
    applications = _field(document, "applications", list, "config")
    _require(len(applications) == 1, "config.applications: expected exactly one application")
    name = _field(applications[0], "name", str, "applications[0]")
    _require(name == APPLICATION_NAME, f"applications[0].name: expected {APPLICATION_NAME!r}")
    shards = _parse_shards(applications[0], {n.node_id for n in nodes})
    secret = environ.get(raft_secret_env) or document.get("raftSecret") or ""
    _require(
        isinstance(secret, str) and len(secret) >= raft_secret_chars_min,
        f"config.raftSecret (or ${raft_secret_env}): at least {raft_secret_chars_min} chars",
    )
    updated_at = document.get("updatedAt", "0")
    _require(str(updated_at).isdigit(), "config.updatedAt: expected a number of milliseconds")
    node_tls = _parse_node_tls(document.get("nodeTls"), [n.node_id for n in nodes])
    return ClusterConfig(nodes, shards, secret, int(updated_at), node_tls)


def _parse_node_tls(section: Any, node_ids: list[str]) -> NodeTls:
    _require(
        isinstance(section, dict),
        "config.nodeTls: missing (the node API is served over TLS): generate a config with "
        "`ledger-dev gen-config`",
    )
    ca_cert = _field(section, "caCert", str, "config.nodeTls")
    _require("BEGIN CERTIFICATE" in ca_cert, "config.nodeTls.caCert: expected a PEM certificate")
    per_node = _field(section, "nodes", dict, "config.nodeTls")
    certs: dict[str, tuple[str, str]] = {}
    for node_id in node_ids:
        where = f"config.nodeTls.nodes.{node_id}"
        _require(node_id in per_node, f"{where}: missing")
        cert = _field(per_node[node_id], "cert", str, where)
        key = _field(per_node[node_id], "key", str, where)
        _require(
            "BEGIN CERTIFICATE" in cert and "PRIVATE KEY" in key,
            f"{where}: expected a PEM certificate and key",
        )
        certs[node_id] = (cert, key)
    return NodeTls(ca_cert, certs)


def load_config(path: pathlib.Path) -> ClusterConfig:
    try:
        document = json.loads(path.read_text())
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path}: not valid JSON: {error}") from None
    try:
        return parse_config(document)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def generate_config(
    *,
    node_count: int = 3,
    host: str = "localhost",
    grpc_port_base: int = 7000,
    raft_host: str = "127.0.0.1",
    raft_port_base: int = 17000,
    hosts: Sequence[str] | None = None,
) -> dict[str, Any]:
    """A fresh config document: new ids and secret, preferred leaders rotated over the nodes.

    Without ``hosts`` every node is on this machine (ports apart); with ``hosts`` (one address
    per node, on separate machines) each node's API and Raft ports bind to its own address and
    all nodes use the same port numbers.
    """
    assert node_count >= limits.replica_count
    if hosts is not None:
        assert len(hosts) == node_count and len(set(hosts)) == node_count
    nodes = [
        {
            "id": f"nd_{secrets.token_hex(4)}",
            "address": (
                f"{hosts[i]}:{grpc_port_base}"
                if hosts is not None
                else f"{host}:{grpc_port_base + i}"
            ),
            "raftHost": hosts[i] if hosts is not None else raft_host,
            "raftPortBase": raft_port_base if hosts is not None else raft_port_base + 100 * i,
        }
        for i in range(node_count)
    ]
    shards = []
    for index in range(limits.shard_count):
        lower, upper = _shard_bounds(index)
        owners = [nodes[(index + k) % node_count]["id"] for k in range(limits.replica_count)]
        shards.append(
            {
                "id": f"shrd_{secrets.token_hex(4)}",
                "lowerBound": base64.b64encode(lower).decode(),
                "upperBound": base64.b64encode(upper).decode(),
                "replicas": [{"id": f"rpl_{secrets.token_hex(4)}", "nodeId": o} for o in owners],
            }
        )
    node_tls = credentials.generate_node_tls(
        [
            (str(node["id"]), [str(node["address"]).rsplit(":", 1)[0], str(node["raftHost"])])
            for node in nodes
        ]
    )
    document = {
        "applications": [
            {
                "name": APPLICATION_NAME,
                "implementation": APPLICATION_NAME,
                "replicationFactor": limits.replica_count,
                "shards": shards,
            }
        ],
        "nodes": nodes,
        "raftSecret": secrets.token_urlsafe(24),
        "nodeTls": node_tls,
        "updatedAt": str(time.time_ns() // 1_000_000),
    }
    parse_config(document, environ={})  # a generated config must always validate
    return document
