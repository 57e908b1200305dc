"""The narrow seam over PySyncObj internals in ``ShardReplica`` (checked against 0.3.17).

Goal: applying entries does not trigger an extra AppendEntries round; a leader keeps its
pipelined ``nextIndex`` when a follower acknowledges an older entry
(so it never re-sends entries and followers never truncate what they applied) but still moves
it back on a refusal; a premature ``finish`` chunk of a large entry is treated as a ``process``
chunk until the pickled entry is complete. The typed interface the node layer uses reads
PySyncObj's state as it stores it (role numbers, FAIL_REASON codes).

Method: a ``ShardReplica`` shell (no Raft group started) with PySyncObj's own message handler
replaced by a stand-in that does what 0.3.17 does to ``nextIndex``.
"""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from pysyncobj import FAIL_REASON, SyncObj
from pysyncobj.node import TCPNode

from ledger.replication.raft_group import EntryFate, ReplicaRole, ReplicaStatus, ShardReplica

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


@pytest.mark.parametrize(
    ("state", "role"),
    [(0, ReplicaRole.FOLLOWER), (1, ReplicaRole.CANDIDATE), (2, ReplicaRole.LEADER)],
)
def test_status_reads_pysyncobj_state_into_a_typed_value(state: int, role: ReplicaRole) -> None:
    replica = _Shell()
    replica._SyncObj__raftState = state
    replica._SyncObj__raftCurrentTerm = 7
    replica._SyncObj__raftCommitIndex = 41
    replica._SyncObj__raftLastApplied = 40
    replica._SyncObj__raftLeader = TCPNode("127.0.0.1:9100")
    replica._SyncObj__raftLog = [None] * 3
    partners = {TCPNode("127.0.0.1:9101"), TCPNode("127.0.0.1:9102")}
    replica._SyncObj__otherNodes = partners
    replica._SyncObj__connectedNodes = set(list(partners)[:1])
    replica._SyncObj__selfNode = TCPNode("127.0.0.1:9100")
    assert replica.status() == ReplicaStatus(
        role=role,
        term=7,
        commit_index=41,
        applied_index=40,
        leader_raft_address="127.0.0.1:9100",
        has_quorum=True,  # itself and one partner of three
        log_length=3,
    )
    replica._SyncObj__connectedNodes = set()
    replica._SyncObj__raftLeader = None
    status = replica.status()
    assert not status.has_quorum and not replica.has_quorum()
    assert status.leader_raft_address is None and replica.leader_raft_address() is None


@pytest.mark.parametrize(
    ("reason", "fate"),
    [
        (FAIL_REASON.SUCCESS, EntryFate.APPLIED),
        (FAIL_REASON.QUEUE_FULL, EntryFate.OVERLOADED),
        (FAIL_REASON.MISSING_LEADER, EntryFate.NOT_LEADER),
        (FAIL_REASON.NOT_LEADER, EntryFate.NOT_LEADER),
        (FAIL_REASON.DISCARDED, EntryFate.NOT_LEADER),
        (FAIL_REASON.REQUEST_DENIED, EntryFate.NOT_LEADER),
        (FAIL_REASON.LEADER_CHANGED, EntryFate.UNKNOWN),
        (FAIL_REASON.UNKNOWN_OUTCOME, EntryFate.UNKNOWN),
        (99, EntryFate.UNKNOWN),  # a reason this version does not know: the safe answer
    ],
)
def test_callbacks_get_the_fate_of_the_entry(reason: int, fate: EntryFate) -> None:
    replica = _Shell()

    def propose(*args: Any, callback: Any) -> None:
        callback("result", reason)

    replica.apply_entry = propose  # type: ignore[method-assign]
    seen: list[tuple[Any, EntryFate]] = []
    replica.submit(b"entry", lambda result, fate: seen.append((result, fate)))
    assert seen == [("result", fate)]
