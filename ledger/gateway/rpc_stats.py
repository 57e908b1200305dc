"""Call rate, error rate and p99 latency per public rpc, from the Prometheus metrics we keep.

The gateway already counts every call (``ledger_calls_total{method,code}``) and its latency
(``ledger_call_seconds{method}``, a histogram) in ``ledger.gateway.metrics``. The status page
needs recent rates, not totals since start, so ``RpcRates`` reads those series from the
registry on every poll, keeps the samples of the last ``window_s`` and reports the differences
between the newest and the oldest: no second set of counters on the call path.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry

from ledger.pb import ledger_api_pb2 as api

__all__ = ["PUBLIC_METHODS", "RpcRate", "RpcRates", "histogram_quantile"]

PUBLIC_METHODS: tuple[str, ...] = tuple(
    method.name for method in api.DESCRIPTOR.services_by_name["LedgerServiceApi"].methods
)
_CALLS = "ledger_calls_total"
_BUCKETS = "ledger_call_seconds_bucket"
window_s_default = 10.0  # long enough to smooth one-second polls, short enough to show a spike


@dataclass(frozen=True, slots=True)
class RpcRate:
    """One rpc over the window. ``p99_ms`` is None without calls in the window; it is as fine
    as the histogram's buckets (interpolated inside one, the largest finite bound beyond)."""

    method: str
    calls_per_s: float
    errors_per_s: float
    p99_ms: float | None
    calls_in_window: int
    errors_by_code: dict[str, int]  # codes other than OK, calls in the window
    calls_total: int  # since the gateway started


@dataclass(frozen=True, slots=True)
class _Sample:
    at_s: float
    calls: dict[tuple[str, str], float]  # (method, code) -> cumulative count
    buckets: dict[str, list[tuple[float, float]]]  # method -> [(upper bound, cumulative count)]


def histogram_quantile(quantile: float, buckets: list[tuple[float, float]]) -> float | None:
    """Prometheus's ``histogram_quantile`` over cumulative ``(upper bound, count)`` pairs.

    Linear inside the bucket that holds the rank; the largest finite bound when the rank is in
    the +Inf bucket; None without observations.
    """
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank = quantile * ordered[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound


class RpcRates:
    """Samples the public API's metrics and turns the last window into rates (not thread-safe:
    one poller calls ``sample``)."""

    def __init__(
        self, registry: CollectorRegistry = REGISTRY, window_s: float = window_s_default
    ) -> None:
        # Only our two series: collecting the whole registry would also read /proc every poll.
        self._source = registry.restricted_registry([_CALLS, _BUCKETS])
        self._window_s = window_s
        self._samples: deque[_Sample] = deque()

    def sample(self, now_s: float) -> tuple[list[RpcRate], float]:
        """Read the registry at monotonic time ``now_s``; the rates and the window they cover
        (seconds between the oldest kept sample and this one, 0 on the first call)."""
        newest = self._read(now_s)
        self._samples.append(newest)
        while len(self._samples) > 1 and now_s - self._samples[1].at_s >= self._window_s:
            self._samples.popleft()
        oldest = self._samples[0]
        span_s = newest.at_s - oldest.at_s
        return [self._rate(method, oldest, newest, span_s) for method in PUBLIC_METHODS], span_s

    def _read(self, now_s: float) -> _Sample:
        calls: dict[tuple[str, str], float] = {}
        buckets: dict[str, list[tuple[float, float]]] = {}
        for family in self._source.collect():
            for sample in family.samples:
                method = sample.labels.get("method", "")
                if sample.name == _CALLS:
                    calls[(method, sample.labels.get("code", ""))] = sample.value
                elif sample.name == _BUCKETS:
                    bound = float(sample.labels.get("le", "+Inf"))
                    buckets.setdefault(method, []).append((bound, sample.value))
        return _Sample(now_s, calls, buckets)

    @staticmethod
    def _rate(method: str, oldest: _Sample, newest: _Sample, span_s: float) -> RpcRate:
        codes = {code for (name, code) in newest.calls if name == method}
        delta = {
            code: int(newest.calls[(method, code)] - oldest.calls.get((method, code), 0.0))
            for code in codes
        }
        calls = sum(delta.values())
        errors = {code: count for code, count in sorted(delta.items()) if code != "OK" and count}
        total = int(sum(newest.calls[(method, code)] for code in codes))
        return RpcRate(
            method=method,
            calls_per_s=calls / span_s if span_s > 0 else 0.0,
            errors_per_s=sum(errors.values()) / span_s if span_s > 0 else 0.0,
            p99_ms=_window_p99_ms(oldest.buckets.get(method, []), newest.buckets.get(method, [])),
            calls_in_window=calls,
            errors_by_code=errors,
            calls_total=total,
        )


def _window_p99_ms(
    before: Iterable[tuple[float, float]], after: Iterable[tuple[float, float]]
) -> float | None:
    earlier = dict(before)
    window = [(bound, count - earlier.get(bound, 0.0)) for bound, count in after]
    p99_s = histogram_quantile(0.99, window)
    return None if p99_s is None else p99_s * 1000
