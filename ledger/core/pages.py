"""Opaque ListTransactions page tokens.

A token is base64url (no padding) of ``version u8 || account_id u64 || after_number u64``. It is
not secret: a forged token can only skip within the account it names, and a token for another
account is refused. The version byte lets the format change without breaking old tokens.
"""

from __future__ import annotations

import base64
import binascii
import struct

from ledger import limits

__all__ = ["InvalidPageToken", "decode_page_token", "encode_page_token"]

_TOKEN = struct.Struct(">BQQ")
_VERSION = 1


class InvalidPageToken(ValueError):
    """A page token that is malformed or was made for another account."""


def encode_page_token(account_id: int, after_number: int) -> str:
    assert 0 <= account_id <= limits.uint64_max
    assert 1 <= after_number <= limits.uint64_max
    raw = _TOKEN.pack(_VERSION, account_id, after_number)
    token = base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
    assert len(token) <= limits.page_token_chars_max
    return token


def decode_page_token(token: str, account_id: int) -> int:
    """Return the transaction number the page starts after; ``""`` means the first page."""
    if token == "":
        return 0
    if len(token) > limits.page_token_chars_max or not token.isascii():
        raise InvalidPageToken("malformed page token")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError) as error:
        raise InvalidPageToken("malformed page token") from error
    if len(raw) != _TOKEN.size:
        raise InvalidPageToken("malformed page token")
    version, token_account_id, after_number = _TOKEN.unpack(raw)
    if version != _VERSION or after_number == 0 or after_number == limits.uint64_max:
        raise InvalidPageToken("malformed page token")
    if token_account_id != account_id:
        raise InvalidPageToken("page token was made for another account")
    if encode_page_token(token_account_id, after_number) != token:
        raise InvalidPageToken("malformed page token")  # non-canonical encoding
    return int(after_number)
