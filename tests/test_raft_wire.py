"""raft_wire: Raft entries and messages as protocol-4 pickles, sent without deflate.

Goal: after ``install``, what PySyncObj pickles (entries, messages) is protocol 4, a message
leaves a real ``TcpConnection`` uncompressed (and still encrypted), and a message framed the way
an older release framed it (deflated protocol-2 pickle) still parses. Method: two
``TcpConnection`` objects over a socket pair with our cipher, the frames read off the socket.
"""

from __future__ import annotations

import pickle
import socket
import struct
import zlib
from typing import Any

import pysyncobj.pickle
import pytest
from pysyncobj.tcp_connection import TcpConnection

from ledger.replication import raft_cipher, raft_wire

_SECRET = "a-cluster-secret-of-some-length"
_MESSAGE = {
    "type": "append_entries",
    "term": 3,
    "commit_index": 41,
    "entries": [(b"\x01write set\x80\xff" * 20, 42, 3)],
    "prevLogIdx": 41,
    "prevLogTerm": 3,
}


class _NoPoller:
    """A connection subscribes its socket; these tests read and write it directly."""

    def subscribe(self, *args: Any) -> None:
        pass

    def unsubscribe(self, *args: Any) -> None:
        pass


@pytest.fixture
def connections() -> Any:
    raft_wire.install()
    left, right = socket.socketpair()
    sender = TcpConnection(_NoPoller(), socket=left)
    receiver = TcpConnection(_NoPoller(), socket=right)
    sender.encryptor = raft_cipher._encryptor(_SECRET)
    receiver.encryptor = raft_cipher._encryptor(_SECRET)
    yield sender, receiver, right
    sender.disconnect()
    receiver.disconnect()


def _read_frame(sock: socket.socket) -> bytes:
    sock.setblocking(True)
    header = sock.recv(4, socket.MSG_WAITALL)
    (length,) = struct.unpack("i", header)
    return sock.recv(length, socket.MSG_WAITALL)


def _parse(receiver: TcpConnection, payload: bytes) -> Any:
    """What the receiving connection makes of one frame (PySyncObj's own parser)."""
    receiver._TcpConnection__readBuffer = struct.pack("i", len(payload)) + payload
    return receiver._TcpConnection__processParseMessage()


def test_a_message_leaves_as_an_encrypted_protocol_4_pickle(connections: Any) -> None:
    sender, receiver, receiving_socket = connections
    sender.send(_MESSAGE)
    token = _read_frame(receiving_socket)
    plaintext = raft_cipher._encryptor(_SECRET).decrypt(token)
    assert plaintext[:2] == b"\x80\x04", "a protocol-4 pickle, not a zlib stream"
    assert pickle.loads(plaintext) == _MESSAGE
    assert _parse(receiver, token) == _MESSAGE


def test_a_message_framed_by_an_older_release_still_parses(connections: Any) -> None:
    _, receiver, _ = connections
    old_plaintext = zlib.compress(pickle.dumps(_MESSAGE, 2), 3)
    token = raft_cipher._encryptor(_SECRET).encrypt_at_time(old_plaintext, 5)
    assert _parse(receiver, token) == _MESSAGE


def test_a_tampered_message_still_drops_the_connection(connections: Any) -> None:
    _, receiver, _ = connections
    token = bytearray(raft_cipher._encryptor(_SECRET).encrypt_at_time(b"\x80\x04N.", 5))
    token[-1] ^= 0x01
    assert _parse(receiver, bytes(token)) is None
    assert receiver.fileno() is None  # PySyncObj disconnects on a message it cannot read


def test_entries_are_protocol_4_and_older_entries_still_load() -> None:
    raft_wire.install()
    command = ("apply_entry", (bytes(range(256)) * 4,), {})
    entry = pysyncobj.pickle.dumps(command)
    assert entry[:2] == b"\x80\x04"
    assert len(entry) < len(pickle.dumps(command, 2))  # protocol 2 spells bytes as latin-1 text
    assert pysyncobj.pickle.loads(entry) == command
    assert pysyncobj.pickle.loads(pickle.dumps(command, 2)) == command  # journals written before
