"""Outcomes of core commands: a domain failure is a value with a reason, never an exception.

An exception inside a replicated apply would wedge the Raft group (PySyncObj retries the entry
for ever), so the core reports every refusal as a ``Failure`` that is stored and replicated like
any result. ``Reason`` is the service's one table of error reasons (``ledger.reasons``), where
each reason also has its gRPC status code.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.reasons import Reason

__all__ = ["Failure", "Reason"]


@dataclass(frozen=True, slots=True)
class Failure:
    reason: Reason
    message: str
    # Sorted (key, value) pairs: a tuple, not a dict, so the bytes never depend on dict order.
    metadata: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, reason: Reason, message: str, **metadata: str) -> Failure:
        return cls(reason, message, tuple(sorted(metadata.items())))
