"""Cluster config: the committed file, generation, and every validation rule with its message.

Goal: a broken config is refused at start with a message that names the field, and the
committed ``cluster_config.json`` and ``Procfile`` agree. Method: mutate a generated document one
rule at a time and check the ConfigError text; parse the repository's own files.
"""

from __future__ import annotations

import base64
import copy
import json
import pathlib
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from ledger import ids, limits
from ledger.config import ConfigError, generate_config, load_config, parse_config

REPO = pathlib.Path(__file__).resolve().parents[1]
Doc = dict[str, Any]


def _shards(doc: Doc) -> list[Doc]:
    return doc["applications"][0]["shards"]


def _set_bound(doc: Doc, shard: int, which: str, raw: bytes) -> None:
    _shards(doc)[shard][which] = base64.b64encode(raw).decode()


MUTATIONS: list[tuple[str, Callable[[Doc], None], str]] = [
    ("two nodes", lambda d: d["nodes"].pop(), "at least 3 nodes"),
    (
        "duplicate node id",
        lambda d: d["nodes"][1].update(id=d["nodes"][0]["id"]),
        "duplicate node id",
    ),
    (
        "duplicate address",
        lambda d: d["nodes"][1].update(address=d["nodes"][0]["address"]),
        "duplicate address",
    ),
    ("bad address", lambda d: d["nodes"][0].update(address="localhost"), "expected host:port"),
    ("empty id", lambda d: d["nodes"][0].update(id=""), "must not be empty"),
    (
        "raft ports overlap",
        lambda d: d["nodes"][1].update(raftPortBase=d["nodes"][0]["raftPortBase"] + 3),
        "raft port ranges overlap",
    ),
    ("raft port too high", lambda d: d["nodes"][0].update(raftPortBase=65530), "leaves no room"),
    ("port as string", lambda d: d["nodes"][0].update(raftPortBase="17000"), "expected int"),
    ("15 shards", lambda d: _shards(d).pop(), "expected 16 shards"),
    (
        "replicas on one node",
        lambda d: _shards(d)[3]["replicas"][1].update(
            nodeId=_shards(d)[3]["replicas"][0]["nodeId"]
        ),
        "two replicas on one node",
    ),
    (
        "unknown node",
        lambda d: _shards(d)[0]["replicas"][0].update(nodeId="nd_nope"),
        "unknown node id 'nd_nope'",
    ),
    ("two replicas", lambda d: _shards(d)[2]["replicas"].pop(), "replicationFactor is 3"),
    ("factor 2", lambda d: d["applications"][0].update(replicationFactor=2), "at least 3"),
    (
        "gap",
        lambda d: _set_bound(d, 5, "upperBound", bytes([0x5E, 0xFF, 0xFF, 0xFF])),
        "contiguous equal ranges",
    ),
    ("3-byte bound", lambda d: _set_bound(d, 0, "lowerBound", b"\x00\x00\x00"), "exactly 4 bytes"),
    ("not base64", lambda d: _shards(d)[0].update(lowerBound="!!!"), "not valid base64"),
    (
        "lower above upper",
        lambda d: _set_bound(d, 1, "lowerBound", b"\xff\xff\xff\xff"),
        "is above upperBound",
    ),
    (
        "duplicate shard id",
        lambda d: _shards(d)[1].update(id=_shards(d)[0]["id"]),
        "duplicate shard id",
    ),
    (
        "other application",
        lambda d: d["applications"][0].update(name="Other"),
        "expected 'Accounts'",
    ),
    ("no secret", lambda d: d.pop("raftSecret"), "raftSecret"),
    ("short secret", lambda d: d.update(raftSecret="short"), "at least 16 chars"),
    ("bad updatedAt", lambda d: d.update(updatedAt="yesterday"), "updatedAt"),
]


@pytest.mark.parametrize(("name", "mutate", "message"), MUTATIONS, ids=[m[0] for m in MUTATIONS])
def test_each_rule_is_refused_with_a_clear_message(
    name: str, mutate: Callable[[Doc], None], message: str
) -> None:
    document = copy.deepcopy(generate_config())
    mutate(document)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        parse_config(document, environ={})


def test_generated_config_rotates_preferred_leaders_and_routes_like_ids() -> None:
    config = parse_config(generate_config(), environ={})
    preferred = [shard.preferred_leader for shard in config.shards]
    counts = sorted(preferred.count(node.node_id) for node in config.nodes)
    assert counts == [5, 5, 6]
    for account_id in (17376851231650125672, 6595447089537874820, 8794325015676184705):
        shard = config.shards[ids.shard_index(account_id)]
        assert shard.lower_bound <= ids.shard_key(account_id) <= shard.upper_bound


def test_environment_secret_overrides_the_file() -> None:
    document = generate_config()
    document["raftSecret"] = ""
    config = parse_config(document, environ={"LEDGER_RAFT_SECRET": "s" * 20})
    assert config.raft_secret == "s" * 20


def test_committed_config_and_procfile_agree() -> None:
    config = load_config(REPO / "cluster_config.json")
    assert len(config.shards) == limits.shard_count
    assert [node.address for node in config.nodes] == [f"localhost:{7000 + i}" for i in range(3)]
    procfile = (REPO / "Procfile").read_text().splitlines()
    assert [line.split(":")[0] for line in procfile] == ["node01", "node02", "node03", "gateway"]
    for node, line in zip(config.nodes, procfile, strict=False):
        assert f"--node-id {node.node_id}" in line
        assert f"--port {node.grpc_port}" in line
    assert "--port 8000" in procfile[-1]


def test_unreadable_and_malformed_files(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(tmp_path / "bad.json")


def test_gen_config_writes_a_valid_config_and_matching_procfile(tmp_path: pathlib.Path) -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "ledger.cli.dev",
            "gen-config",
            "--output",
            str(tmp_path / "c.json"),
            "--procfile",
            str(tmp_path / "Procfile"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    config = load_config(tmp_path / "c.json")
    procfile = (tmp_path / "Procfile").read_text()
    for node in config.nodes:
        assert f"--node-id {node.node_id}" in procfile
    assert json.loads((tmp_path / "c.json").read_text())["raftSecret"] == config.raft_secret


def test_node_with_unknown_id_exits_with_one_line(tmp_path: pathlib.Path) -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "ledger.cli.node",
            "--node-id",
            "nd_nope",
            "--data-dir",
            str(tmp_path),
            "--cluster-config",
            str(REPO / "cluster_config.json"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert completed.returncode != 0
    assert "unknown node id 'nd_nope'" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_gen_config_for_separate_hosts_binds_each_node_to_its_address(
    tmp_path: pathlib.Path,
) -> None:
    output = tmp_path / "cluster_config.json"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "ledger.cli.dev",
            "gen-config",
            "--output",
            str(output),
            "--hosts",
            "10.0.0.1,10.0.0.2,10.0.0.3",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    config = load_config(output)
    assert [(n.grpc_host, n.grpc_port, n.raft_host, n.raft_port_base) for n in config.nodes] == [
        (f"10.0.0.{i}", 7000, f"10.0.0.{i}", 17000) for i in (1, 2, 3)
    ]
    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "ledger.cli.dev",
            "gen-config",
            "--output",
            str(output),
            "--hosts",
            "10.0.0.1,10.0.0.1,10.0.0.3",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert refused.returncode != 0 and "3 distinct addresses" in refused.stderr
