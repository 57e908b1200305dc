"""``DurableJournal`` (PySyncObj's journal interface, durable before acknowledgement) and the
seam in ``ShardReplica`` that holds a follower's acknowledgements until the journal is flushed.

Goal: what was flushed survives a reopen, what was only added does not (nothing is written
between flushes: that is the group commit), one flush costs one fdatasync whatever it carries
(none with ``fsync=False``), a torn or corrupt tail is cut off, truncation from either end and
the term/vote survive a reopen, an older PySyncObj ``FileJournal`` is migrated, and a follower
never sends an acknowledgement before the entries it covers were flushed.

Method: journals on real files in a temp dir, ``os.fdatasync`` counted; the power-loss proof
on a filesystem that really drops unsynced data is in ``tests/powerloss``.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

import pytest
from pysyncobj import SyncObj
from pysyncobj.journal import FileJournal

from ledger.replication import durable_journal
from ledger.replication.durable_journal import MAGIC, DurableJournal, JournalSpec
from ledger.replication.raft_group import ShardReplica


def entry(index: int, term: int = 1, size: int = 20) -> tuple[bytes, int, int]:
    return (bytes([index % 251]) * size, index, term)


def open_journal(path: pathlib.Path, fsync: bool = True) -> DurableJournal:
    return DurableJournal(JournalSpec(path / "raft.wal", fsync=fsync))


@pytest.fixture
def syncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the sync calls made (``fdatasync``: the journal; ``fsync``: files that are
    replaced, and their directories)."""
    calls: list[str] = []
    for name in ("fsync", "fdatasync"):
        real = getattr(os, name)

        def counted(fd: int, real: Any = real, name: str = name) -> None:
            calls.append(name)
            real(fd)

        monkeypatch.setattr(os, name, counted)
    return calls


def test_flushed_entries_survive_a_reopen_and_one_flush_is_one_sync(
    tmp_path: pathlib.Path, syncs: list[str]
) -> None:
    journal = open_journal(tmp_path)
    syncs.clear()  # creating the file
    for index in range(1, 101):
        journal.add(*entry(index))
    assert journal.needs_flush and syncs == []
    journal.flush()
    assert len(syncs) == 1 and not journal.needs_flush
    journal.flush()  # nothing new: no sync
    assert len(syncs) == 1
    reopened = open_journal(tmp_path)
    assert [reopened[i] for i in range(len(reopened))] == [entry(i) for i in range(1, 101)]


def test_added_but_not_flushed_entries_are_not_written(tmp_path: pathlib.Path) -> None:
    journal = open_journal(tmp_path)
    journal.add(*entry(1))
    journal.flush()
    journal.add(*entry(2))  # a crash now: never acknowledged, never written
    reopened = open_journal(tmp_path)
    assert len(reopened) == 1 and reopened[0] == entry(1)


def test_without_fsync_everything_is_written_but_never_synced(
    tmp_path: pathlib.Path, syncs: list[str]
) -> None:
    journal = open_journal(tmp_path, fsync=False)
    journal.add(*entry(1))
    journal.flush()
    journal.setCurrentTerm(3, "node-b")
    journal.deleteEntriesTo(0)
    assert syncs == []
    reopened = open_journal(tmp_path)
    assert reopened[0] == entry(1) and reopened.getCurrentTerm() == 3


@pytest.mark.parametrize("damage", ["torn", "corrupt"])
def test_a_torn_or_corrupt_tail_is_cut_off(tmp_path: pathlib.Path, damage: str) -> None:
    journal = open_journal(tmp_path)
    for index in (1, 2, 3):
        journal.add(*entry(index))
    journal.flush()
    path = tmp_path / "raft.wal"
    data = path.read_bytes()
    if damage == "torn":
        path.write_bytes(data[:-5])
    else:
        path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    reopened = open_journal(tmp_path)
    assert [reopened[i] for i in range(len(reopened))] == [entry(1), entry(2)]
    reopened.add(*entry(3, term=2))
    reopened.flush()
    again = open_journal(tmp_path)
    assert again[2] == entry(3, term=2)


def test_truncating_the_suffix_survives_a_reopen(tmp_path: pathlib.Path) -> None:
    journal = open_journal(tmp_path)
    for index in (1, 2, 3, 4):
        journal.add(*entry(index))
    journal.flush()
    journal.add(*entry(5))
    journal.deleteEntriesFrom(4)  # only pending bytes go
    assert len(journal) == 4
    journal.deleteEntriesFrom(2)  # written bytes go: the file is cut
    journal.add(*entry(3, term=2))
    journal.flush()
    reopened = open_journal(tmp_path)
    assert [reopened[i] for i in range(len(reopened))] == [entry(1), entry(2), entry(3, term=2)]


def test_truncating_the_prefix_rewrites_the_file_atomically(tmp_path: pathlib.Path) -> None:
    journal = open_journal(tmp_path)
    for index in range(1, 11):
        journal.add(*entry(index))
    journal.flush()
    journal.add(*entry(11))
    journal.deleteEntriesTo(8)  # keeps 9, 10 and the pending 11
    assert [journal[i][1] for i in range(len(journal))] == [9, 10, 11]
    assert not list(tmp_path.glob("*.tmp"))
    journal.add(*entry(12))
    journal.flush()
    reopened = open_journal(tmp_path)
    assert [reopened[i][1] for i in range(len(reopened))] == [9, 10, 11, 12]
    reopened.clear()
    assert len(open_journal(tmp_path)) == 0


