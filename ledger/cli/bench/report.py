"""A run's result and its two forms: the ``--json`` document and the table."""

from __future__ import annotations

import collections
import dataclasses
from typing import Any

from ledger.cli.bench.config import OP_KINDS, BenchConfig
from ledger.cli.bench.stats import TRANSFER_OUTCOMES, LatencyStats

__all__ = ["BenchResult", "format_table"]


@dataclasses.dataclass
class BenchResult:
    """What the measured window produced: latencies of OK calls and error counts, per op kind."""

    config: BenchConfig
    elapsed_s: float
    latencies: dict[str, LatencyStats]
    errors: dict[str, collections.Counter[str]]
    client_cpu_s: float
    items: dict[str, int] = dataclasses.field(default_factory=dict)
    item_errors: dict[str, collections.Counter[str]] = dataclasses.field(default_factory=dict)
    transfers: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)

    def transfer_outcomes(self) -> dict[str, int]:
        """Transfers by final status: the TRANSFER_OUTCOMES (0 if none), then any other."""
        counts = {outcome: self.transfers.get(outcome, 0) for outcome in TRANSFER_OUTCOMES}
        return counts | dict(
            sorted(
                (outcome, count)
                for outcome, count in self.transfers.items()
                if outcome not in counts
            )
        )

    def as_json(self) -> dict[str, Any]:
        """{params, total, by_op, errors, item_errors[, transfers]}: the ``--json`` document."""
        by_op: dict[str, Any] = {}
        empty: collections.Counter[str] = collections.Counter()
        for kind in OP_KINDS:
            stats = self.latencies[kind]
            errors = self.errors[kind]
            item_errors = self.item_errors.get(kind, empty)
            if len(stats) == 0 and not errors:
                continue
            by_op[kind] = stats.summary(self.elapsed_s, self.items.get(kind)) | {
                "errors": dict(sorted(errors.items())),
                "item_errors": dict(sorted(item_errors.items())),
            }
            if kind == "transfer":
                by_op[kind]["transfers"] = self.transfer_outcomes()
        total_errors: collections.Counter[str] = collections.Counter()
        for errors in self.errors.values():
            total_errors.update(errors)
        total_item_errors: collections.Counter[str] = collections.Counter()
        for errors in self.item_errors.values():
            total_item_errors.update(errors)
        total_items = sum(self.items.get(kind, len(self.latencies[kind])) for kind in OP_KINDS)
        total = LatencyStats.merged(list(self.latencies.values())).summary(
            self.elapsed_s, total_items
        )
        document = {
            "params": self.config.as_json(),
            "elapsed_s": self.elapsed_s,
            "client_cpu_s": self.client_cpu_s,
            "latency_per": "call",
            "total": total,
            "by_op": by_op,
            "errors": dict(sorted(total_errors.items())),
            "item_errors": dict(sorted(total_item_errors.items())),
        }
        if self.config.mix.get("transfer", 0) > 0 or self.transfers:
            document["transfers"] = self.transfer_outcomes()
        return document


def _fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _format_errors(errors: dict[str, int]) -> str:
    return ", ".join(f"{code}={count}" for code, count in errors.items()) or "none"


def format_table(document: dict[str, Any]) -> str:
    """The human-readable result: parameters, one row per op kind and a total, then errors."""
    params = document["params"]
    lines = [
        "bench: gateway={gateway} concurrency={concurrency} duration={duration_s}s "
        "warmup={warmup_s}s accounts={accounts} channels={channels} batch={batch} "
        "seed={seed} rate={rate}".format(**params)
        + f" tls={params.get('tls', False)} token={params.get('token', False)}",
        "mix: " + ",".join(f"{kind}={weight}" for kind, weight in params["mix"].items()),
        f"measured {document['elapsed_s']:.2f}s, client CPU {document['client_cpu_s']:.2f}s",
        "",
    ]
    header = (
        "op",
        "calls",
        "calls/s",
        "items",
        "items/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "errors",
        "item errors",
    )
    rows: list[tuple[str, ...]] = [header]

    def row(
        name: str, stats: dict[str, Any], errors: dict[str, int], item_errors: dict[str, int]
    ) -> tuple[str, ...]:
        return (
            name,
            str(stats["ops"]),
            f"{stats['ops_per_s']:.1f}",
            str(stats["items"]),
            f"{stats['items_per_s']:.1f}",
            _fmt_ms(stats["p50_ms"]),
            _fmt_ms(stats["p95_ms"]),
            _fmt_ms(stats["p99_ms"]),
            _fmt_ms(stats["max_ms"]),
            str(sum(errors.values())),
            str(sum(item_errors.values())),
        )

    for kind, stats in document["by_op"].items():
        rows.append(row(kind, stats, stats["errors"], stats["item_errors"]))
    rows.append(row("total", document["total"], document["errors"], document["item_errors"]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for r in rows:
        lines.append(
            "  ".join(
                cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
                for i, cell in enumerate(r)
            )
        )
    lines.append("")
    lines.append("latency is per call; items are transactions created OK")
    lines.append(f"errors: {_format_errors(document['errors'])}")
    lines.append(f"item errors: {_format_errors(document['item_errors'])}")
    if "transfers" in document:
        lines.append(
            "transfers: "
            + ", ".join(f"{outcome}={count}" for outcome, count in document["transfers"].items())
        )
    return "\n".join(lines)
