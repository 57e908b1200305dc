"""ListTransactions page tokens (ledger.core.pages): round trip, canonical form and refusals.

Goal: a token made by ``encode_page_token`` decodes to the same position for the same account,
is url-safe ASCII within ``limits.page_token_chars_max``, and every malformed token, and every
token made for another account, raises ``InvalidPageToken`` (a ``ValueError``).

Method: tables of (account, position) pairs including the uint64 edges, 1000 seeded random pairs
(``random.Random(seed)``), and a table of malformed tokens built from raw bytes, at least as long
as the valid table. Non-canonical variants are checked to decode to the very same bytes as a
valid token, so they are refused for being non-canonical and for nothing else.
"""

from __future__ import annotations

import base64
import random
import re
import struct

import pytest

from ledger import limits
from ledger.core.pages import InvalidPageToken, decode_page_token, encode_page_token

A = 0x3D2DBE651AB536A1
B = 0x0123456789ABCDEF
U64 = limits.uint64_max
_URLSAFE = re.compile(r"[A-Za-z0-9_-]+")


@pytest.mark.parametrize(
    ("account_id", "after"),
    [(0, 1), (A, 1), (A, 2), (A, 1000), (U64, 1), (0, U64 - 1), (U64, U64 - 1), (B, 2**32)],
)
def test_round_trip(account_id: int, after: int) -> None:
    token = encode_page_token(account_id, after)
    assert _URLSAFE.fullmatch(token) and "=" not in token
    assert len(token) <= limits.page_token_chars_max
    assert decode_page_token(token, account_id) == after


@pytest.mark.parametrize("seed", [11, 12])
def test_round_trip_random_and_injective(seed: int) -> None:
    rng = random.Random(seed)
    seen: dict[str, tuple[int, int]] = {}
    for _ in range(1000):
        account_id, after = rng.getrandbits(64), rng.randrange(1, U64)
        token = encode_page_token(account_id, after)
        assert decode_page_token(token, account_id) == after
        assert seen.setdefault(token, (account_id, after)) == (account_id, after)


def test_empty_token_means_the_first_page() -> None:
    assert decode_page_token("", A) == 0
    assert decode_page_token("", 0) == 0


@pytest.mark.parametrize(("made_for", "used_for"), [(A, B), (B, A), (0, U64), (A, A + 1)])
def test_token_for_another_account(made_for: int, used_for: int) -> None:
    with pytest.raises(InvalidPageToken, match="another account"):
        decode_page_token(encode_page_token(made_for, 5), used_for)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


GOOD = encode_page_token(A, 7)
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
WITH_URLSAFE_CHARS = encode_page_token(A, U64 - 1)  # ends in "_" chars
SAME_BYTES_NOT_CANONICAL = [
    GOOD + "=",  # padded
    GOOD + "==",
    GOOD[:-1] + ALPHABET[ALPHABET.index(GOOD[-1]) ^ 1],  # an unused low bit set
    GOOD[:-1] + ALPHABET[ALPHABET.index(GOOD[-1]) ^ 2],
    GOOD[:5] + "!!" + GOOD[5:],  # a lenient decoder skips non-alphabet chars
    GOOD[:5] + "." + GOOD[5:] + "=",
    WITH_URLSAFE_CHARS.replace("_", "/"),  # the standard alphabet
]
MALFORMED = [
    "garbage",
    "!!!",
    "=",
    "====",
    "A",
    "AA",
    "A" * (limits.page_token_chars_max + 1),
    _b64(struct.pack(">BQQ", 1, A, 7)[:-1]),  # 16 bytes
    _b64(struct.pack(">BQQ", 1, A, 7) + b"\x00"),  # 18 bytes
    _b64(struct.pack(">BQQ", 0, A, 7)),  # unknown versions
    _b64(struct.pack(">BQQ", 2, A, 7)),
    _b64(struct.pack(">BQQ", 255, A, 7)),
    _b64(struct.pack(">BQQ", 1, A, 0)),  # never issued: 0 is the first page, U64 has no next
    _b64(struct.pack(">BQQ", 1, A, U64)),
    "é" * 23,
    GOOD[:-1] + "é",
    "\x00" * 23,
    GOOD[:5] + "!" + GOOD[5:],  # incorrect padding once the "!" is skipped
    GOOD[:5] + "\n" + GOOD[5:],
]


def test_not_canonical_variants_hold_the_same_bytes() -> None:
    raw = struct.pack(">BQQ", 1, A, 7)
    for token in SAME_BYTES_NOT_CANONICAL:
        assert base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)) in (
            raw,
            struct.pack(">BQQ", 1, A, U64 - 1),
        ), token
        assert token != GOOD


@pytest.mark.parametrize("token", SAME_BYTES_NOT_CANONICAL + MALFORMED)
def test_malformed_tokens(token: str) -> None:
    with pytest.raises(InvalidPageToken):
        decode_page_token(token, A)


def test_invalid_page_token_is_a_value_error() -> None:
    assert issubclass(InvalidPageToken, ValueError)


@pytest.mark.parametrize(("account_id", "after"), [(-1, 1), (U64 + 1, 1), (A, 0), (A, U64 + 1)])
def test_encode_refuses_out_of_range(account_id: int, after: int) -> None:
    with pytest.raises(AssertionError):
        encode_page_token(account_id, after)
