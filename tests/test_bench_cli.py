"""``ledger-dev bench`` end to end: a mixed load reports sane figures; bad setups fail cleanly.

Goal: the bench command that backs every performance claim (SPEC §6) works against a real
server: it completes a run of every op kind without errors, its ``--json`` document has the
documented shape with ordered percentiles, and an unreachable gateway gives a one-line error
and a non-zero exit instead of a traceback.

Method: start ``ledger-standalone --port 0`` as a subprocess in a temporary directory, read the
port from its ``listening on HOST:PORT`` line (bounded wait), then run the bench as a separate
process (``python -m ledger.cli.dev bench``) exactly as a user would. No assertion depends on
timing: throughput and latency values are only checked for shape and order. The server is always
terminated.
"""

from __future__ import annotations

import json
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from ledger.cli.bench import LatencyStats, parse_mix

start_timeout_s = 60.0     # the standalone server opens 16 LevelDBs before it listens
stop_timeout_s = 15.0
bench_timeout_s = 120.0    # a 2.5 s bench plus setup and drain; generous for slow CI machines
_LISTENING = re.compile(r"listening on (\S+):(\d+)")

MIX = "create_settled=50,create_pending=20,settle=10,cancel=10,get=5,list=5"


def _read_port(log_path: pathlib.Path, process: subprocess.Popen[bytes]) -> int:
    """Poll the server's log for its 'listening on' line; fail if it exits or takes too long."""
    deadline = time.monotonic() + start_timeout_s
    while time.monotonic() < deadline:
        match = _LISTENING.search(log_path.read_text(errors="replace"))
        if match:
            return int(match.group(2))
        if process.poll() is not None:
            raise RuntimeError(f"ledger-standalone exited early:\n{log_path.read_text()}")
        time.sleep(0.05)
    raise TimeoutError(f"no 'listening on' line after {start_timeout_s}s:\n{log_path.read_text()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=stop_timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def standalone_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    root = tmp_path_factory.mktemp("bench-standalone")
    log_path = root / "standalone.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-u", "-m", "ledger.cli.standalone",
             "--port", "0", "--data-dir", str(root / "data")],
            stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        yield _read_port(log_path, process)
    finally:
        _stop(process)


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ledger.cli.dev", "bench", *args],
        capture_output=True, text=True, timeout=bench_timeout_s,
    )


def test_bench_mixed_load_reports_ordered_percentiles(standalone_port: int) -> None:
    result = _bench(
        "--gateway", f"127.0.0.1:{standalone_port}", "--duration", "2", "--warmup", "0.5",
        "--concurrency", "8", "--accounts", "4", "--mix", MIX, "--json",
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)

    assert set(document) >= {"params", "total", "by_op", "errors"}
    assert document["params"]["concurrency"] == 8
    assert document["params"]["mix"]["create_settled"] == 50
    assert document["errors"] == {}, document["errors"]

    total = document["total"]
    assert total["ops"] > 0
    assert total["ops_per_s"] > 0
    assert 0 <= total["p50_ms"] <= total["p95_ms"] <= total["p99_ms"] <= total["max_ms"]
    assert total["ops"] == sum(op["ops"] for op in document["by_op"].values())
    for name, op in document["by_op"].items():
        assert op["errors"] == {}, name
        assert op["p50_ms"] <= op["p95_ms"] <= op["p99_ms"] <= op["max_ms"], name
    # Both creates have weight here and settle/cancel fall back to create_pending: both appear.
    assert {"create_settled", "create_pending"} <= set(document["by_op"])


def test_bench_table_output(standalone_port: int) -> None:
    result = _bench(
        "--gateway", f"127.0.0.1:{standalone_port}", "--duration", "0.5", "--warmup", "0",
        "--concurrency", "2", "--accounts", "1",
    )
    assert result.returncode == 0, result.stderr
    assert "create_settled" in result.stdout
    assert re.search(r"^total\s+\d+", result.stdout, re.MULTILINE), result.stdout
    assert "errors: none" in result.stdout


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed on exit: nothing listens there


def test_bench_unreachable_gateway_fails_in_one_line() -> None:
    result = _bench("--gateway", f"127.0.0.1:{_dead_port()}", "--duration", "1", "--warmup", "0")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    assert "not reachable" in result.stderr


def test_bench_batch_flag_explains_missing_rpc() -> None:
    result = _bench("--batch", "10", "--gateway", f"127.0.0.1:{_dead_port()}")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "CreateTransactions" in result.stderr


def test_bench_rejects_unknown_op_in_mix() -> None:
    result = _bench("--mix", "create_settled=1,transfer=1")
    assert result.returncode == 2
    assert "transfer" in result.stderr


def test_latency_stats_nearest_rank() -> None:
    stats = LatencyStats([i / 1000 for i in range(1, 101)])  # 1..100 ms
    assert stats.percentile_ms(50) == pytest.approx(50.0)
    assert stats.percentile_ms(95) == pytest.approx(95.0)
    assert stats.percentile_ms(99) == pytest.approx(99.0)
    assert stats.percentile_ms(100) == pytest.approx(100.0)
    assert LatencyStats([0.007]).percentile_ms(1) == pytest.approx(7.0)
    assert LatencyStats().percentile_ms(50) is None


def test_parse_mix() -> None:
    assert parse_mix("create_settled=60, get=5,list=0") == {
        "create_settled": 60, "get": 5, "list": 0,
    }
    for bad in ("get", "get=x", "get=-1", "get=0", "get=1,get=2", "nope=1"):
        with pytest.raises(ValueError):
            parse_mix(bad)
