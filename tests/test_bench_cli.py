"""``ledger-dev bench`` end to end: a mixed load reports sane figures; bad setups fail cleanly.

Goal: the bench command that backs every performance claim works against a real
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

import collections
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
from harness import run_dev

from ledger.cli.bench import (
    OP_KINDS,
    TRANSFER_OUTCOMES,
    BenchConfig,
    BenchResult,
    LatencyStats,
    format_table,
    item_code_name,
    parse_mix,
    transfer_outcome,
)
from ledger.pb import ledger_api_pb2 as api

start_timeout_s = 60.0  # the standalone server opens 16 LevelDBs before it listens
stop_timeout_s = 15.0
bench_timeout_s = 120.0  # a 2.5 s bench plus setup and drain; generous for slow CI machines
_LISTENING = re.compile(r"listening on (\S+):(\d+)")

MIX = "create_settled=50,create_pending=20,settle=10,cancel=10,get=5,list=5,transfer=10"


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
            [
                sys.executable,
                "-u",
                "-m",
                "ledger.cli.standalone",
                "--port",
                "0",
                "--data-dir",
                str(root / "data"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield _read_port(log_path, process)
    finally:
        _stop(process)


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    return run_dev("bench", *args, timeout_s=bench_timeout_s)


def test_bench_mixed_load_reports_ordered_percentiles(standalone_port: int) -> None:
    result = _bench(
        "--gateway",
        f"127.0.0.1:{standalone_port}",
        "--duration",
        "2",
        "--warmup",
        "0.5",
        "--concurrency",
        "8",
        "--accounts",
        "4",
        "--mix",
        MIX,
        "--json",
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


def test_bench_open_loop_never_offers_more_than_the_rate(standalone_port: int) -> None:
    """With --rate the timetable caps the calls: at most rate x measured seconds (+1 slot)."""
    result = _bench(
        "--gateway",
        f"127.0.0.1:{standalone_port}",
        "--duration",
        "2",
        "--warmup",
        "0",
        "--concurrency",
        "4",
        "--accounts",
        "2",
        "--rate",
        "25",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["params"]["rate"] == 25
    assert 0 < document["total"]["ops"] <= 25 * 2 + 1
    assert document["errors"] == {}


def test_bench_table_output(standalone_port: int) -> None:
    result = _bench(
        "--gateway",
        f"127.0.0.1:{standalone_port}",
        "--duration",
        "0.5",
        "--warmup",
        "0",
        "--concurrency",
        "2",
        "--accounts",
        "1",
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


def test_bench_batch_reports_items(standalone_port: int) -> None:
    result = _bench(
        "--gateway",
        f"127.0.0.1:{standalone_port}",
        "--duration",
        "1",
        "--warmup",
        "0.2",
        "--concurrency",
        "4",
        "--accounts",
        "1200",
        "--batch",
        "50",
        "--mix",
        "create_settled=60,create_pending=20,settle=10,get=10",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["params"]["batch"] == 50
    assert document["latency_per"] == "call"
    assert document["errors"] == {} and document["item_errors"] == {}
    total = document["total"]
    assert total["items_per_s"] > 0 and total["ops_per_s"] > 0
    assert total["items"] == sum(op["items"] for op in document["by_op"].values())
    for name in ("create_settled", "create_pending"):
        op = document["by_op"][name]
        assert op["items"] == 50 * op["ops"], name  # every item of every OK call succeeded
        assert op["items_per_s"] == pytest.approx(50 * op["ops_per_s"]), name
    for name in ("settle", "get"):
        if name in document["by_op"]:
            assert document["by_op"][name]["items"] == document["by_op"][name]["ops"], name


def test_bench_batch_table(standalone_port: int) -> None:
    result = _bench(
        "--gateway",
        f"127.0.0.1:{standalone_port}",
        "--duration",
        "0.5",
        "--warmup",
        "0",
        "--concurrency",
        "2",
        "--accounts",
        "2",
        "--batch",
        "10",
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"^op\s+calls\s+calls/s\s+items\s+items/s", result.stdout, re.MULTILINE)
    assert "errors: none" in result.stdout and "item errors: none" in result.stdout


@pytest.mark.parametrize("batch", ["-1", "1001"])
def test_bench_batch_out_of_range_is_a_usage_error(batch: str) -> None:
    result = _bench("--batch", batch, "--gateway", f"127.0.0.1:{_dead_port()}")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "--batch" in result.stderr


def test_item_errors_are_counted_apart_from_call_errors() -> None:
    config = BenchConfig(batch=10)
    latencies = {kind: LatencyStats() for kind in OP_KINDS}
    latencies["create_settled"] = LatencyStats([0.010, 0.020])
    errors = {kind: collections.Counter() for kind in OP_KINDS}
    errors["create_settled"]["DEADLINE_EXCEEDED"] = 1
    item_errors = {kind: collections.Counter() for kind in OP_KINDS}
    item_errors["create_settled"].update([item_code_name(5), item_code_name(5), item_code_name(6)])
    items = {kind: 0 for kind in OP_KINDS} | {"create_settled": 17}
    document = BenchResult(config, 2.0, latencies, errors, 0.1, items, item_errors).as_json()
    assert document["errors"] == {"DEADLINE_EXCEEDED": 1}
    assert document["item_errors"] == {"ALREADY_EXISTS": 1, "NOT_FOUND": 2}
    assert document["total"]["ops"] == 2 and document["total"]["items"] == 17
    assert document["total"]["items_per_s"] == pytest.approx(8.5)
    assert document["by_op"]["create_settled"]["item_errors"] == {
        "ALREADY_EXISTS": 1,
        "NOT_FOUND": 2,
    }
    assert item_code_name(0) == "OK" and item_code_name(99) == "CODE_99"


def test_bench_rejects_unknown_op_in_mix() -> None:
    result = _bench("--mix", "create_settled=1,refund=1")
    assert result.returncode == 2
    assert "refund" in result.stderr


def test_bench_transfers_report_their_outcomes(standalone_port: int) -> None:
    """Transfers between seeded bench accounts: all complete (the seed top-up is far above the
    amounts), their outcomes add up to the transfer calls, no call fails."""
    result = _bench(
        "--gateway",
        f"127.0.0.1:{standalone_port}",
        "--duration",
        "1",
        "--warmup",
        "0.2",
        "--concurrency",
        "4",
        "--accounts",
        "8",
        "--mix",
        "transfer=100",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["params"]["mix"] == {"transfer": 100}
    assert document["errors"] == {} and document["item_errors"] == {}
    assert set(document["by_op"]) == {"transfer"}
    op = document["by_op"]["transfer"]
    assert op["ops"] > 0 and op["ops_per_s"] > 0 and op["errors"] == {}
    assert 0 <= op["p50_ms"] <= op["p95_ms"] <= op["p99_ms"] <= op["max_ms"]
    assert list(op["transfers"]) == list(TRANSFER_OUTCOMES)
    assert op["transfers"] == {"completed": op["ops"], "insufficient_funds": 0, "failed": 0}
    assert document["transfers"] == op["transfers"]
    assert document["total"]["ops"] == op["ops"]


def test_bench_transfers_in_a_mix_and_the_table(standalone_port: int) -> None:
    result = _bench(
        "--gateway",
        f"127.0.0.1:{standalone_port}",
        "--duration",
        "0.5",
        "--warmup",
        "0",
        "--concurrency",
        "2",
        "--accounts",
        "3",
        "--mix",
        "create_settled=50,transfer=50",
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"^transfer\s+\d+", result.stdout, re.MULTILINE), result.stdout
    match = re.search(
        r"^transfers: completed=(\d+), insufficient_funds=0, failed=0$", result.stdout, re.MULTILINE
    )
    assert match and int(match.group(1)) > 0, result.stdout
    assert "errors: none" in result.stdout


def test_bench_transfer_needs_two_accounts() -> None:
    result = _bench(
        "--mix", "transfer=1", "--accounts", "1", "--gateway", f"127.0.0.1:{_dead_port()}"
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "--accounts" in result.stderr and "2 accounts" in result.stderr


def test_transfer_outcomes_in_the_document() -> None:
    assert [
        transfer_outcome(s)
        for s in (
            api.TRANSFER_STATUS_COMPLETED,
            api.TRANSFER_STATUS_INSUFFICIENT_FUNDS,
            api.TRANSFER_STATUS_FAILED,
            api.TRANSFER_STATUS_IN_FLIGHT,
        )
    ] == ["completed", "insufficient_funds", "failed", "in_flight"]
    assert transfer_outcome(99) == "status_99"

    latencies = {kind: LatencyStats() for kind in OP_KINDS}
    latencies["transfer"] = LatencyStats([0.010, 0.020, 0.030])
    errors = {kind: collections.Counter() for kind in OP_KINDS}
    errors["transfer"]["DEADLINE_EXCEEDED"] = 1
    outcomes = collections.Counter({"insufficient_funds": 1, "completed": 2})
    document = BenchResult(
        BenchConfig(mix={"transfer": 1}), 1.0, latencies, errors, 0.1, transfers=outcomes
    ).as_json()
    expected = {"completed": 2, "insufficient_funds": 1, "failed": 0}
    assert document["by_op"]["transfer"]["transfers"] == expected
    assert document["transfers"] == expected
    assert document["by_op"]["transfer"]["ops"] == 3
    assert document["errors"] == {"DEADLINE_EXCEEDED": 1}
    assert "transfers: completed=2, insufficient_funds=1, failed=0" in format_table(document)

    # Without transfers in the mix, the document and the table have no transfer counts.
    latencies = {kind: LatencyStats() for kind in OP_KINDS}
    latencies["get"] = LatencyStats([0.001])
    errors = {kind: collections.Counter() for kind in OP_KINDS}
    plain = BenchResult(BenchConfig(mix={"get": 1}), 1.0, latencies, errors, 0.1).as_json()
    assert "transfers" not in plain and "transfer" not in plain["by_op"]
    assert "transfers:" not in format_table(plain)


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
        "create_settled": 60,
        "get": 5,
        "list": 0,
    }
    assert parse_mix("create_settled=100,transfer=10") == {"create_settled": 100, "transfer": 10}
    for bad in ("get", "get=x", "get=-1", "get=0", "get=1,get=2", "nope=1"):
        with pytest.raises(ValueError):
            parse_mix(bad)
