"""``ledger-dev check`` against a real cluster.

Goal: a healthy cluster passes (exit 0, one leader per shard, identical replicas) and a dead
node is reported (exit 1, one line naming it, no traceback). Method: a 3-node cluster on free
ports (tests/harness.py), a few writes, then the command as a subprocess before and after a
SIGKILL of one node.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys
from collections.abc import Iterator

import grpc
import pytest
from harness import ClusterService

from ledger.pb import ledger_api_pb2 as api
from ledger.pb import ledger_api_pb2_grpc

check_timeout_s = 120


@pytest.fixture
def cluster(tmp_path: pathlib.Path) -> Iterator[ClusterService]:
    service = ClusterService(tmp_path)
    try:
        service.start()
        yield service
    finally:
        service.stop()


def _check(cluster: ClusterService) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "ledger.cli.dev",
            "check",
            "--cluster-config",
            str(cluster.config_path),
        ],
        capture_output=True,
        text=True,
        timeout=check_timeout_s,
        check=False,
    )


def test_check_passes_then_reports_a_dead_node(cluster: ClusterService) -> None:
    with grpc.insecure_channel(cluster.address) as channel:
        stub = ledger_api_pb2_grpc.LedgerServiceApiStub(channel)
        for _ in range(8):
            account = stub.CreateAccount(api.CreateAccountRequest(), timeout=10).account
            stub.CreateTransaction(
                api.CreateTransactionRequest(account_id=account.id, amount=10, settled=True),
                timeout=10,
            )
    healthy = _check(cluster)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert "ok: 16 shards" in healthy.stdout
    assert len(healthy.stdout.splitlines()) == 1 + 16 + 1  # header, shards, verdict

    cluster.nodes[1].kill9()
    broken = _check(cluster)
    assert broken.returncode == 1
    assert f"node {cluster.config.nodes[1].node_id} is unreachable" in broken.stderr
    assert "Traceback" not in broken.stderr
