"""RaftCipher: the AES-GCM-SIV encryptor PySyncObj uses for Raft messages.

Goal: a message only opens under the same secret and unmodified, the timestamp travels
authenticated, and ``install`` makes new SyncObj groups use it. Method: call the three methods
PySyncObj calls (encrypt_at_time, extract_timestamp, decrypt) on real tokens, then flip bits.
"""

from __future__ import annotations

import pysyncobj.syncobj
import pytest

from ledger.replication import raft_cipher
from ledger.replication.raft_cipher import InvalidToken, RaftCipher


def _cipher(secret: str = "a-cluster-secret-of-some-length") -> RaftCipher:
    return raft_cipher._encryptor(secret)


def test_round_trip_in_pysyncobj_call_order() -> None:
    sender, receiver = _cipher(), _cipher()
    token = sender.encrypt_at_time(b"append entries", 1234)
    assert receiver.extract_timestamp(token) == 1234
    assert receiver.decrypt(token) == b"append entries"
    assert receiver.decrypt(token) == b"append entries"  # also without the cached plaintext


def test_tokens_differ_for_equal_messages() -> None:
    cipher = _cipher()
    assert cipher.encrypt_at_time(b"same", 1) != cipher.encrypt_at_time(b"same", 1)


@pytest.mark.parametrize("position", [0, 1, 8, 9, 20, -1])
def test_any_flipped_bit_is_refused(position: int) -> None:
    token = bytearray(_cipher().encrypt_at_time(b"payload", 7))
    token[position] ^= 0x01
    with pytest.raises(InvalidToken):
        _cipher().extract_timestamp(bytes(token))


def test_another_secret_cannot_open() -> None:
    token = _cipher("secret-one-secret-one").encrypt_at_time(b"payload", 7)
    with pytest.raises(InvalidToken):
        _cipher("secret-two-secret-two").decrypt(token)


@pytest.mark.parametrize("token", [b"", b"\x01", b"\x02" + b"\x00" * 40, b"\x01" * 20])
def test_short_or_foreign_tokens_are_refused(token: bytes) -> None:
    with pytest.raises(InvalidToken):
        _cipher().extract_timestamp(token)


def test_install_replaces_the_pysyncobj_factory() -> None:
    raft_cipher.install()
    assert isinstance(pysyncobj.syncobj.getEncryptor("x" * 20), RaftCipher)
