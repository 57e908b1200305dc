"""Counting what a run saw: latency samples with nearest-rank percentiles, status code names of
failed batch items, and transfer outcomes by name."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import grpc

from ledger.pb import ledger_api_pb2 as api

__all__ = ["TRANSFER_OUTCOMES", "LatencyStats", "item_code_name", "transfer_outcome"]

TRANSFER_OUTCOMES = ("completed", "insufficient_funds", "failed")  # always in the JSON, in order
_CODE_NAMES: dict[int, str] = {code.value[0]: code.name for code in grpc.StatusCode}


class LatencyStats:
    """Latency samples (seconds) of one op kind, with nearest-rank percentiles in milliseconds.

    All samples are kept (a float each, ~1M samples is ~8 MB): exact percentiles, no sketch to
    explain. Nearest-rank returns a latency that some call actually had.
    """

    def __init__(self, samples: Sequence[float] = ()) -> None:
        self.samples: list[float] = list(samples)
        self._sorted: list[float] | None = None

    def add(self, seconds: float) -> None:
        self.samples.append(seconds)
        self._sorted = None

    def __len__(self) -> int:
        return len(self.samples)

    @classmethod
    def merged(cls, parts: Sequence[LatencyStats]) -> LatencyStats:
        return cls(list(itertools.chain.from_iterable(part.samples for part in parts)))

    def percentile_ms(self, percent: float) -> float | None:
        """The nearest-rank percentile in ms (rank ceil(p/100 * n), 1-based); None if empty."""
        if not 0 < percent <= 100:
            raise ValueError(f"percentile must be in (0, 100], got {percent}")
        if not self.samples:
            return None
        if self._sorted is None:
            self._sorted = sorted(self.samples)
        rank = max(1, math.ceil(percent / 100 * len(self._sorted)))
        return self._sorted[rank - 1] * 1000.0

    def summary(self, elapsed_s: float, items: int | None = None) -> dict[str, Any]:
        """calls and items (default: one per call) with their rates over ``elapsed_s``, and
        the per-call p50/p95/p99/max in ms (None without samples)."""
        items = len(self.samples) if items is None else items
        return {
            "ops": len(self.samples),
            "ops_per_s": len(self.samples) / elapsed_s if elapsed_s > 0 else 0.0,
            "items": items,
            "items_per_s": items / elapsed_s if elapsed_s > 0 else 0.0,
            "p50_ms": self.percentile_ms(50),
            "p95_ms": self.percentile_ms(95),
            "p99_ms": self.percentile_ms(99),
            "max_ms": self.percentile_ms(100),
        }


def item_code_name(code: int) -> str:
    """The grpc.StatusCode name of an ItemStatus code (``CODE_<n>`` for an unknown number)."""
    return _CODE_NAMES.get(code, f"CODE_{code}")


def transfer_outcome(status: int) -> str:
    """``completed``, ``insufficient_funds``, ``failed`` (or ``in_flight``, ``invalid``,
    ``status_<n>``): a TransferStatus as counted in the result."""
    try:
        name = api.TransferStatus.Name(status)
    except ValueError:
        return f"status_{status}"
    return name.removeprefix("TRANSFER_STATUS_").lower()
