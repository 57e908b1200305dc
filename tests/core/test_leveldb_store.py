"""LevelDBShardStore (plyvel) keeps the ShardStore contract, the same as MemoryShardStore.

Goal: data and the applied index are committed together and survive a reopen; a commit at or
below the applied index is refused (an AssertionError: a bug, never an outcome) and writes
nothing; deletes, range scans with limits, ``items()`` in key order, point-in-time snapshot
readers and ``replace_all`` behave as the in-memory store does, so core tests on memory carry
over to disk.

Method: a real LevelDB in pytest's ``tmp_path``, reopened by a second ``LevelDBShardStore`` on
the same directory; every scan case runs against both stores and must agree with the expected
rows; the state machine fed the same batches over both stores must produce identical items.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from ledger.pb import ledger_internal_pb2 as pb
from ledger.replication.state_machine import ShardStateMachine
from ledger.storage.base import APPLIED_KEY, digest_items, encode_applied
from ledger.storage.leveldb import LevelDBShardStore
from ledger.storage.memory import MemoryShardStore

T = 1_700_000_000_000_000_000
A = 0x3D2DBE651AB536A1


@pytest.fixture
def store(tmp_path: pathlib.Path) -> Iterator[LevelDBShardStore]:
    store = LevelDBShardStore(tmp_path / "shard")
    yield store
    store.close()


def reopen(store: LevelDBShardStore) -> LevelDBShardStore:
    store.close()
    return LevelDBShardStore(store.path)


def test_new_store_is_empty(store: LevelDBShardStore) -> None:
    assert store.applied_index == 0
    assert list(store.items()) == []
    assert store.get(b"a") is None


def test_commit_and_reopen_keep_data_and_applied_index(store: LevelDBShardStore) -> None:
    store.commit([(b"a1", b"one"), (b"b2", b"")], 1)
    store.commit([(b"a3", b"three")], 5)
    store = reopen(store)
    try:
        assert store.applied_index == 5
        assert store.get(b"a1") == b"one"
        assert store.get(b"b2") == b""  # an empty value is a value, not a missing key
        assert list(store.items()) == [
            (b"a1", b"one"),
            (b"a3", b"three"),
            (b"b2", b""),
            (APPLIED_KEY, encode_applied(5)),
        ]
    finally:
        store.close()


@pytest.mark.parametrize("index", [3, 2, 0, -1])
def test_commit_at_or_below_the_applied_index_is_refused(
    store: LevelDBShardStore, index: int
) -> None:
    store.commit([(b"k", b"v")], 3)
    with pytest.raises(AssertionError):
        store.commit([(b"k", b"changed"), (b"new", b"x")], index)
    assert store.get(b"k") == b"v" and store.get(b"new") is None
    assert store.applied_index == 3
    store.commit([(b"k", b"later")], 4)  # the store is still usable: the lock was released
    assert store.get(b"k") == b"later"
    store = reopen(store)
    try:
        assert store.applied_index == 4
    finally:
        store.close()


@pytest.mark.parametrize("index", [1, 2, 10**12])
def test_memory_store_refuses_the_same_way(index: int) -> None:
    memory = MemoryShardStore()
    memory.commit([(b"k", b"v")], 10**12)
    with pytest.raises(AssertionError):
        memory.commit([(b"k", b"changed")], index)
    assert memory.get(b"k") == b"v"


def test_deletes(store: LevelDBShardStore) -> None:
    store.commit([(b"a", b"1"), (b"b", b"2"), (b"c", b"")], 1)
    store.commit([(b"a", None), (b"missing", None), (b"c", None)], 2)
    assert store.get(b"a") is None and store.get(b"c") is None
    assert [k for k, _ in store.items()] == [b"b", APPLIED_KEY]
    store.commit([(b"a", b"again")], 3)
    store = reopen(store)
    try:
        assert [k for k, _ in store.items()] == [b"a", b"b", APPLIED_KEY]
    finally:
        store.close()


KEYS = [b"a", b"a\x00", b"a1", b"a2", b"a3", b"b", b"b\xff", b"c"]


@pytest.mark.parametrize(
    ("start", "stop", "limit", "expected"),
    [
        (b"a", b"b", 100, [b"a", b"a\x00", b"a1", b"a2", b"a3"]),
        (b"a", b"b", 2, [b"a", b"a\x00"]),
        (b"a", b"b", 1, [b"a"]),
        (b"a1", b"a3", 100, [b"a1", b"a2"]),  # stop is exclusive
        (b"a1", b"a1", 100, []),
        (b"a3", b"a1", 100, []),  # an empty range when start > stop
        (b"a\x00", b"a\x01", 10, [b"a\x00"]),
        (b"b", b"\xff", 100, [b"b", b"b\xff", b"c", APPLIED_KEY]),  # meta keys are data to a store
        (b"", b"a", 100, []),
        (b"", b"\xff", 3, [b"a", b"a\x00", b"a1"]),
        (b"c\x00", b"\xff", 100, [APPLIED_KEY]),
        (b"d", b"z", 5, [APPLIED_KEY]),
        (b"n", b"z", 5, []),
    ],
)
def test_scan_limits_and_ranges(
    tmp_path: pathlib.Path, start: bytes, stop: bytes, limit: int, expected: list[bytes]
) -> None:
    leveldb = LevelDBShardStore(tmp_path / "shard")
    memory = MemoryShardStore()
    try:
        for shard_store in (leveldb, memory):
            shard_store.commit([(key, b"v-" + key) for key in reversed(KEYS)], 1)
            rows = list(shard_store.scan(start, stop, limit))
            values = {**{key: b"v-" + key for key in KEYS}, APPLIED_KEY: encode_applied(1)}
            assert rows == [(key, values[key]) for key in expected], type(shard_store).__name__
            reader = shard_store.snapshot_reader()
            try:
                assert list(reader.scan(start, stop, limit)) == rows
            finally:
                reader.close()
    finally:
        leveldb.close()


def test_items_are_in_byte_order(store: LevelDBShardStore) -> None:
    keys = [b"\xff", b"t\x00\x01", b"a", b"\x00", b"t\x00", b"m", b"A", b"aa", b"a\xff"]
    store.commit([(key, key * 2) for key in keys], 1)
    items = list(store.items())
    assert [k for k, _ in items] == sorted([*keys, APPLIED_KEY])
    assert all(v == k * 2 for k, v in items if k != APPLIED_KEY)


def test_snapshot_reader_is_point_in_time(store: LevelDBShardStore) -> None:
    store.commit([(b"a1", b"old"), (b"a2", b"old")], 1)
    reader = store.snapshot_reader()
    try:
        store.commit([(b"a1", b"new"), (b"a2", None), (b"a3", b"new")], 2)
        assert reader.get(b"a1") == b"old" and reader.get(b"a3") is None
        assert list(reader.scan(b"a", b"b", 10)) == [(b"a1", b"old"), (b"a2", b"old")]
    finally:
        reader.close()
    assert store.get(b"a1") == b"new"


def test_replace_all(store: LevelDBShardStore) -> None:
    store.commit([(b"old1", b"x"), (b"old2", b"y")], 9)
    store.replace_all(iter([(b"n1", b"1"), (b"n2", b"2")]), 4)  # a snapshot may be older
    assert store.applied_index == 4
    assert list(store.items()) == [(b"mapplied", encode_applied(4)), (b"n1", b"1"), (b"n2", b"2")]
    store = reopen(store)
    try:
        assert store.applied_index == 4 and store.get(b"old1") is None
        store.commit([(b"n3", b"3")], 5)
        assert store.get(b"n3") == b"3"
    finally:
        store.close()


def test_replace_all_matches_memory(store: LevelDBShardStore) -> None:
    pairs = [(b"k%05d" % i, b"v%d" % i) for i in range(2_500)]
    memory = MemoryShardStore()
    memory.commit([(b"junk", b"j")], 1)
    store.commit([(b"junk", b"j")], 1)
    memory.replace_all(pairs, 77)
    store.replace_all(pairs, 77)
    assert list(store.items()) == list(memory.items())
    assert store.applied_index == memory.applied_index == 77


def _batches() -> list[list[pb.Command]]:
    def tx(amount: int, settled: bool, now: int, rid: bytes = b"") -> pb.Command:
        body = pb.CreateTransaction(account_id=A, amount=amount, settled=settled, description="é")
        return pb.Command(request_id=rid, now_ns=now, create_transaction=body)

    return [
        [pb.Command(now_ns=T, create_account=pb.CreateAccount(account_id=A))],
        [tx(100, True, T + 1, b"r1"), tx(-30, False, T + 2)],
        [
            pb.Command(
                now_ns=T + 3,
                settle_transaction=pb.SettleTransaction(account_id=A, transaction_number=2),
            )
        ],
        [tx(100, True, T + 4, b"r1"), tx(-500, True, T + 5)],
    ]


def test_state_machine_over_leveldb_matches_memory(store: LevelDBShardStore) -> None:
    memory = MemoryShardStore()
    on_disk, in_memory = ShardStateMachine(store), ShardStateMachine(memory)
    for index, batch in enumerate(_batches(), start=1):
        assert on_disk.apply(batch, index) == in_memory.apply(batch, index)
    assert list(store.items()) == list(memory.items())
    assert digest_items(store.items()) == digest_items(memory.items())
    store = reopen(store)
    try:
        again = ShardStateMachine(store)
        assert again.applied_index == len(_batches())
        for index, batch in enumerate(_batches(), start=1):
            assert again.apply(batch, index) is None  # a journal replay after restart
        assert list(store.items()) == list(memory.items())
    finally:
        store.close()


def test_replace_all_with_another_stores_items_matches_leveldb(store: LevelDBShardStore) -> None:
    source = MemoryShardStore()
    source.commit([(b"a1", b"x"), (b"t1", b"y")], 3)
    memory = MemoryShardStore()
    memory.replace_all(source.items(), 3)
    store.replace_all(source.items(), 3)
    assert list(store.items()) == list(source.items())
    assert list(memory.items()) == list(source.items())
