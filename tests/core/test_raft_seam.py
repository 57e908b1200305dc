"""The narrow seam over PySyncObj internals in ``ShardReplica`` (checked against 0.3.17).

Goal: applying entries does not trigger an extra AppendEntries round; a leader keeps its
pipelined ``nextIndex`` when a follower acknowledges an older entry
(so it never re-sends entries and followers never truncate what they applied) but still moves
it back on a refusal; a premature ``finish`` chunk of a large entry is treated as a ``process``
chunk until the pickled entry is complete.

Method: a ``ShardReplica`` shell (no Raft group started) with PySyncObj's own message handler
replaced by a stand-in that does what 0.3.17 does to ``nextIndex``.
"""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from pysyncobj import SyncObj

from ledger.replication.raft_group import ShardReplica

NODE = "follower"


class _Shell(ShardReplica):
    def __init__(self, leader: bool = True) -> None:  # no SyncObj.__init__: no threads, no ports
        self._SyncObj__raftNextIndex = {NODE: 50}
        self._SyncObj__recvTransmission = ""
        self.leader = leader
        self.seen: list[dict[str, Any]] = []

    def _isLeader(self) -> bool:
        return self.leader


@pytest.fixture(autouse=True)
def stock_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    def handle(self: _Shell, node: str, message: dict[str, Any]) -> None:
        self.seen.append(message)
        if message.get("type") == "next_node_idx":  # what 0.3.17 does on success or reset
            self._SyncObj__raftNextIndex[node] = message["next_node_idx"]

    monkeypatch.setattr(SyncObj, "_SyncObj__onMessageReceived", handle)


def ack(next_index: int, success: bool = True, reset: bool = False) -> dict[str, Any]:
    return {
        "type": "next_node_idx",
        "next_node_idx": next_index,
        "success": success,
        "reset": reset,
    }


def test_a_success_never_moves_next_index_back() -> None:
    replica = _Shell()
    replica._SyncObj__onMessageReceived(NODE, ack(10))
    assert replica._SyncObj__raftNextIndex[NODE] == 50
    replica._SyncObj__onMessageReceived(NODE, ack(60))
    assert replica._SyncObj__raftNextIndex[NODE] == 60


def test_a_refusal_still_moves_it_back() -> None:
    replica = _Shell()
    replica._SyncObj__onMessageReceived(NODE, ack(10, success=False, reset=True))
    assert replica._SyncObj__raftNextIndex[NODE] == 10


def test_a_follower_is_left_to_pysyncobj() -> None:
    replica = _Shell(leader=False)
    replica._SyncObj__onMessageReceived(NODE, ack(10))
    assert replica._SyncObj__raftNextIndex[NODE] == 10


def test_a_premature_finish_chunk_is_a_process_chunk() -> None:
    entry = pickle.dumps((b"x" * 1000, 7, 1))
    replica = _Shell(leader=False)
    replica._SyncObj__recvTransmission = entry[:400]
    replica._SyncObj__onMessageReceived(NODE, {"transmission": "finish", "data": entry[400:900]})
    assert replica.seen[-1]["transmission"] == "process"
    replica._SyncObj__recvTransmission = entry[:900]
    replica._SyncObj__onMessageReceived(NODE, {"transmission": "finish", "data": entry[900:]})
    assert replica.seen[-1]["transmission"] == "finish"


def test_applying_entries_never_asks_for_an_extra_append_entries_round(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []

    def stock_apply(self: _Shell) -> bool:
        calls.append("applied")
        return True  # what 0.3.17 returns after applying with appendEntriesUseBatch=False

    monkeypatch.setattr(SyncObj, "_SyncObj__applyLogEntries", stock_apply)
    assert _Shell()._SyncObj__applyLogEntries() is False
    assert calls == ["applied"]
