"""Prometheus metrics of the public API: calls by method and status code, and their latency.

Exposed on ``--metrics-port`` (off by default) by ``ledger-standalone`` and ``ledger-gateway``
with prometheus-client's own HTTP server. Recording costs a few microseconds per call.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram, start_http_server

__all__ = ["observe_call", "start_metrics_server"]

_CALLS = Counter(
    "ledger_calls_total", "Public API calls by method and status code.", ["method", "code"]
)
_SECONDS = Histogram(
    "ledger_call_seconds",
    "Public API call latency by method.",
    ["method"],
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0),
)


def observe_call(method: str, code: str, seconds: float) -> None:
    _CALLS.labels(method, code).inc()
    _SECONDS.labels(method).observe(seconds)


def start_metrics_server(host: str, port: int) -> None:
    start_http_server(port, addr=host)
