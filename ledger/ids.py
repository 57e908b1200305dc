"""External ids and sharding: parse and format ids, compute shard keys and shard indexes.

Ids: an account id is a uint64 shown as 16 lowercase hex chars; a transaction id is 32
lowercase hex chars = account id hex || 16-hex transaction number, so it routes by itself.
Parsing is strict (the reference's regex is unanchored): anything but exactly 16 (or 32) chars of
``[0-9a-f]`` is refused.

Sharding is a compatibility contract: ``shard_key = sha256(account_id as u64 BE)[:4]``, 16 equal
ranges, so ``shard_index = shard_key[0] >> 4``.
"""

from __future__ import annotations

import hashlib
import re
import struct

from ledger import limits

__all__ = [
    "InvalidId",
    "format_account_id",
    "format_transaction_id",
    "parse_account_id",
    "parse_transaction_id",
    "shard_index",
    "shard_key",
]

_ACCOUNT_ID = re.compile(r"[0-9a-f]{16}")
_TRANSACTION_ID = re.compile(r"[0-9a-f]{32}")
_U64 = struct.Struct(">Q")


class InvalidId(ValueError):
    """An id string that is not exactly 16 (or 32) lowercase hex chars."""


def format_account_id(account_id: int) -> str:
    assert 0 <= account_id <= limits.uint64_max
    return f"{account_id:016x}"


def format_transaction_id(account_id: int, transaction_number: int) -> str:
    assert 0 <= account_id <= limits.uint64_max
    assert 0 <= transaction_number <= limits.uint64_max
    return f"{account_id:016x}{transaction_number:016x}"


def parse_account_id(text: str) -> int:
    if not isinstance(text, str) or _ACCOUNT_ID.fullmatch(text) is None:
        raise InvalidId("invalid account id")
    return int(text, 16)


def parse_transaction_id(text: str) -> tuple[int, int]:
    """Return ``(account_id, transaction_number)``."""
    if not isinstance(text, str) or _TRANSACTION_ID.fullmatch(text) is None:
        raise InvalidId("invalid transaction id")
    return int(text[:16], 16), int(text[16:], 16)


def shard_key(account_id: int) -> bytes:
    assert 0 <= account_id <= limits.uint64_max
    return hashlib.sha256(_U64.pack(account_id)).digest()[:4]


def shard_index(account_id: int) -> int:
    index = shard_key(account_id)[0] * limits.shard_count // 256
    assert 0 <= index < limits.shard_count
    return index
