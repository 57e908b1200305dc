"""The Raft journal of a shard replica: durable before anything it holds is acknowledged.

PySyncObj 0.3.17's ``FileJournal`` writes entries into an mmap'd file and never syncs it, stores
the term and vote with a rename but no fsync (a power loss can leave an empty file: a node that
forgets its vote can vote twice in one term), and rewrites the whole file in place when the log
is compacted (a power loss in the middle leaves garbage). ``DurableJournal`` replaces it through
PySyncObj's own ``Journal`` interface (checked against 0.3.17):

* **Group commit.** ``add`` only buffers a record. ``flush`` writes everything buffered with one
  ``write`` and one ``fdatasync``. ``ShardReplica`` calls it before a follower acknowledges
  AppendEntries (all acknowledgements of one poll share one flush) and before the leader counts
  its own copy towards a commit, so an acknowledged write is on stable storage on a majority.
* **Records** carry a CRC-32 of index, term and command. A torn record at the end (a write cut
  by a power loss: never acknowledged, its flush had not returned) is cut off at the next start.
* **Truncation from the front** (compaction, snapshot install) writes the kept entries to a new
  file, syncs it and renames it over the old one: either the old or the new journal survives.
  Truncation from the back (a follower's conflicting suffix) is an ``ftruncate`` that the next
  flush makes durable before anything after it is acknowledged.
* **Term and vote** are written atomically and durably (file, then directory) before
  ``setCurrentTerm`` returns, hence before any vote or message of the new term is sent. The
  commit index is stored lazily (once a second), as PySyncObj does: it is only a hint at start.

``fsync=False`` (``--unsafe-no-fsync``, benchmarks only) keeps every write but drops the syncs:
a process crash loses nothing, a power loss can lose acknowledged writes.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import pysyncobj.journal
import pysyncobj.syncobj
from pysyncobj.pickle import to_bytes

from ledger.storage.durable_files import fsync_directory, write_durably

__all__ = ["DurableJournal", "JournalSpec", "install"]

log = logging.getLogger(__name__)

MAGIC = b"LEDGERWAL\x01"
_RECORD = struct.Struct(">IIQQ")  # command length, crc32 of (index, term, command), index, term
_POSITION = struct.Struct(">QQ")
command_bytes_max = 64 << 20  # one entry: a write set is at most a few MiB
_Entry = tuple[Any, int, int]  # PySyncObj's (command, index, term)


@dataclass(frozen=True, slots=True)
class JournalSpec:
    """Passed as ``SyncObjConf.journalFile``; ``install`` makes PySyncObj open it with us.
    ``legacy_path``: a PySyncObj ``FileJournal`` of an older release, migrated on first open."""

    path: pathlib.Path
    fsync: bool = True
    legacy_path: pathlib.Path | None = None


def _checksum(command: bytes, index: int, term: int) -> int:
    return zlib.crc32(command, zlib.crc32(_POSITION.pack(index, term)))


def _encode(command: bytes, index: int, term: int) -> bytes:
    assert len(command) <= command_bytes_max, "a Raft entry beyond the journal's record limit"
    return _RECORD.pack(len(command), _checksum(command, index, term), index, term) + command


def _decode(data: bytes) -> tuple[list[_Entry], list[int], int]:
    """Entries, the end offset of each, and the end of the last whole, valid record."""
    entries: list[_Entry] = []
    ends: list[int] = []
    offset = len(MAGIC)
    while offset + _RECORD.size <= len(data):
        length, checksum, index, term = _RECORD.unpack_from(data, offset)
        end = offset + _RECORD.size + length
        if length > command_bytes_max or end > len(data):
            break
        command = data[offset + _RECORD.size : end]
        if _checksum(command, index, term) != checksum:
            break
        entries.append((command, index, term))
        ends.append(end)
        offset = end
    return entries, ends, offset


class DurableJournal(pysyncobj.journal.Journal):  # type: ignore[misc]
    """PySyncObj's journal interface over an append-only file with explicit group commit."""

    def __init__(self, spec: JournalSpec) -> None:
        self._path = spec.path
        self._fsync = spec.fsync
        self._meta_path = self._path.with_name(self._path.name + ".meta")
        self._meta: dict[str, Any] = self._load_meta()
        self._meta_dirty = False
        self._pending = bytearray()  # records added since the last flush
        self._unsynced = False  # written to the file but not yet fdatasync'ed
        self._entries: list[_Entry] = []
        self._ends: list[int] = []  # file offset at which record i ends (pending included)
        self._fd = -1
        self._open()

    # -- opening -----------------------------------------------------------------------------

    def _open(self) -> None:
        if not self._path.exists():
            write_durably(self._path, MAGIC, sync=self._fsync)
        data = self._path.read_bytes()
        if not data.startswith(MAGIC):
            if self._fsync:
                raise RuntimeError(f"{self._path}: not a ledger Raft journal")
            log.warning(
                "%s: damaged journal header (written without fsync); starting empty, "
                "which is unsafe",
                self._path,
            )
            write_durably(self._path, MAGIC, sync=False)
            data = MAGIC
        self._entries, self._ends, valid_end = _decode(data)
        self._fd = os.open(self._path, os.O_WRONLY)
        if valid_end < len(data):
            log.warning(
                "%s: cut %d bytes of a torn or corrupt tail (never acknowledged)",
                self._path,
                len(data) - valid_end,
            )
            os.ftruncate(self._fd, valid_end)
            self._sync_file()
        self._written = valid_end
        os.lseek(self._fd, valid_end, os.SEEK_SET)

    def _load_meta(self) -> dict[str, Any]:
        try:
            meta = json.loads(self._meta_path.read_bytes())
        except FileNotFoundError:
            return {}
        except ValueError:
            meta = None
        if isinstance(meta, dict):
            return meta
        if self._fsync:  # it is replaced atomically and durably: damage is not ours to guess at
            raise RuntimeError(
                f"{self._meta_path}: damaged term/vote record; this replica "
                "cannot know whom it voted for: wipe its shard directory so that "
                "it is restored from its peers"
            )
        log.warning(
            "%s: damaged term/vote record (written without fsync); starting from term "
            "0, which is unsafe",
            self._meta_path,
        )
        return {}

    # -- group commit ------------------------------------------------------------------------

    @property
    def needs_flush(self) -> bool:
        return bool(self._pending) or self._unsynced

    def flush(self) -> None:
        """Make every added entry durable: one write and one fdatasync for all of them."""
        if self._pending:
            with memoryview(self._pending) as view:
                offset = 0
                while offset < len(view):
                    offset += os.write(self._fd, view[offset:])
            self._written += len(self._pending)
            self._pending.clear()
            self._unsynced = True
        if self._unsynced:
            self._sync_file()

    def _sync_file(self) -> None:
        if self._fsync:
            os.fdatasync(self._fd)
        self._unsynced = False

    # -- PySyncObj's Journal interface --------------------------------------------------------

    def add(self, command: Any, idx: int, term: int) -> None:
        record = _encode(to_bytes(command), idx, term)
        self._pending += record
        self._entries.append((command, idx, term))
        self._ends.append(self._written + len(self._pending))

    def clear(self) -> None:
        self._rewrite([])

    def deleteEntriesFrom(self, entryFrom: int) -> None:
        if entryFrom >= len(self._entries):
            return
        end = self._ends[entryFrom - 1] if entryFrom > 0 else len(MAGIC)
        del self._entries[entryFrom:]
        del self._ends[entryFrom:]
        if end >= self._written:
            del self._pending[end - self._written :]
            return
        self._pending.clear()
        os.ftruncate(self._fd, end)
        os.lseek(self._fd, end, os.SEEK_SET)
        self._written = end
        self._unsynced = True  # the next flush makes the cut durable before what follows it

    def deleteEntriesTo(self, entryTo: int) -> None:
        self._rewrite(self._entries[entryTo:])

    def drop_before(self, entry: _Entry) -> bool:
        """Start the journal at ``entry`` if it holds it (True). After a crash between the
        compaction marker and the journal's truncation, this keeps the entries after the marker
        that PySyncObj would otherwise throw away with the whole journal."""
        for position, candidate in enumerate(self._entries):
            if candidate == entry:
                if position > 0:
                    self._rewrite(self._entries[position:])
                return True
        return False

    def _rewrite(self, entries: list[_Entry]) -> None:
        """Replace the file with ``entries``, atomically: the old or the new journal survives."""
        body = bytearray(MAGIC)
        ends = []
        for command, index, term in entries:
            body += _encode(to_bytes(command), index, term)
            ends.append(len(body))
        os.close(self._fd)
        write_durably(self._path, bytes(body), sync=self._fsync)
        self._fd = os.open(self._path, os.O_WRONLY)
        os.lseek(self._fd, len(body), os.SEEK_SET)
        self._entries = list(entries)
        self._ends = ends
        self._written = len(body)
        self._pending.clear()
        self._unsynced = False

    def __getitem__(self, item: Any) -> Any:
        return self._entries[item]

    def __len__(self) -> int:
        return len(self._entries)

    def _destroy(self) -> None:
        if self._fd >= 0:
            self.flush()
            self._store_meta_if_dirty()
            os.close(self._fd)
            self._fd = -1

    def setRaftCommitIndex(self, raftCommitIndex: int) -> None:
        if self._meta.get("commit_index") != raftCommitIndex:
            self._meta["commit_index"] = raftCommitIndex
            self._meta_dirty = True

    def getRaftCommitIndex(self) -> int:
        return int(self._meta.get("commit_index", 1))

    def setCurrentTerm(self, term: int, votedForNodeId: Any) -> None:
        """Durable before it returns: Raft must never forget a term it entered or a vote."""
        self._meta["term"] = int(term)
        self._meta["voted_for"] = None if votedForNodeId is None else str(votedForNodeId)
        self._store_meta()

    def getCurrentTerm(self) -> int:
        return int(self._meta.get("term", 0))

    def getVotedForNodeId(self) -> Any:
        return self._meta.get("voted_for")

    def onOneSecondTimer(self) -> None:
        self._store_meta_if_dirty()

    def _store_meta_if_dirty(self) -> None:
        if self._meta_dirty:
            self._store_meta()

    def _store_meta(self) -> None:
        write_durably(
            self._meta_path, json.dumps(self._meta, sort_keys=True).encode(), sync=self._fsync
        )
        self._meta_dirty = False


