"""Domain records of AccountsCore and their fixed binary layout in the store.

The core owns its storage format: big-endian fixed-width fields followed by one variable-length
tail, checked on encode and again on decode (a record that does not round-trip is a bug, so it
is an assertion, never an outcome). Keys put each account's rows next to each other, and
transactions of an account in creation order, so listing is one range scan.

Key layout (one LevelDB per shard, so the whole DB is the shard's contiguous range)::

    b"a" + account_id u64 BE                              -> Account
    b"t" + account_id u64 BE + transaction_number u64 BE  -> Transaction
    b"i" + account_id u64 BE + idempotency key            -> IdempotencyEntry

The replication layer adds ``b"m"`` (meta) and ``b"r"``/``b"q"`` (request results) keys.
"""

from __future__ import annotations

import enum
import struct
from typing import NamedTuple

from ledger import limits

__all__ = [
    "Account",
    "IdempotencyEntry",
    "Status",
    "Transaction",
    "account_key",
    "idempotency_key",
    "transaction_key",
    "transaction_key_range",
]

ACCOUNT_PREFIX = b"a"
TRANSACTION_PREFIX = b"t"
IDEMPOTENCY_PREFIX = b"i"

_U64 = struct.Struct(">Q")
_ACCOUNT = struct.Struct(">QqqqqQ")
_TRANSACTION = struct.Struct(">QQqBqq")
_IDEMPOTENCY = struct.Struct(">Qq?")
_UINT64_MAX = limits.uint64_max
_INT64_MIN = limits.int64_min
_INT64_MAX = limits.int64_max
_KEY_BYTES_MAX = limits.idempotency_key_bytes_max
_DESCRIPTION_BYTES_MAX = limits.description_bytes_max


class Status(enum.IntEnum):
    """Transaction status; numbers equal the public TransactionStatus enum."""

    PENDING = 1
    SETTLED = 2
    CANCELLED = 3
    INSUFFICIENT_FUNDS = 4


_STATUSES = {int(status): status for status in Status}


class Account(NamedTuple):
    account_id: int
    available_balance: int
    settled_balance: int
    created_at_ns: int
    updated_at_ns: int
    transaction_count: int  # the last transaction number issued; numbers start at 1
    idempotency_key: bytes  # the CreateAccount key, b"" if none

    def check(self) -> None:
        # One assert over all invariants: this runs twice per command on the apply path.
        assert (
            0 <= self.account_id <= _UINT64_MAX
            and 0 <= self.available_balance <= self.settled_balance <= _INT64_MAX
            and self.created_at_ns <= self.updated_at_ns
            and 0 <= self.transaction_count <= _UINT64_MAX
            and len(self.idempotency_key) <= _KEY_BYTES_MAX
        ), self

    def encode(self) -> bytes:
        self.check()
        head = _ACCOUNT.pack(
            self.account_id,
            self.available_balance,
            self.settled_balance,
            self.created_at_ns,
            self.updated_at_ns,
            self.transaction_count,
        )
        return head + self.idempotency_key

    @classmethod
    def decode(cls, data: bytes) -> Account:
        account_id, available, settled, created, updated, count = _ACCOUNT.unpack_from(data)
        account = cls(account_id, available, settled, created, updated, count,
                      bytes(data[_ACCOUNT.size :]))
        account.check()
        return account


class Transaction(NamedTuple):
    account_id: int
    transaction_number: int
    amount: int
    description: str
    status: Status
    created_at_ns: int
    updated_at_ns: int

    def check(self) -> None:
        self._check_head()
        assert len(self.description.encode("utf-8")) <= _DESCRIPTION_BYTES_MAX, self

    def _check_head(self) -> None:
        assert (
            0 <= self.account_id <= _UINT64_MAX
            and 1 <= self.transaction_number <= _UINT64_MAX
            and self.amount != 0
            and _INT64_MIN <= self.amount <= _INT64_MAX
            and self.status in _STATUSES
            and self.created_at_ns <= self.updated_at_ns
            and (self.status != Status.INSUFFICIENT_FUNDS or self.amount < 0)
        ), self

    def encode(self) -> bytes:
        self._check_head()
        description = self.description.encode("utf-8")
        assert len(description) <= _DESCRIPTION_BYTES_MAX, self
        head = _TRANSACTION.pack(
            self.account_id,
            self.transaction_number,
            self.amount,
            int(self.status),
            self.created_at_ns,
            self.updated_at_ns,
        )
        return head + description

    @classmethod
    def decode(cls, data: bytes) -> Transaction:
        account_id, number, amount, status, created, updated = _TRANSACTION.unpack_from(data)
        description = bytes(data[_TRANSACTION.size :])
        assert len(description) <= _DESCRIPTION_BYTES_MAX
        transaction = cls(account_id, number, amount, description.decode("utf-8"),
                          _STATUSES[status], created, updated)
        transaction._check_head()
        return transaction


class IdempotencyEntry(NamedTuple):
    """What a CreateTransaction idempotency key created, and the payload it was created with."""

    transaction_number: int
    amount: int
    settled: bool
    description: str

    def encode(self) -> bytes:
        assert 1 <= self.transaction_number <= _UINT64_MAX
        head = _IDEMPOTENCY.pack(self.transaction_number, self.amount, self.settled)
        return head + self.description.encode("utf-8")

    @classmethod
    def decode(cls, data: bytes) -> IdempotencyEntry:
        number, amount, settled = _IDEMPOTENCY.unpack_from(data)
        description = bytes(data[_IDEMPOTENCY.size :]).decode("utf-8")
        return cls(number, amount, settled, description)


def account_key(account_id: int) -> bytes:
    return ACCOUNT_PREFIX + _U64.pack(account_id)


def transaction_key(account_id: int, transaction_number: int) -> bytes:
    return TRANSACTION_PREFIX + _U64.pack(account_id) + _U64.pack(transaction_number)


def transaction_key_range(account_id: int, after_number: int) -> tuple[bytes, bytes]:
    """Keys of the account's transactions numbered above ``after_number``: ``[start, stop)``."""
    prefix = TRANSACTION_PREFIX + _U64.pack(account_id)
    assert 0 <= after_number < limits.uint64_max
    return prefix + _U64.pack(after_number + 1), prefix + b"\xff" * 9


def idempotency_key(account_id: int, key: bytes) -> bytes:
    assert 0 < len(key) <= limits.idempotency_key_bytes_max
    return IDEMPOTENCY_PREFIX + _U64.pack(account_id) + key
