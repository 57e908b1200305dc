"""Ids and sharding: the reference's shard vectors, round trips and strict parsing.

Goal: the shard placement is a compatibility contract, so the four check vectors of the spec
must hold byte for byte; formatting and parsing must round-trip for every uint64; parsing must
refuse anything that is not exactly 16 (or 32) lowercase hex chars.

Method: the spec's table verbatim; 1000 ids from ``random.Random(seed)`` per round-trip test
(fixed seeds, so every run checks the same ids); tables of invalid strings at least as long as
the valid ones.
"""

from __future__ import annotations

import hashlib
import random

import pytest

from ledger import ids, limits

# account id (decimal), hex, shard_key bytes, shard index: from the reference.
SHARD_VECTORS = [
    (17376851231650125672, "f126fa20f1509768", bytes([178, 7, 218, 154]), 11),
    (14628948223324556977, "cb0476e6d0d78eb1", bytes([46, 31, 124, 110]), 2),
    (6595447089537874820, "5b87bc2f0ac9fb84", bytes([0, 98, 167, 200]), 0),
    (8794325015676184705, "7a0bb801e6b5e881", bytes([247, 38, 76, 83]), 15),
]


@pytest.mark.parametrize(("account_id", "text", "key", "shard"), SHARD_VECTORS)
def test_shard_vectors(account_id: int, text: str, key: bytes, shard: int) -> None:
    assert ids.format_account_id(account_id) == text
    assert ids.parse_account_id(text) == account_id
    assert ids.shard_key(account_id) == key
    assert ids.shard_index(account_id) == shard


def _random_ids(seed: int, count: int = 1000) -> list[int]:
    rng = random.Random(seed)
    edges = [0, 1, 2**32, 2**63 - 1, 2**63, limits.uint64_max]
    return edges + [rng.getrandbits(64) for _ in range(count)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_account_id_round_trip(seed: int) -> None:
    for account_id in _random_ids(seed):
        text = ids.format_account_id(account_id)
        assert len(text) == 16 and text == text.lower()
        assert ids.parse_account_id(text) == account_id


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_transaction_id_round_trip(seed: int) -> None:
    rng = random.Random(seed)
    for account_id in _random_ids(seed):
        number = rng.choice([1, 2, limits.uint64_max, rng.getrandbits(64)])
        text = ids.format_transaction_id(account_id, number)
        assert len(text) == 32
        assert text[:16] == ids.format_account_id(account_id)  # routes by its id alone
        assert ids.parse_transaction_id(text) == (account_id, number)


@pytest.mark.parametrize("seed", [7, 8])
def test_shard_key_and_index_definition(seed: int) -> None:
    counts = [0] * limits.shard_count
    for account_id in _random_ids(seed):
        key = ids.shard_key(account_id)
        assert key == hashlib.sha256(account_id.to_bytes(8, "big")).digest()[:4]
        assert ids.shard_index(account_id) == key[0] >> 4
        counts[ids.shard_index(account_id)] += 1
    assert all(counts), counts  # 1006 ids reach every one of the 16 shards


@pytest.mark.parametrize(
    "text", ["3d2dbe651ab536a1", "0000000000000000", "ffffffffffffffff", "0123456789abcdef"]
)
def test_parse_account_id_valid(text: str) -> None:
    assert ids.parse_account_id(text) == int(text, 16)


INVALID_ACCOUNT_IDS = [
    "",
    "3D2DBE651AB536A1",  # uppercase
    "3d2dbe651aB536a1",  # one uppercase char
    "3d2dbe651ab536a",  # 15 chars
    "3d2dbe651ab536a10",  # 17 chars
    " 3d2dbe651ab536a1",
    "3d2dbe651ab536a1 ",
    "3d2dbe651ab536a1\n",  # `$` would accept this; fullmatch must not
    "\t3d2dbe651ab536a1",
    "c6ab9cfb37117Sef",  # non-hex char
    "c6ab9cfb37117gef",
    "0x3d2dbe651ab536",
    "+3d2dbe651ab536a",
    "-3d2dbe651ab536a",
    "3d2d_be651ab536a",  # int(_, 16) would accept underscores
    "３d2dbe651ab536a1",  # fullwidth digit
    "٣d2dbe651ab536a1",  # Arabic-Indic digit
    "3d2dbe651ab536a1\x00",
    "206af3de774e2dc751d11665f8af8d41",  # a transaction id is not an account id
]
NON_STR = [
    None,
    0x3D2DBE651AB536A1,
    b"3d2dbe651ab536a1",
    bytearray(b"3d2dbe651ab536a1"),
    ["3d2dbe651ab536a1"],
]


@pytest.mark.parametrize("text", INVALID_ACCOUNT_IDS + NON_STR)
def test_parse_account_id_invalid(text: object) -> None:
    with pytest.raises(ids.InvalidId):
        ids.parse_account_id(text)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("206af3de774e2dc751d11665f8af8d41", (0x206AF3DE774E2DC7, 0x51D11665F8AF8D41)),
        ("3d2dbe651ab536a10000000000000001", (0x3D2DBE651AB536A1, 1)),
        ("0" * 32, (0, 0)),
        ("f" * 32, (limits.uint64_max, limits.uint64_max)),
    ],
)
def test_parse_transaction_id_valid(text: str, expected: tuple[int, int]) -> None:
    assert ids.parse_transaction_id(text) == expected


INVALID_TRANSACTION_IDS = [
    "",
    "206AF3DE774E2DC751D11665F8AF8D41",
    "206af3de774e2dc751d11665f8af8d4",  # 31
    "206af3de774e2dc751d11665f8af8d411",  # 33
    "206af3de774e2dc751d11665f8af8d41\n",
    " 206af3de774e2dc751d11665f8af8d41",
    "206af3de774e2dc751d11665f8af8d41 ",
    "206af3de774e2dc751d11665f8af8d41zz",  # trailing garbage after 32 valid hex chars
    "206af3de774e2dc7-51d11665f8af8d41",
    "206af3de774e2dc751d11665f8af8dz1",
    "3d2dbe651ab536a1",  # an account id alone
    "０06af3de774e2dc751d11665f8af8d41",
]


@pytest.mark.parametrize("text", INVALID_TRANSACTION_IDS + NON_STR)
def test_parse_transaction_id_invalid(text: object) -> None:
    with pytest.raises(ids.InvalidId):
        ids.parse_transaction_id(text)  # type: ignore[arg-type]


def test_invalid_id_is_a_value_error() -> None:
    assert issubclass(ids.InvalidId, ValueError)


@pytest.mark.parametrize(
    ("account_id", "number"),
    [(-1, 1), (limits.uint64_max + 1, 1), (1, -1), (1, limits.uint64_max + 1)],
)
def test_format_refuses_out_of_range(account_id: int, number: int) -> None:
    with pytest.raises(AssertionError):
        ids.format_transaction_id(account_id, number)
    if not 0 <= account_id <= limits.uint64_max:
        with pytest.raises(AssertionError):
            ids.format_account_id(account_id)
        with pytest.raises(AssertionError):
            ids.shard_key(account_id)