def _create_journal(journal_file: Any = None) -> Any:
    if isinstance(journal_file, JournalSpec):
        legacy = journal_file.legacy_path
        if legacy is not None and legacy.exists() and not journal_file.path.exists():
            return _migrate(legacy, journal_file)
        return DurableJournal(journal_file)
    return _pysyncobj_create_journal(journal_file)


def _migrate(legacy: pathlib.Path, spec: JournalSpec) -> DurableJournal:
    """Copy a PySyncObj ``FileJournal`` (entries, term, vote, commit index) into a new journal,
    durably, then remove it. A crash before the removal just migrates again."""
    old = pysyncobj.journal.FileJournal(str(legacy))
    entries = [old[position] for position in range(len(old))]
    term, voted_for, commit_index = (
        old.getCurrentTerm(),
        old.getVotedForNodeId(),
        old.getRaftCommitIndex(),
    )
    old._destroy()
    staging = JournalSpec(spec.path.with_name(spec.path.name + ".migrating"), spec.fsync)
    for stale in (staging.path, staging.path.with_name(staging.path.name + ".meta")):
        stale.unlink(missing_ok=True)
    journal = DurableJournal(staging)
    for entry in entries:
        journal.add(*entry)
    journal.flush()
    journal.setRaftCommitIndex(commit_index)
    journal.setCurrentTerm(term, voted_for)
    journal._destroy()
    os.replace(
        staging.path.with_name(staging.path.name + ".meta"),
        spec.path.with_name(spec.path.name + ".meta"),
    )
    os.replace(staging.path, spec.path)  # the journal last: its presence means "migrated"
    if spec.fsync:
        fsync_directory(spec.path.parent)
    legacy.unlink()
    legacy.with_name(legacy.name + ".meta").unlink(missing_ok=True)
    log.info("%s: migrated %d entries from %s", spec.path, len(entries), legacy)
    return DurableJournal(spec)


_pysyncobj_create_journal = pysyncobj.syncobj.createJournal


def install() -> None:
    """Make PySyncObj open a ``JournalSpec`` with ``DurableJournal`` (idempotent; other
    ``journalFile`` values keep PySyncObj's own journals)."""
    pysyncobj.syncobj.createJournal = _create_journal
