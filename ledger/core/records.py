"""Domain records of AccountsCore and their fixed binary layout in the store.

The core owns its storage format: big-endian fixed-width fields followed by one variable-length
tail, checked on encode and again on decode (a record that does not round-trip is a bug, so it
is an assertion, never an outcome). Keys put each account's rows next to each other, and
transactions of an account in creation order, so listing is one range scan.

Key layout (one LevelDB per shard, so the whole DB is the shard's contiguous range)::

    b"a" + account_id u64 BE                              -> Account
    b"t" + account_id u64 BE + transaction_number u64 BE  -> Transaction
    b"i" + account_id u64 BE + idempotency key            -> IdempotencyEntry
    b"x" + source account u64 + debit number u64          -> Transfer (source shard)
    b"f" + source account u64 + debit number u64          -> b"" while the transfer is in flight
    b"c" + destination u64 + source u64 + debit number u64 -> TransferCredit (destination shard)
    b"j" + source account u64 + idempotency key           -> TransferKeyEntry
    b"e" + hold timeout + account u64 + number u64        -> b"" (pending holds with a timeout)

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
    "Transfer",
    "TransferCredit",
    "TransferKeyEntry",
    "TransferStatus",
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
_TRANSFER_REF = struct.Struct(">QQ")
_TRANSFER_FLAG = 0x80  # in a transaction's status byte: a transfer reference follows
_EXPIRY_FLAG = 0x40  # ... then a hold timeout (i64 ns)
_I64 = struct.Struct(">q")
_TRANSFER = struct.Struct(">QQQqBQqq")
_TRANSFER_CREDIT = struct.Struct(">?Q")
_TRANSFER_KEY_ENTRY = struct.Struct(">QQq")
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
        account = cls(
            account_id, available, settled, created, updated, count, bytes(data[_ACCOUNT.size :])
        )
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
    # The transfer this transaction is one side of, as (source account, debit number); (0, 0)
    # for a plain transaction. Encoded only when set (a flag bit in the status byte), so
    # records written before transfers existed decode unchanged.
    transfer_account_id: int = 0
    transfer_number: int = 0
    # A pending hold's timeout on the shard clock (0: none); encoded only when set (flag bit).
    expires_at_ns: int = 0

    @property
    def transfer_key(self) -> tuple[int, int] | None:
        return (self.transfer_account_id, self.transfer_number) if self.transfer_number else None

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
        flags = (_TRANSFER_FLAG if self.transfer_number else 0) | (
            _EXPIRY_FLAG if self.expires_at_ns else 0
        )
        head = _TRANSACTION.pack(
            self.account_id,
            self.transaction_number,
            self.amount,
            int(self.status) | flags,
            self.created_at_ns,
            self.updated_at_ns,
        )
        if flags & _TRANSFER_FLAG:
            head += _TRANSFER_REF.pack(self.transfer_account_id, self.transfer_number)
        if flags & _EXPIRY_FLAG:
            head += _I64.pack(self.expires_at_ns)
        return head + description

    @classmethod
    def decode(cls, data: bytes) -> Transaction:
        account_id, number, amount, status, created, updated = _TRANSACTION.unpack_from(data)
        offset = _TRANSACTION.size
        transfer_account, transfer_number = 0, 0
        if status & _TRANSFER_FLAG:
            transfer_account, transfer_number = _TRANSFER_REF.unpack_from(data, offset)
            offset += _TRANSFER_REF.size
        expires_at_ns = 0
        if status & _EXPIRY_FLAG:
            (expires_at_ns,) = _I64.unpack_from(data, offset)
            offset += _I64.size
        description = bytes(data[offset:])
        assert len(description) <= _DESCRIPTION_BYTES_MAX
        transaction = cls(
            account_id,
            number,
            amount,
            description.decode("utf-8"),
            _STATUSES[status & ~(_TRANSFER_FLAG | _EXPIRY_FLAG)],
            created,
            updated,
            transfer_account,
            transfer_number,
            expires_at_ns,
        )
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


# -- transfers (two-phase, possibly across shards; see ledger/core/transfers.py) ------------------

TRANSFER_PREFIX = b"x"  # on the source shard: the transfer record
IN_FLIGHT_PREFIX = b"f"  # on the source shard: an index of transfers not yet final
CREDIT_PREFIX = b"c"  # on the destination shard: what the credit step decided
TRANSFER_IDEMPOTENCY_PREFIX = b"j"


class TransferStatus(enum.IntEnum):
    """Numbers equal the public TransferStatus enum."""

    IN_FLIGHT = 1
    COMPLETED = 2
    INSUFFICIENT_FUNDS = 3  # nothing moved
    FAILED = 4  # the credit was refused (e.g. it would overflow); all given back


_TRANSFER_STATUSES = {int(status): status for status in TransferStatus}


class Transfer(NamedTuple):
    """Identified by its source account and the number of its debit transaction there."""

    from_account_id: int
    debit_number: int
    to_account_id: int
    amount: int
    status: TransferStatus
    credit_number: int  # the destination's transaction number; 0 until completed
    created_at_ns: int
    updated_at_ns: int
    description: str

    def check(self) -> None:
        assert (
            self.from_account_id != self.to_account_id
            and 1 <= self.debit_number <= _UINT64_MAX
            and 0 < self.amount <= _INT64_MAX
            and self.status in _TRANSFER_STATUSES
            and (self.credit_number > 0) == (self.status == TransferStatus.COMPLETED)
            and self.created_at_ns <= self.updated_at_ns
            and len(self.description.encode("utf-8")) <= _DESCRIPTION_BYTES_MAX
        ), self

    def encode(self) -> bytes:
        self.check()
        head = _TRANSFER.pack(
            self.from_account_id,
            self.debit_number,
            self.to_account_id,
            self.amount,
            int(self.status),
            self.credit_number,
            self.created_at_ns,
            self.updated_at_ns,
        )
        return head + self.description.encode("utf-8")

    @classmethod
    def decode(cls, data: bytes) -> Transfer:
        source, debit, target, amount, status, credit, created, updated = _TRANSFER.unpack_from(
            data
        )
        transfer = cls(
            source,
            debit,
            target,
            amount,
            _TRANSFER_STATUSES[status],
            credit,
            created,
            updated,
            bytes(data[_TRANSFER.size :]).decode("utf-8"),
        )
        transfer.check()
        return transfer


class TransferCredit(NamedTuple):
    """The destination's decision for one transfer, recorded once and never changed: the
    credited transaction's number, or refused (0) with the reason."""

    credit_number: int
    reason: str = ""  # a Reason name when refused

    @property
    def credited(self) -> bool:
        return self.credit_number > 0

    def encode(self) -> bytes:
        assert (self.credit_number > 0) != bool(self.reason), self
        return _TRANSFER_CREDIT.pack(self.credited, self.credit_number) + self.reason.encode()

    @classmethod
    def decode(cls, data: bytes) -> TransferCredit:
        _, number = _TRANSFER_CREDIT.unpack_from(data)
        return cls(number, bytes(data[_TRANSFER_CREDIT.size :]).decode())


