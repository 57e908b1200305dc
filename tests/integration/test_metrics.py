"""Prometheus metrics of ``ledger-standalone --metrics-port``.

Goal: every call is counted by method and status code, with its latency. Method: a real
standalone process on free ports, a few good and bad calls, then scrape ``/metrics`` over HTTP.
"""

from __future__ import annotations

import pathlib
import urllib.request
from collections.abc import Iterator

import grpc
import pytest
from harness import ServiceProcess, free_port

from ledger.pb import ledger_api_pb2 as api
from ledger.pb import ledger_api_pb2_grpc


@pytest.fixture
def server(tmp_path: pathlib.Path) -> Iterator[tuple[ServiceProcess, int]]:
    metrics_port = free_port()
    process = ServiceProcess(
        "standalone-metrics",
        "ledger.cli.standalone",
        [
            "--port",
            str(free_port()),
            "--data-dir",
            str(tmp_path / "data"),
            "--metrics-port",
            str(metrics_port),
        ],
        tmp_path,
    )
    try:
        process.start()
        yield process, metrics_port
    finally:
        process.stop()


def test_calls_are_counted_by_method_and_code(server: tuple[ServiceProcess, int]) -> None:
    process, metrics_port = server
    with grpc.insecure_channel(process.address) as channel:
        stub = ledger_api_pb2_grpc.LedgerServiceApiStub(channel)
        stub.CreateAccount(api.CreateAccountRequest(), timeout=10)
        stub.CreateAccount(api.CreateAccountRequest(), timeout=10)
        with pytest.raises(grpc.RpcError):
            stub.GetAccount(api.GetAccountRequest(account_id="nope"), timeout=10)
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as page:
        text = page.read().decode()
    assert 'ledger_calls_total{code="OK",method="CreateAccount"} 2.0' in text
    assert 'ledger_calls_total{code="INVALID_ARGUMENT",method="GetAccount"} 1.0' in text
    assert 'ledger_call_seconds_count{method="CreateAccount"} 2.0' in text
