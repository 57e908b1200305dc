"""What a bench run is asked to do: the op kinds, ``--mix`` weights, the bounds of every option
and ``BenchConfig`` (the method is in the package docstring, ``ledger.cli.bench``)."""

from __future__ import annotations

import dataclasses
from typing import Any

from ledger import limits

__all__ = [
    "BATCHED_KINDS",
    "GATEWAY_DEFAULT",
    "MIX_DEFAULT",
    "OP_KINDS",
    "BenchConfig",
    "parse_mix",
]

# --- Bounds of the options, with units.
rate_max = 1_000_000.0  # calls/s; far above what one client process can offer
concurrency_max = 10_000  # in-flight calls; more only measures the client's event loop
channels_max = 256
accounts_max = 1_000_000
duration_max_s = 24 * 3600.0
batch_max = limits.batch_items_max  # items per CreateTransactions / CreateAccounts call

GATEWAY_DEFAULT = "localhost:8000"
MIX_DEFAULT = "create_settled=100"
OP_KINDS = ("create_settled", "create_pending", "settle", "cancel", "get", "list", "transfer")
BATCHED_KINDS = ("create_settled", "create_pending")  # the ops that --batch turns into batches


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    """The command's parameters, validated by click before they get here."""

    gateway: str = GATEWAY_DEFAULT
    concurrency: int = 64
    duration_s: float = 10.0
    warmup_s: float = 2.0
    accounts: int = 64
    mix: dict[str, int] = dataclasses.field(default_factory=lambda: {"create_settled": 100})
    channels: int = 1
    batch: int = 0
    seed: int = 1
    rate: float = 0.0  # calls/s offered; 0 = closed loop
    tls: bool = False  # what the channels used (set from the client options; the token itself
    token: bool = False  # is never part of the config or its JSON)

    def as_json(self) -> dict[str, Any]:
        document = dataclasses.asdict(self)
        document["mix"] = dict(self.mix)
        return document


def parse_mix(text: str) -> dict[str, int]:
    """``name=weight,...`` into {name: weight}; names from OP_KINDS, weights ints >= 0, sum > 0."""
    mix: dict[str, int] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, weight_text = item.partition("=")
        name = name.strip()
        if not sep:
            raise ValueError(f"{item!r} is not name=weight")
        if name not in OP_KINDS:
            raise ValueError(f"unknown op {name!r}; known: {', '.join(OP_KINDS)}")
        if name in mix:
            raise ValueError(f"op {name!r} given twice")
        try:
            weight = int(weight_text.strip())
        except ValueError:
            raise ValueError(f"weight of {name!r} is not an integer: {weight_text!r}") from None
        if weight < 0:
            raise ValueError(f"weight of {name!r} is negative")
        mix[name] = weight
    if sum(mix.values()) <= 0:
        raise ValueError("the weights must add up to more than 0")
    return mix
