"""``ledger-dev bench-scale`` end to end, and its small parsing helpers.

Goal: the scale command starts a fresh cluster, grows the ledger to each stage, benches single
calls and batches at every stage, samples node RSS and Raft terms, reads the node logs, and
reports all of it in one JSON document, then leaves no process behind. Method: run it as a
subprocess with a tiny load (stages 0 and 3,000, 1 s benches, 1 s windows, 50 accounts) and
``--json``; the figures are checked for presence and sanity, never for speed.
"""

from __future__ import annotations

import asyncio
import json
import pathlib
from typing import Any

import click
import grpc
import grpc.aio
import pytest
from harness import run_dev

from ledger.cli.bench import Progress
from ledger.cli.bench_scale import _Loader, _Target, count_log_lines, parse_stages
from ledger.config import generate_config, parse_config
from ledger.pb import ledger_api_pb2 as api

scale_timeout_s = 180  # ~25 s on the 2-vCPU reference machine; generous for slow CI


def test_parse_stages() -> None:
    assert parse_stages("0,1M,5000000") == [0, 1_000_000, 5_000_000]
    assert parse_stages("3k, 1_000_000") == [3_000, 1_000_000]
    for bad in ("", "0,0", "5,3", "-1", "1G", "60M", ",".join(str(n) for n in range(9))):
        with pytest.raises(ValueError):
            parse_stages(bad)


def test_count_log_lines(tmp_path: pathlib.Path) -> None:
    log = tmp_path / "node1.log"
    log.write_text(
        "2026 INFO pysyncobj: started\n"
        "2026 CRITICAL pysyncobj: truncating already-applied log entries from index 7\n"
        "2026 CRITICAL other: boom\n"
    )
    counts = count_log_lines(
        [log, tmp_path / "missing.log"], ["CRITICAL", "truncating already-applied"]
    )
    assert counts == {"CRITICAL": 2, "truncating already-applied": 1}


class _FakeStub:
    """CreateTransactions that fails whole calls and single items on a script, then succeeds."""

    def __init__(self, call_failures: int, item_failures: int) -> None:
        self.call_failures = call_failures
        self.item_failures = item_failures
        self.items_sent = 0

    async def CreateTransactions(
        self, request: api.CreateTransactionsRequest, timeout: float
    ) -> api.CreateTransactionsResponse:
        await asyncio.sleep(0)
        if self.call_failures > 0:
            self.call_failures -= 1
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "no leader"
            )
        self.items_sent += len(request.transactions)
        results = []
        for _ in request.transactions:
            code = 0
            if self.item_failures > 0:
                self.item_failures -= 1
                code = grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
            results.append(api.CreateTransactionResult(status=api.ItemStatus(code=code)))
        return api.CreateTransactionsResponse(results=results)


def _loader(stub: Any) -> _Loader:
    target = _Target("unused", parse_config(generate_config(), environ={}), None)
    target.shard_terms = dict  # type: ignore[method-assign]  # no nodes to ask
    return _Loader(
        stub,
        [f"{n:016x}" for n in range(7)],
        concurrency=3,
        window_s=60.0,
        target=target,
        origin_s=0.0,
    )


def test_loader_sends_failed_items_again_and_counts_every_failure() -> None:
    stub = _FakeStub(call_failures=3, item_failures=5)
    loader = _loader(stub)
    growth = asyncio.run(loader.grow(0, 2_500, Progress()))
    assert loader.loaded == growth["items"] == 2_500
    assert stub.items_sent == 2_505  # the 5 failed items were sent again, nothing more
    assert loader.errors == {"UNAVAILABLE": 3} and growth["failed_calls"] == 3
    assert loader.item_errors == {"RESOURCE_EXHAUSTED": 5} and growth["failed_items"] == 5
    assert sum(window.items for window in loader.windows) == 2_500


def test_loader_gives_up_when_calls_keep_failing() -> None:
    with pytest.raises(click.ClickException, match="without progress; last: UNAVAILABLE"):
        asyncio.run(
            _loader(_FakeStub(call_failures=10**6, item_failures=0)).grow(0, 10_000, Progress())
        )
    with pytest.raises(click.ClickException, match="last: item RESOURCE_EXHAUSTED"):
        asyncio.run(
            _loader(_FakeStub(call_failures=0, item_failures=10**9)).grow(0, 10_000, Progress())
        )


def test_bench_scale_reports_every_stage_and_the_growth() -> None:
    completed = run_dev(
        "bench-scale",
        "--stages",
        "0,3000",
        "--duration",
        "1",
        "--window",
        "1",
        "--accounts",
        "50",
        "--json",
        timeout_s=scale_timeout_s,
    )
    assert completed.returncode == 0, completed.stderr
    assert "Traceback" not in completed.stderr
    document = json.loads(completed.stdout)

    stages = document["stages"]
    assert [stage["target"] for stage in stages] == [0, 3000]
    assert stages[0]["loaded"] == 0
    assert stages[0]["stored"] == 0
    assert stages[1]["loaded"] >= 3000
    assert stages[1]["stored"] >= stages[1]["loaded"]
    for stage in stages:
        for run in ("single", "batch"):
            assert stage[run]["ops_per_s"] > 0
            assert stage[run]["errors"] == 0
            assert stage[run]["item_errors"] == 0
        assert stage["batch"]["items_per_s"] > stage["batch"]["ops_per_s"]
        rss = stage["after_bench"]["rss_mib"]
        assert len(rss) == 3 and all(value is not None and value > 0 for value in rss)

    growth = document["growth"]
    assert growth["loaded"] == stages[1]["loaded"]
    assert growth["errors"] == {} and growth["item_errors"] == {}
    assert sum(window["items"] for window in growth["windows"]) == growth["loaded"]
    assert isinstance(growth["elections"], int) and growth["elections"] >= 0
    assert growth["critical_lines"] is not None and growth["truncating_lines"] is not None
    assert all(value > 0 for value in growth["rss_end_mib"])
    for key in ("first_window_items_per_s", "last_window_items_per_s", "last_first_ratio"):
        assert key in growth
    assert document["observed"] == {"rss": True, "logs": True}
