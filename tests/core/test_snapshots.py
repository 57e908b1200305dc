"""Shard snapshots (ledger.replication.snapshot) through the PySyncObj serializer seam.

Goal: compaction writes a small marker whatever the shard holds, and makes the store cover the
compacted index; a follower that needs the shard gets it streamed in bounded chunks from a
point-in-time view and ends byte-identical to the leader, even when the leader applied more
entries after compacting (those replay as no-ops); a corrupt stream (a flipped bit, a truncated
or missing chunk, a wrong checksum, trailing bytes) is refused and changes nothing, and one cut
off before its last chunk leaves the marker in place; a damaged marker is refused before
anything is unpickled and changes nothing; a marker ahead of its data is refused as data loss;
compaction waits for a stream in flight, up to a byte bound; and the time one compaction or one
chunk holds PySyncObj's tick thread does not grow with the ledger (100k and 1M keys).

Method: ``ShardSerializer`` driven directly, as PySyncObj's tick thread calls it, over LevelDB
stores in temp dirs; raft data is the shape PySyncObj passes (entry N, entry N-1, cluster).
"""

from __future__ import annotations

import os
import pathlib
import pickle
from typing import Any

import pytest
from pysyncobj.config import SERIALIZER_STATE

from ledger.pb import ledger_internal_pb2 as pb
from ledger.replication import pysyncobj_serializer, snapshot
from ledger.replication.pysyncobj_serializer import ShardSerializer
from ledger.replication.snapshot import DataLost, ShardSnapshots, SnapshotError
from ledger.replication.state_machine import ShardStateMachine
from ledger.storage.base import digest_items
from ledger.storage.leveldb import LevelDBShardStore

T = 1_700_000_000_000_000_000
CHUNK_BYTES = 64 * 1024


class Replica:
    def __init__(self, directory: pathlib.Path, shard: int = 3) -> None:
        self.store = LevelDBShardStore(directory / "db")
        self.machine = ShardStateMachine(self.store)
        self.snapshots = ShardSnapshots(shard, self.machine)
        self.dump_path = str(directory / "raft.dump")
        self.serializer = ShardSerializer(
            self.dump_path, CHUNK_BYTES, False, self.snapshots, self.snapshots.load, None
        )

    def apply_accounts(self, first_id: int, count: int, index: int) -> None:
        """Create ``count`` accounts in entries of 1,000, the last one at ``index``."""
        entries = (count + 999) // 1000
        for entry in range(entries):
            ids = range(first_id + entry * 1000, first_id + min(count, (entry + 1) * 1000))
            commands = [
                pb.Command(now_ns=T, create_account=pb.CreateAccount(account_id=n)) for n in ids
            ]
            results = self.machine.apply(commands, index - entries + 1 + entry)
            assert results is not None
            assert all(r.WhichOneof("kind") == "account" for r in results)

    def compact(self, index: int, term: int = 1) -> None:
        """What PySyncObj does at its last applied index ``index``."""
        self.serializer.serialize(
            (None, raft_entry(index, term), raft_entry(index - 1, term), {"cluster"}), index
        )
        assert self.serializer.checkSerializing() == (SERIALIZER_STATE.SUCCESS, index)

    def digest(self) -> str:
        return digest_items(self.store.items())


def raft_entry(index: int, term: int) -> tuple[bytes, int, int]:
    return (b"entry-%d" % index, index, term)


def transmit(leader: Replica, follower: Replica, node: str = "follower") -> int:
    """Stream until the follower has the last chunk; returns the number of chunks."""
    chunks = 0
    while True:
        data = leader.serializer.getTransmissionData(node)
        assert data is not None
        chunks += 1
        assert len(data[0]) <= CHUNK_BYTES + 4096
        if follower.serializer.setTransmissionData(data):
            assert data[2]
            return chunks
        assert not data[2]


@pytest.fixture
def pair(tmp_path: pathlib.Path) -> tuple[Replica, Replica]:
    leader, follower = Replica(tmp_path / "leader"), Replica(tmp_path / "follower")
    yield leader, follower
    leader.store.close()
    follower.store.close()


def test_compaction_writes_a_small_marker_and_loads_back(tmp_path: pathlib.Path) -> None:
    replica = Replica(tmp_path)
    replica.apply_accounts(1, 2_000, index=5)
    replica.compact(7)  # entries 6 and 7 were barriers: no store effect
    assert replica.store.applied_index == 7
    assert os.path.getsize(replica.dump_path) < 1024
    assert replica.snapshots.log_bytes == 0
    raft_data = replica.serializer.deserialize()
    assert raft_data == (None, raft_entry(7, 1), raft_entry(6, 1), {"cluster"})
    replica.store.close()


