"""Commands (replicated writes) and queries (reads) accepted by AccountsCore.

A command carries everything the core needs, including ``now_ns`` and the ids chosen by the
gateway, so that every replica applying it computes the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CancelTransaction",
    "Command",
    "CreateAccount",
    "CreateTransaction",
    "GetAccount",
    "GetTransaction",
    "ListTransactions",
    "Query",
    "SettleTransaction",
]


@dataclass(frozen=True, slots=True)
class CreateAccount:
    account_id: int
    now_ns: int
    idempotency_key: bytes = b""


@dataclass(frozen=True, slots=True)
class CreateTransaction:
    account_id: int
    amount: int
    description: str
    settled: bool
    now_ns: int
    idempotency_key: bytes = b""


@dataclass(frozen=True, slots=True)
class SettleTransaction:
    account_id: int
    transaction_number: int
    now_ns: int


@dataclass(frozen=True, slots=True)
class CancelTransaction:
    account_id: int
    transaction_number: int
    now_ns: int


@dataclass(frozen=True, slots=True)
class GetAccount:
    account_id: int


@dataclass(frozen=True, slots=True)
class GetTransaction:
    account_id: int
    transaction_number: int


@dataclass(frozen=True, slots=True)
class ListTransactions:
    account_id: int
    page_size: int = 0
    page_token: str = ""


Command = CreateAccount | CreateTransaction | SettleTransaction | CancelTransaction
Query = GetAccount | GetTransaction | ListTransactions
