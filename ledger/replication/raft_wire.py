"""The bytes of Raft entries and messages: pickle protocol 4, and no deflate per message.

Checked against **pysyncobj 0.3.17** (the pinned version), which spends more CPU on encoding
than on anything else per message:

* ``pysyncobj.pickle`` pickles with **protocol 2**, which has no opcode for ``bytes``: each
  ``bytes`` object becomes a latin-1 ``str`` rebuilt through ``_codecs.encode`` on load. Our
  Raft entries are bytes (write sets), pickled once into the entry and again inside every
  AppendEntries that carries it. Measured on a 30 KB write set: 93 µs to pickle the entry and
  171 µs for the message with protocol 2, 1.1 and 1.5 µs with protocol 4, and a third fewer bytes.
* ``TcpConnection.send`` runs ``zlib.compress(..., 3)`` on every message and the receiver
  ``zlib.decompress``. Each call sets up a fresh deflate state: 17-58 µs for a heartbeat or a
  one-item entry whatever the level, 1.5 ms for that 30 KB message, on the busy Raft thread of
  the sender. Our messages are mostly random ids and packed integers and shrink little, the
  cluster's links are loopback or a LAN, and compressing before encrypting would let a
  message's length tell something about its content. So Raft messages travel uncompressed.

``install`` sets protocol 4 for everything PySyncObj pickles (any protocol unpickles the same,
so journals and logs written before keep loading) and gives ``pysyncobj.tcp_connection`` a
``zlib`` that sends as is. On receipt it tells the two apart by the first byte: a pickle of
protocol 2 or later starts with ``0x80`` (PROTO), a zlib stream with ``0x78``. A node of this
release therefore reads a node of an older release, but not the reverse: move a cluster from
an older release by restarting all of its nodes onto the new one (``docs/operations.md``).
"""

from __future__ import annotations

import zlib

import pysyncobj.pickle
import pysyncobj.tcp_connection

__all__ = ["PICKLE_PROTOCOL", "install"]

PICKLE_PROTOCOL = 4  # BINBYTES: bytes pickle as they are (Python 3.4+, every supported version)
_PICKLE_PREFIX = b"\x80"  # the PROTO opcode every pickle of protocol 2 or later starts with


class _Uncompressed:
    """Stands in for the ``zlib`` module inside ``pysyncobj.tcp_connection`` (two names used)."""

    @staticmethod
    def compress(data: bytes, level: int = -1) -> bytes:
        del level  # nothing is compressed
        return data

    @staticmethod
    def decompress(data: bytes) -> bytes:
        """A pickle as it is; a message deflated by a node of an older release, inflated."""
        if data[:1] == _PICKLE_PREFIX:
            return data
        return zlib.decompress(data)


def install() -> None:
    """Make PySyncObj pickle with protocol 4 and send messages uncompressed (idempotent)."""
    setattr(pysyncobj.pickle, "__protocol", PICKLE_PROTOCOL)  # a module global, not mangled
    pysyncobj.tcp_connection.zlib = _Uncompressed