class _Exploit:
    """A pickle that runs code when loaded: what a tampered snapshot header could carry."""

    def __init__(self, witness: pathlib.Path) -> None:
        self.witness = witness  # the directory the code would create

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (str(self.witness),))


@pytest.mark.parametrize("tamper", ["header", "checksum"])
def test_a_tampered_marker_is_refused_before_anything_is_unpickled(
    tmp_path: pathlib.Path, tamper: str
) -> None:
    replica = Replica(tmp_path)
    replica.apply_accounts(1, 10, index=2)
    replica.compact(2)
    data = pathlib.Path(replica.dump_path).read_bytes()
    exploited = tmp_path / "exploited"
    if tamper == "header":  # the attacker's pickle, the old checksum
        header = pickle.dumps(_Exploit(exploited))
        body = (
            snapshot.MARKER_MAGIC + len(header).to_bytes(4, "big") + header + (2).to_bytes(8, "big")
        )
        data = body + data[-32:]
    else:  # one flipped bit anywhere
        data = data[:20] + bytes([data[20] ^ 1]) + data[21:]
    pathlib.Path(replica.dump_path).write_bytes(data)
    with pytest.raises(SnapshotError, match="checksum"):
        replica.snapshots.load(replica.dump_path)
    assert not exploited.exists()
    assert replica.snapshots.marker_raft_data(replica.dump_path) is None


def test_a_marker_ahead_of_the_data_is_data_loss(tmp_path: pathlib.Path) -> None:
    replica = Replica(tmp_path / "a")
    replica.apply_accounts(1, 10, index=5)
    replica.compact(5)
    stale = Replica(tmp_path / "b")  # a store that lost what the marker covers
    with pytest.raises(DataLost, match="wipe this shard"):
        stale.snapshots.load(replica.dump_path)
    replica.store.close()
    stale.store.close()


def test_a_follower_receives_the_shard_and_ends_identical(pair: tuple[Replica, Replica]) -> None:
    leader, follower = pair
    leader.apply_accounts(1, 5_000, index=10)
    leader.compact(10)
    leader.apply_accounts(100_000, 100, index=11)  # after the compaction: data newer than header
    chunks = transmit(leader, follower)
    assert chunks > 3
    raft_data = follower.serializer.deserialize()
    assert raft_data[1] == raft_entry(10, 1)
    assert follower.store.applied_index == 11
    assert follower.digest() == leader.digest()
    assert os.path.getsize(follower.dump_path) < 1024  # the stream became a marker
    # PySyncObj then replays entry 11 from the leader's log: a no-op, not a second apply.
    assert (
        follower.machine.apply(
            [pb.Command(now_ns=T, create_account=pb.CreateAccount(account_id=100_000))], 11
        )
        is None
    )
    assert follower.digest() == leader.digest()


def test_restore_postpones_the_followers_election(pair: tuple[Replica, Replica]) -> None:
    leader, follower = pair
    calls: list[str] = []
    follower.snapshots.after_restore = lambda: calls.append("restored")
    leader.apply_accounts(1, 10, index=4)
    leader.compact(4)
    transmit(leader, follower)
    follower.serializer.deserialize()
    assert calls == ["restored"]