class TransferKeyEntry(NamedTuple):
    """What a CreateTransfer idempotency key created, and the payload it was created with."""

    debit_number: int
    to_account_id: int
    amount: int
    description: str

    def encode(self) -> bytes:
        return _TRANSFER_KEY_ENTRY.pack(
            self.debit_number, self.to_account_id, self.amount
        ) + self.description.encode("utf-8")

    @classmethod
    def decode(cls, data: bytes) -> TransferKeyEntry:
        debit, target, amount = _TRANSFER_KEY_ENTRY.unpack_from(data)
        return cls(debit, target, amount, bytes(data[_TRANSFER_KEY_ENTRY.size :]).decode("utf-8"))


def transfer_key(from_account_id: int, debit_number: int) -> bytes:
    return TRANSFER_PREFIX + _U64.pack(from_account_id) + _U64.pack(debit_number)


def in_flight_key(from_account_id: int, debit_number: int) -> bytes:
    return IN_FLIGHT_PREFIX + _U64.pack(from_account_id) + _U64.pack(debit_number)


def in_flight_range(after: bytes = b"") -> tuple[bytes, bytes]:
    """``[start, stop)`` of the in-flight index, after the key ``after`` when given."""
    return (after + b"\x00" if after else IN_FLIGHT_PREFIX), IN_FLIGHT_PREFIX + b"\xff" * 17


def parse_in_flight_key(key: bytes) -> tuple[int, int]:
    assert key.startswith(IN_FLIGHT_PREFIX) and len(key) == 17
    return _U64.unpack_from(key, 1)[0], _U64.unpack_from(key, 9)[0]


def credit_key(to_account_id: int, from_account_id: int, debit_number: int) -> bytes:
    return (
        CREDIT_PREFIX
        + _U64.pack(to_account_id)
        + _U64.pack(from_account_id)
        + _U64.pack(debit_number)
    )


def transfer_idempotency_key(account_id: int, key: bytes) -> bytes:
    assert 0 < len(key) <= limits.idempotency_key_bytes_max
    return TRANSFER_IDEMPOTENCY_PREFIX + _U64.pack(account_id) + key


# -- pending-hold timeouts ----------------------------------------------------------------------

EXPIRY_PREFIX = b"e"  # b"e" + expires_at_ns u64 (offset) + account u64 + number u64 -> b""


def expiry_key(expires_at_ns: int, account_id: int, transaction_number: int) -> bytes:
    return (
        EXPIRY_PREFIX
        + _U64.pack(expires_at_ns - _INT64_MIN)
        + _U64.pack(account_id)
        + _U64.pack(transaction_number)
    )


def expiry_range_until(clock_ns: int) -> tuple[bytes, bytes]:
    """``[start, stop)`` of the timeouts at or before ``clock_ns``."""
    return EXPIRY_PREFIX, EXPIRY_PREFIX + _U64.pack(clock_ns - _INT64_MIN) + b"\xff" * 16


def parse_expiry_key(key: bytes) -> tuple[int, int, int]:
    """(expires_at_ns, account id, transaction number)."""
    assert key.startswith(EXPIRY_PREFIX) and len(key) == 25
    return (
        _U64.unpack_from(key, 1)[0] + _INT64_MIN,
        _U64.unpack_from(key, 9)[0],
        _U64.unpack_from(key, 17)[0],
    )
