"""The client's own small types: a transaction to create in a batch, one batch item's outcome.

Everything else the client returns is the API's protobuf message itself (``Account``,
``Transaction``, ``Transfer``, ``ListTransactionsResponse`` from ``ledger.pb.ledger_api_pb2``).
"""

from __future__ import annotations

import dataclasses
import secrets
from typing import Generic, TypeVar

from ledger.client.errors import LedgerError
from ledger.pb import ledger_api_pb2 as api

__all__ = ["ItemResult", "NewTransaction", "new_idempotency_key"]

T = TypeVar("T")

idempotency_key_random_bytes = 16  # 128 bits: never equal by chance; 22 characters on the wire


def new_idempotency_key() -> str:
    """A fresh random idempotency key (url-safe base64, 22 characters, well under the server's
    ``limits.idempotency_key_bytes_max``; keys are stored per account, so they are kept short)."""
    return secrets.token_urlsafe(idempotency_key_random_bytes)


@dataclasses.dataclass(frozen=True, slots=True)
class NewTransaction:
    """One transaction for ``create_transactions``: the fields of ``create_transaction``."""

    account_id: str
    amount: int  # minor units; > 0 top-up, < 0 purchase
    description: str = ""
    settled: bool = False
    idempotency_key: str | None = None  # None: the client draws one
    hold_timeout_ms: int = 0  # pending only: cancelled by the shard after this long (0: never)

    def request(self, idempotency_key: str) -> api.CreateTransactionRequest:
        return api.CreateTransactionRequest(
            account_id=self.account_id,
            amount=self.amount,
            description=self.description,
            settled=self.settled,
            idempotency_key=idempotency_key,
            hold_timeout_ms=self.hold_timeout_ms,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class ItemResult(Generic[T]):
    """The outcome of one batch item: its ``value`` or its ``error``, never both.

    ``idempotency_key`` is the key the item was sent with: an item that failed with a transient
    error (``Unavailable``, ``DeadlineExceeded``, ``ResourceExhausted``) may or may not have
    been applied, and sending it again with this key applies it at most once in all.
    """

    value: T | None
    error: LedgerError | None
    idempotency_key: str

    @property
    def ok(self) -> bool:
        return self.error is None

    def unwrap(self) -> T:
        """The value, or raise the item's error."""
        if self.error is not None:
            raise self.error
        assert self.value is not None
        return self.value