def test_a_long_restore_pauses_for_the_other_groups_every_so_many_records(
    pair: tuple[Replica, Replica], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The node's groups share one tick thread: a restore lets the others tick meanwhile."""
    monkeypatch.setattr(snapshot, "restore_pause_records", 1_000)
    leader, follower = pair
    leader.apply_accounts(1, 5_000, index=10)
    leader.compact(10)
    records = sum(1 for _ in leader.store.items())
    pauses: list[int] = []
    follower.snapshots.let_others_run = lambda: pauses.append(len(pauses))
    transmit(leader, follower)
    follower.serializer.deserialize()
    assert len(pauses) == records // 1_000 >= 5
    assert follower.digest() == leader.digest()


def test_a_stream_lets_the_other_groups_run_between_its_chunks(
    pair: tuple[Replica, Replica],
) -> None:
    leader, follower = pair
    leader.apply_accounts(1, 5_000, index=10)
    leader.compact(10)
    pauses: list[int] = []
    leader.snapshots.let_others_run = lambda: pauses.append(len(pauses))
    chunks = transmit(leader, follower)
    assert chunks > 3
    assert len(pauses) == chunks - 1  # before every chunk but the one that opens the stream


def test_a_corrupt_stream_changes_nothing(pair: tuple[Replica, Replica]) -> None:
    leader, follower = pair
    leader.apply_accounts(1, 3_000, index=4)
    leader.compact(4)
    follower.apply_accounts(900_000, 3, index=2)
    before = follower.digest()
    chunks = []
    while True:
        data = leader.serializer.getTransmissionData("n")
        assert data is not None
        chunks.append(data)
        if data[2]:
            break
    middle = chunks[1][0]
    chunks[1] = (middle[:100] + bytes([middle[100] ^ 1]) + middle[101:], False, False)
    for data in chunks:
        follower.serializer.setTransmissionData(data)
    with pytest.raises(SnapshotError, match="checksum"):
        follower.snapshots.load(follower.dump_path)
    assert follower.digest() == before and follower.store.applied_index == 2


def stream_chunks(leader: Replica) -> list[tuple[bytes, bool, bool]]:
    """Every chunk of one install-snapshot stream from ``leader``, as PySyncObj sends them."""
    chunks = []
    while True:
        data = leader.serializer.getTransmissionData("n")
        assert data is not None
        chunks.append(data)
        if data[2]:
            return chunks


def _cut_middle(chunks: list[tuple[bytes, bool, bool]]) -> None:
    data, first, last = chunks[1]
    chunks[1] = (data[:-100], first, last)


def _drop_middle(chunks: list[tuple[bytes, bool, bool]]) -> None:
    del chunks[1]


def _flip_checksum(chunks: list[tuple[bytes, bool, bool]]) -> None:
    data, first, last = chunks[-1]
    chunks[-1] = (data[:-1] + bytes([data[-1] ^ 0x80]), first, last)


def _append_byte(chunks: list[tuple[bytes, bool, bool]]) -> None:
    data, first, last = chunks[-1]
    chunks[-1] = (data + b"x", first, last)


@pytest.mark.parametrize(
    "corrupt",
    [_cut_middle, _drop_middle, _flip_checksum, _append_byte],
    ids=["truncated-chunk", "missing-chunk", "wrong-checksum", "trailing-bytes"],
)
def test_a_damaged_stream_is_refused_and_changes_nothing(
    pair: tuple[Replica, Replica], corrupt: Any
) -> None:
    leader, follower = pair
    leader.apply_accounts(1, 3_000, index=4)
    leader.compact(4)
    follower.apply_accounts(900_000, 3, index=2)
    before = follower.digest()
    restored: list[str] = []
    follower.snapshots.after_restore = lambda: restored.append("restored")
    chunks = stream_chunks(leader)
    assert len(chunks) > 2
    corrupt(chunks)
    assert [follower.serializer.setTransmissionData(data) for data in chunks][-1] is True
    with pytest.raises(SnapshotError):
        follower.serializer.deserialize()
    assert follower.digest() == before and follower.store.applied_index == 2
    assert restored == []


def test_a_stream_cut_off_before_its_last_chunk_leaves_the_marker_in_place(
    pair: tuple[Replica, Replica],
) -> None:
    leader, follower = pair
    leader.apply_accounts(1, 3_000, index=4)
    leader.compact(4)
    follower.apply_accounts(900_000, 3, index=2)
    follower.compact(2)
    marker = pathlib.Path(follower.dump_path).read_bytes()
    before = follower.digest()
    for data in stream_chunks(leader)[:-1]:
        assert follower.serializer.setTransmissionData(data) is False
    assert pathlib.Path(follower.dump_path).read_bytes() == marker
    assert follower.serializer.deserialize()[1] == raft_entry(2, 1)
    assert follower.digest() == before and follower.store.applied_index == 2
    follower.serializer._close_incoming()  # kept open for the chunks that never came


@pytest.mark.parametrize(
    "damage",
    ["wrong-checksum", "truncated", "trailing-bytes", "empty", "foreign-magic"],
)
def test_a_damaged_marker_is_refused_and_changes_nothing(
    tmp_path: pathlib.Path, damage: str
) -> None:
    replica = Replica(tmp_path)
    replica.apply_accounts(1, 10, index=3)
    replica.compact(3)
    before = replica.digest()
    path = pathlib.Path(replica.dump_path)
    data = path.read_bytes()
    damaged = {
        "wrong-checksum": data[:-1] + bytes([data[-1] ^ 1]),
        "truncated": data[: len(data) // 2],
        "trailing-bytes": data + b"\x00",
        "empty": b"",
        "foreign-magic": b"NOTLEDGER\x01" + data[len(snapshot.MARKER_MAGIC) :],
    }[damage]
    path.write_bytes(damaged)
    with pytest.raises(SnapshotError):
        replica.serializer.deserialize()
    assert replica.snapshots.marker_raft_data(replica.dump_path) is None
    assert path.read_bytes() == damaged  # not rewritten
    assert replica.digest() == before and replica.store.applied_index == 3
    replica.store.close()


def test_chunks_of_an_unknown_stream_or_junk_are_ignored(tmp_path: pathlib.Path) -> None:
    replica = Replica(tmp_path)
    assert replica.serializer.setTransmissionData((b"x", False, True)) is False
    assert replica.serializer.setTransmissionData("junk") is False
    assert replica.serializer.setTransmissionData(None) is False
    assert not os.path.exists(replica.dump_path)
    replica.store.close()


def test_no_stream_before_the_first_compaction(tmp_path: pathlib.Path) -> None:
    replica = Replica(tmp_path)
    assert replica.serializer.getTransmissionData("n") is None
    replica.store.close()


def test_compaction_waits_for_a_stream_up_to_a_byte_bound(
    pair: tuple[Replica, Replica], monkeypatch: pytest.MonkeyPatch
) -> None:
    leader, _ = pair
    leader.apply_accounts(1, 3_000, index=4)
    leader.compact(4)
    first = leader.serializer.getTransmissionData("n")
    assert first is not None and first[1] and not first[2]
    leader.apply_accounts(10_000, 1, index=5)
    leader.serializer.serialize((None, raft_entry(5, 1), raft_entry(4, 1), set()), 5)
    assert leader.serializer.checkSerializing()[0] == SERIALIZER_STATE.NOT_SERIALIZING
    leader.snapshots.note_entry(snapshot.log_bytes_streaming_max)
    assert leader.snapshots.compaction_due()
    leader.serializer.serialize((None, raft_entry(5, 1), raft_entry(4, 1), set()), 5)
    assert leader.serializer.checkSerializing() == (SERIALIZER_STATE.SUCCESS, 5)
    restarted = leader.serializer.getTransmissionData("n")  # the old stream was dropped
    assert restarted is not None and restarted[1]


def test_an_idle_stream_is_dropped(
    pair: tuple[Replica, Replica], monkeypatch: pytest.MonkeyPatch
) -> None:
    leader, _ = pair
    leader.apply_accounts(1, 3_000, index=4)
    leader.compact(4)
    assert leader.serializer.getTransmissionData("n") is not None
    monkeypatch.setattr(pysyncobj_serializer, "stream_idle_s", -1.0)
    leader.apply_accounts(10_000, 1, index=5)
    leader.compact(5)  # not deferred: nobody is reading that stream


def _fill(store: LevelDBShardStore, keys: int) -> None:
    value = b"v" * 90
    batch_keys = 20_000
    index = store.applied_index
    for start in range(0, keys, batch_keys):
        index += 1
        store.commit(
            ((b"t%015d" % n, value) for n in range(start, min(start + batch_keys, keys))), index
        )


class CountingStore:
    """Counts the keys a compaction or a chunk reads from the store: the work, not the time
    (timings on a shared 2-core machine prove nothing; ``ledger-dev bench-scale`` measures)."""

    def __init__(self, store: LevelDBShardStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.keys_read = 0
        items, get, scan = store.items, store.get, store.scan

        def counted_items() -> Any:
            for item in items():
                self.keys_read += 1
                yield item

        def counted_get(key: bytes) -> Any:
            self.keys_read += 1
            return get(key)

        def counted_scan(start: bytes, stop: bytes, limit: int) -> Any:
            rows = scan(start, stop, limit)
            self.keys_read += len(rows)
            return rows

        monkeypatch.setattr(store, "items", counted_items)
        monkeypatch.setattr(store, "get", counted_get)
        monkeypatch.setattr(store, "scan", counted_scan)


@pytest.mark.parametrize("keys", [100_000, 1_000_000])
def test_tick_thread_work_does_not_grow_with_the_ledger(
    tmp_path: pathlib.Path, keys: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old design dumped the whole shard on every compaction (seconds at 1M keys): now a
    compaction reads no key and writes a marker of a few hundred bytes, and each chunk of an
    install-snapshot stream reads only the keys that fit in one chunk, at any size."""
    leader = Replica(tmp_path / "leader")
    _fill(leader.store, keys)
    index = leader.store.applied_index
    counter = CountingStore(leader.store, monkeypatch)
    leader.compact(index)
    assert counter.keys_read == 0
    assert os.path.getsize(leader.dump_path) < 4096
    record_bytes_min = 16 + 90  # _fill's keys and values
    most_keys_per_chunk = 0
    chunks = 0
    while True:
        before = counter.keys_read
        data: Any = leader.serializer.getTransmissionData("n")
        most_keys_per_chunk = max(most_keys_per_chunk, counter.keys_read - before)
        assert len(data[0]) <= CHUNK_BYTES + snapshot.record_bytes_max
        chunks += 1
        if data[2]:
            break
    assert most_keys_per_chunk <= CHUNK_BYTES // record_bytes_min + 1
    assert counter.keys_read >= keys  # the whole shard went out ...
    assert chunks > keys * 100 // CHUNK_BYTES  # ... in many chunks
    leader.store.close()
