"""Outcomes of core commands: a domain failure is a value with a reason, never an exception.

An exception inside a replicated apply would wedge the Raft group (PySyncObj retries the entry
for ever), so the core reports every refusal as a ``Failure`` that is stored and replicated like
any result. The gateway owns the single table from ``Reason`` to gRPC status code.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Failure", "Reason"]


class Reason(enum.Enum):
    """Why a command or query was refused; the name is the ErrorInfo reason on the wire."""

    # INVALID_ARGUMENT: wrong regardless of state.
    INVALID_AMOUNT = "INVALID_AMOUNT"
    DESCRIPTION_TOO_LONG = "DESCRIPTION_TOO_LONG"
    IDEMPOTENCY_KEY_TOO_LONG = "IDEMPOTENCY_KEY_TOO_LONG"
    INVALID_PAGE_SIZE = "INVALID_PAGE_SIZE"
    INVALID_PAGE_TOKEN = "INVALID_PAGE_TOKEN"
    INVALID_COMMAND = "INVALID_COMMAND"  # a malformed replicated command (never from the gateway)
    SAME_ACCOUNT = "SAME_ACCOUNT"  # a transfer from an account to itself
    INVALID_HOLD_TIMEOUT = "INVALID_HOLD_TIMEOUT"  # only pending, only in the future
    # NOT_FOUND.
    ACCOUNT_NOT_FOUND = "ACCOUNT_NOT_FOUND"
    TRANSACTION_NOT_FOUND = "TRANSACTION_NOT_FOUND"
    TRANSFER_NOT_FOUND = "TRANSFER_NOT_FOUND"
    # ALREADY_EXISTS.
    ACCOUNT_ALREADY_EXISTS = "ACCOUNT_ALREADY_EXISTS"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    # FAILED_PRECONDITION: the state must change before a retry can succeed.
    TRANSACTION_NOT_PENDING = "TRANSACTION_NOT_PENDING"
    BALANCE_OVERFLOW = "BALANCE_OVERFLOW"
    TRANSACTION_LIMIT_REACHED = "TRANSACTION_LIMIT_REACHED"


@dataclass(frozen=True, slots=True)
class Failure:
    reason: Reason
    message: str
    # Sorted (key, value) pairs: a tuple, not a dict, so the bytes never depend on dict order.
    metadata: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, reason: Reason, message: str, **metadata: str) -> Failure:
        return cls(reason, message, tuple(sorted(metadata.items())))