def test_drop_before_keeps_the_entries_after_a_compaction_marker(tmp_path: pathlib.Path) -> None:
    journal = open_journal(tmp_path)
    for index in range(1, 6):
        journal.add(*entry(index))
    journal.flush()
    assert journal.drop_before(entry(3))
    assert [journal[i][1] for i in range(len(journal))] == [3, 4, 5]
    assert not journal.drop_before(entry(3, term=9))  # not held: nothing changes
    assert len(open_journal(tmp_path)) == 3


def test_term_and_vote_are_durable_at_once_and_the_commit_index_lazily(
    tmp_path: pathlib.Path, syncs: list[str]
) -> None:
    journal = open_journal(tmp_path)
    syncs.clear()
    journal.setCurrentTerm(7, "127.0.0.1:9001")
    assert syncs == ["fsync", "fsync"]  # the meta file, then its directory
    journal.setRaftCommitIndex(42)
    assert open_journal(tmp_path).getRaftCommitIndex() == 1  # not stored yet
    journal.onOneSecondTimer()
    reopened = open_journal(tmp_path)
    assert (reopened.getCurrentTerm(), reopened.getVotedForNodeId()) == (7, "127.0.0.1:9001")
    assert reopened.getRaftCommitIndex() == 42
    journal.setCurrentTerm(8, None)
    assert open_journal(tmp_path).getVotedForNodeId() is None


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # its meta reader
def test_a_pysyncobj_file_journal_is_migrated(tmp_path: pathlib.Path) -> None:
    legacy = tmp_path / "raft.journal"
    old = FileJournal(str(legacy))
    for index in (1, 2, 3):
        old.add(*entry(index, term=2))
    old.setCurrentTerm(5, "peer")
    old.setRaftCommitIndex(2)
    old.onOneSecondTimer()
    old._destroy()
    durable_journal.install()
    journal = durable_journal._create_journal(
        JournalSpec(tmp_path / "raft.wal", legacy_path=legacy)
    )
    assert [journal[i] for i in range(len(journal))] == [entry(i, term=2) for i in (1, 2, 3)]
    assert (journal.getCurrentTerm(), journal.getVotedForNodeId()) == (5, "peer")
    assert journal.getRaftCommitIndex() == 2
    assert not legacy.exists()
    assert (tmp_path / "raft.wal").read_bytes().startswith(MAGIC)


class _Follower(ShardReplica):
    """A ``ShardReplica`` shell (no Raft group started) with a real journal."""

    def __init__(self, journal: DurableJournal) -> None:
        self._SyncObj__raftLog = journal
        self._held_acks = []
        self.sent: list[tuple[str, int, bool]] = []


@pytest.fixture
def stock_sender(monkeypatch: pytest.MonkeyPatch) -> None:
    def send(
        self: _Follower,
        node: str,
        reset: bool = False,
        nextNodeIdx: Any = None,
        success: bool = False,
    ) -> None:
        self.sent.append((node, nextNodeIdx, success))

    monkeypatch.setattr(SyncObj, "_SyncObj__sendNextNodeIdx", send)
    monkeypatch.setattr(
        SyncObj, "_SyncObj__getCurrentLogIndex", lambda self: self._SyncObj__raftLog[-1][1]
    )


@pytest.mark.usefixtures("stock_sender")
def test_a_follower_acknowledges_only_after_the_flush(
    tmp_path: pathlib.Path, syncs: list[str]
) -> None:
    follower = _Follower(open_journal(tmp_path))
    syncs.clear()
    follower._journal.add(*entry(1))
    follower._SyncObj__sendNextNodeIdx("leader", nextNodeIdx=2, success=True)
    follower._journal.add(*entry(2))
    follower._SyncObj__sendNextNodeIdx("leader", nextNodeIdx=3, success=True)
    assert follower.sent == [] and syncs == []  # held: nothing is durable yet
    follower._flush_journal()
    assert len(syncs) == 1  # both acknowledgements share one flush
    assert follower.sent == [("leader", 2, True), ("leader", 3, True)]
    follower._SyncObj__sendNextNodeIdx("leader", success=False)  # nothing pending: at once
    assert follower.sent[-1] == ("leader", 3, False)


def test_a_damaged_journal_or_term_record_stops_a_durable_replica_not_an_unsafe_one(
    tmp_path: pathlib.Path,
) -> None:
    open_journal(tmp_path).setCurrentTerm(4, "peer")
    (tmp_path / "raft.wal.meta").write_bytes(b"")  # what a rename without fsync can leave
    with pytest.raises(RuntimeError, match="wipe its shard directory"):
        open_journal(tmp_path)
    unsafe = open_journal(tmp_path, fsync=False)
    assert unsafe.getCurrentTerm() == 0
    unsafe.setCurrentTerm(5, None)
    (tmp_path / "raft.wal").write_bytes(b"")
    with pytest.raises(RuntimeError, match="not a ledger Raft journal"):
        open_journal(tmp_path)
    assert len(open_journal(tmp_path, fsync=False)) == 0
