"""Commands (replicated writes) and queries (reads) accepted by AccountsCore.

A command carries everything the core needs, including ``now_ns`` and the ids chosen by the
gateway, so that every replica applying it computes the same bytes.
"""

from __future__ import annotations

from typing import NamedTuple

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
    "Tick",
]


class CreateAccount(NamedTuple):
    account_id: int
    now_ns: int
    idempotency_key: bytes = b""


class CreateTransaction(NamedTuple):
    account_id: int
    amount: int
    description: str
    settled: bool
    now_ns: int
    idempotency_key: bytes = b""
    expires_at_ns: int = 0  # pending only: cancelled when the shard clock reaches it (0: never)


class Tick(NamedTuple):
    """Moves the shard clock to ``now_ns`` so that expired holds are cancelled; nothing else."""

    now_ns: int


class SettleTransaction(NamedTuple):
    account_id: int
    transaction_number: int
    now_ns: int


class CancelTransaction(NamedTuple):
    account_id: int
    transaction_number: int
    now_ns: int


class GetAccount(NamedTuple):
    account_id: int


class GetTransaction(NamedTuple):
    account_id: int
    transaction_number: int


class ListTransactions(NamedTuple):
    account_id: int
    page_size: int = 0
    page_token: str = ""


Command = CreateAccount | CreateTransaction | SettleTransaction | CancelTransaction | Tick
Query = GetAccount | GetTransaction | ListTransactions
