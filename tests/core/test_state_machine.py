"""ShardStateMachine (ledger.replication.state_machine): exactly-once apply of command batches.

Goal: an entry at or below the applied index changes nothing; a command's ``request_id`` makes
retries return the stored result and apply once, also across batches, until the record expires
on the shard clock; a batch sees its own writes; malformed commands and junk entries yield an
error result (or nothing) and still advance the index; two stores fed the same entries end
byte-identical; ``read`` answers all three query kinds.

Method: protobuf commands (``ledger_internal_pb2``) applied to a ``MemoryShardStore`` with fixed
``now_ns``, ids and request ids; the store's ``items()`` is compared before and after to prove
"nothing changed"; results are compared as protobuf messages.
"""

from __future__ import annotations

import pytest

from ledger import limits
from ledger.pb import ledger_internal_pb2 as pb
from ledger.replication.state_machine import (
    CLOCK_KEY,
    REQUEST_PREFIX,
    ShardStateMachine,
    _time_key,
    request_id_bytes_max,
)
from ledger.storage.base import APPLIED_KEY, digest_items
from ledger.storage.memory import MemoryShardStore

T = 1_700_000_000_000_000_000
A = 0x3D2DBE651AB536A1
B = 0x0123456789ABCDEF
UNKNOWN = 0xDEADBEEFDEADBEEF
RETENTION = limits.request_retention_ns


def create_account(account_id: int, now: int = T, rid: bytes = b"", key: bytes = b"") -> pb.Command:
    return pb.Command(
        request_id=rid,
        now_ns=now,
        create_account=pb.CreateAccount(account_id=account_id, idempotency_key=key),
    )


def create_tx(
    account_id: int,
    amount: int,
    settled: bool = True,
    now: int = T,
    rid: bytes = b"",
    description: str = "",
    key: bytes = b"",
) -> pb.Command:
    body = pb.CreateTransaction(
        account_id=account_id,
        amount=amount,
        description=description,
        settled=settled,
        idempotency_key=key,
    )
    return pb.Command(request_id=rid, now_ns=now, create_transaction=body)


def settle(account_id: int, number: int, now: int = T, rid: bytes = b"") -> pb.Command:
    body = pb.SettleTransaction(account_id=account_id, transaction_number=number)
    return pb.Command(request_id=rid, now_ns=now, settle_transaction=body)


def cancel(account_id: int, number: int, now: int = T, rid: bytes = b"") -> pb.Command:
    body = pb.CancelTransaction(account_id=account_id, transaction_number=number)
    return pb.Command(request_id=rid, now_ns=now, cancel_transaction=body)


def get_account(account_id: int) -> pb.Query:
    return pb.Query(get_account=pb.GetAccount(account_id=account_id))


class Shard:
    def __init__(self) -> None:
        self.store = MemoryShardStore()
        self.machine = ShardStateMachine(self.store)

    def apply(self, *commands: pb.Command) -> list[pb.Result]:
        results = self.machine.apply(list(commands), self.store.applied_index + 1)
        assert results is not None
        assert len(results) == len(commands)
        return results

    def balances(self, account_id: int = A) -> tuple[int, int]:
        result = self.machine.read(get_account(account_id))
        assert result.WhichOneof("kind") == "account", result
        return result.account.available_balance, result.account.settled_balance

    def items(self) -> list[tuple[bytes, bytes]]:
        return list(self.store.items())


def error_reason(result: pb.Result) -> str:
    assert result.WhichOneof("kind") == "error", result
    return result.error.reason


@pytest.fixture
def shard() -> Shard:
    shard = Shard()
    shard.apply(create_account(A))
    return shard


# --- applied index -----------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [0, -1, -5])
def test_apply_at_or_below_the_applied_index_changes_nothing(shard: Shard, offset: int) -> None:
    for i in range(5):
        shard.apply(create_tx(A, 10, now=T + i))
    assert shard.store.applied_index == 6
    before = shard.items()
    index = shard.store.applied_index + offset
    assert shard.machine.apply([create_tx(A, 1000, now=T + 99)], index) is None
    encoded = pb.CommandBatch(commands=[create_tx(A, 1000)]).SerializeToString()
    assert shard.machine.apply_encoded(encoded, index) is None
    assert shard.machine.apply_encoded(b"junk", index) is None
    assert shard.items() == before
    assert shard.balances() == (50, 50)


@pytest.mark.parametrize("gap", [1, 2, 1000])
def test_apply_accepts_any_higher_index(shard: Shard, gap: int) -> None:
    index = shard.store.applied_index + gap
    assert shard.machine.apply([create_tx(A, 5)], index) is not None
    assert shard.machine.applied_index == index
    assert shard.machine.apply([create_tx(A, 5)], index) is None
    assert shard.balances() == (5, 5)


def test_empty_batch_advances_the_index(shard: Shard) -> None:
    assert shard.machine.apply([], 2) == []
    assert shard.store.applied_index == 2


# --- request ids -------------------------------------------------------------------------------


def test_request_id_dedup_across_batches(shard: Shard) -> None:
    first = shard.apply(create_tx(A, 100, rid=b"req-1", now=T + 1))[0]
    assert first.WhichOneof("kind") == "transaction"
    # The retry carries the same request id; its payload and time are ignored.
    again = shard.apply(create_tx(A, 100, rid=b"req-1", now=T + 2))[0]
    other = shard.apply(create_tx(A, 999, rid=b"req-1", now=T + 3))[0]
    assert again == first and other == first
    assert shard.balances() == (100, 100)
    assert shard.store.applied_index == 4
    listed = shard.machine.read(pb.Query(list_transactions=pb.ListTransactions(account_id=A)))
    assert len(listed.page.transactions) == 1


def test_request_id_dedup_within_one_batch(shard: Shard) -> None:
    results = shard.apply(
        create_tx(A, 100, rid=b"r", now=T + 1),
        create_tx(A, 100, rid=b"r", now=T + 1),
        create_tx(A, 100, rid=b"other", now=T + 1),
    )
    assert results[0] == results[1]
    assert results[2].transaction.transaction_number == 2
    assert shard.balances() == (200, 200)


def test_request_id_returns_the_stored_failure(shard: Shard) -> None:
    failed = shard.apply(create_tx(B, 10, rid=b"early"))[0]
    assert error_reason(failed) == "ACCOUNT_NOT_FOUND"
    shard.apply(create_account(B))
    # The call already has its outcome; a retry must not turn it into a second, different one.
    assert shard.apply(create_tx(B, 10, rid=b"early"))[0] == failed
    assert shard.balances(B) == (0, 0)


@pytest.mark.parametrize("kind", ["settle", "cancel"])
def test_request_id_dedup_for_settle_and_cancel(shard: Shard, kind: str) -> None:
    shard.apply(create_tx(A, 100), create_tx(A, -30, settled=False))
    finish = settle if kind == "settle" else cancel
    first = shard.apply(finish(A, 2, now=T + 1, rid=b"fin"))[0]
    assert first.WhichOneof("kind") == "transaction"
    again = shard.apply(finish(A, 2, now=T + 2, rid=b"fin"))[0]
    assert again == first  # not TRANSACTION_NOT_PENDING
    assert shard.balances() == ((70, 70) if kind == "settle" else (100, 100))


@pytest.mark.parametrize("length", [request_id_bytes_max + 1, 64, 1000])
def test_request_id_too_long_is_refused(shard: Shard, length: int) -> None:
    before_balances = shard.balances()
    result = shard.apply(create_tx(A, 10, rid=b"r" * length))[0]
    assert error_reason(result) == "INVALID_COMMAND"
    assert shard.balances() == before_balances
    assert shard.store.applied_index == 2


@pytest.mark.parametrize("length", [1, 16, request_id_bytes_max])
def test_request_id_up_to_the_limit_is_accepted(shard: Shard, length: int) -> None:
    rid = b"\x00" * length
    first = shard.apply(create_tx(A, 10, rid=rid))[0]
    assert shard.apply(create_tx(A, 10, rid=rid))[0] == first
    assert shard.balances() == (10, 10)


@pytest.mark.parametrize(
    ("later", "deduplicated"),
    [
        (1, True),
        (RETENTION - 1, True),
        (RETENTION, True),
        (RETENTION + 1, False),
        (100 * RETENTION, False),
    ],
)
def test_request_records_expire_on_the_shard_clock(
    shard: Shard, later: int, deduplicated: bool
) -> None:
    first = shard.apply(create_tx(A, 100, rid=b"old", now=T))[0]
    shard.apply(create_tx(A, 1, now=T + later))  # moves the shard clock; prunes expired records
    retry = shard.apply(create_tx(A, 100, rid=b"old", now=T + later))[0]
    if deduplicated:
        assert retry == first
        assert shard.balances() == (101, 101)
    else:
        assert retry != first and retry.transaction.transaction_number == 3
        assert shard.balances() == (201, 201)


def _clock(shard: Shard) -> int:
    data = shard.store.get(CLOCK_KEY)
    assert data is not None
    return int.from_bytes(data, "big", signed=True)


def test_shard_clock_is_the_largest_now_and_never_moves_backwards(shard: Shard) -> None:
    assert _clock(shard) == T
    shard.apply(create_tx(A, 1, now=T + 50), create_tx(A, 1, now=T + 20))
    assert _clock(shard) == T + 50
    shard.apply(create_tx(A, 1, now=T - 10 * RETENTION))
    assert _clock(shard) == T + 50
    first = shard.apply(create_tx(A, 1, rid=b"r", now=T + 60))[0]
    shard.apply(create_tx(A, 1, now=T - 10 * RETENTION))  # an old time prunes nothing new
    assert shard.apply(create_tx(A, 1, rid=b"r", now=T + 61))[0] == first


def test_request_record_from_a_lagging_gateway_survives_the_next_entry(shard: Shard) -> None:
    shard.apply(create_tx(A, 1, now=T + RETENTION + 1))  # gateway 1: clock ahead (or stepped)
    first = shard.apply(create_tx(A, 100, rid=b"lagging", now=T))[0]  # gateway 2, correct clock
    shard.apply(create_tx(A, 1, now=T + 1))  # any next entry, one nanosecond later
    retry = shard.apply(create_tx(A, 100, rid=b"lagging", now=T + 2))[0]  # the retry, at once
    assert retry == first
    assert shard.balances() == (102, 102)


def test_restore_forgets_what_the_machine_knew_about_request_records() -> None:
    leader, follower = Shard(), Shard()
    for shard in (leader, follower):
        shard.apply(create_account(A, now=T))
    leader.apply(create_tx(A, 100, rid=b"old", now=T))
    follower.apply(create_tx(A, 1, now=T + 3 * RETENTION))  # no request records here
    snapshot = [(k, v) for k, v in leader.items() if k != APPLIED_KEY]
    follower.machine.restore(snapshot, leader.store.applied_index)
    assert follower.items() == leader.items()
    later = create_tx(A, 1, now=T + 3 * RETENTION)  # the record "old" has expired: prune it
    assert follower.machine.apply([later], 3) == leader.machine.apply([later], 3)
    assert follower.items() == leader.items()
    assert not [k for k, _ in leader.items() if k[:1] in (b"r", b"q")]


def test_cold_and_warm_machines_prune_the_same_records() -> None:
    warm = Shard()
    cold_store = MemoryShardStore()
    entries = [
        [create_account(A, now=T)],
        [create_tx(A, 1, rid=b"a", now=T), create_tx(A, 1, rid=b"b", now=T + RETENTION)],
        [create_tx(A, 1, now=T + RETENTION + 1)],
        [create_tx(A, 1, rid=b"c", now=T + 2 * RETENTION)],
        [create_tx(A, 1, now=T + 2 * RETENTION + 1)],
        [create_tx(A, 1, rid=b"b", now=T), create_tx(A, 1, now=T + 4 * RETENTION)],
        [create_tx(A, 1, rid=b"d", now=T)],
        [create_tx(A, 1, now=T + 4 * RETENTION + 1)],
    ]
    for index, batch in enumerate(entries, start=1):
        results = warm.machine.apply(batch, index)
        assert ShardStateMachine(cold_store).apply(batch, index) == results
        assert list(cold_store.items()) == warm.items()


def test_pruning_is_bounded_per_entry_and_never_splits_an_entrys_records(shard: Shard) -> None:
    count = limits.request_prune_per_entry_max + 6
    for entry in range(2):
        shard.apply(*[create_tx(A, 1, rid=b"e%d-%03d" % (entry, i), now=T) for i in range(count)])

    def request_keys() -> list[bytes]:
        return [k for k, _ in shard.store.items() if k[:1] in (b"r", b"q")]

    assert len(request_keys()) == 2 * (count + 1)  # a record each, one time-index key per entry
    shard.apply(create_tx(A, 1, now=T + RETENTION + 1))
    assert len(request_keys()) == count + 1  # the budget stops after one entry's records
    shard.apply(create_tx(A, 1, now=T + RETENTION + 2))
    assert request_keys() == []


def test_time_index_keys_of_the_earlier_layout_are_pruned(shard: Shard) -> None:
    shard.apply(create_tx(A, 1, rid=b"new", now=T))
    old_layout = _time_key(T, b"old")  # one key per record, empty value
    shard.store.commit(
        [(old_layout, b""), (REQUEST_PREFIX + b"old", b"\x12\x00")], shard.store.applied_index + 1
    )
    shard.apply(create_tx(A, 1, now=T + RETENTION + 1))
    assert not [k for k, _ in shard.store.items() if k[:1] in (b"r", b"q")]


@pytest.mark.parametrize("now", [limits.int64_min, -1, 0, limits.int64_max])
def test_extreme_times_do_not_break_request_records(now: int) -> None:
    shard = Shard()
    first = shard.apply(create_account(A, now=now, rid=b"c"))[0]
    assert first.account.created_at_ns == now
    assert shard.apply(create_account(A, now=now, rid=b"c"))[0] == first
    shard.apply(create_tx(A, 5, now=now, rid=b"t"))
    assert shard.balances() == (5, 5)


# --- batches -----------------------------------------------------------------------------------


def test_a_batch_sees_its_own_writes() -> None:
    shard = Shard()
    results = shard.apply(
        create_account(A, now=T),
        create_tx(A, 100, now=T + 1),
        create_tx(A, -40, settled=False, now=T + 2),
        settle(A, 2, now=T + 3),
        create_tx(A, -61, now=T + 4),
        create_account(A, now=T + 5),
    )
    assert [r.WhichOneof("kind") for r in results] == [
        "account",
        "transaction",
        "transaction",
        "transaction",
        "transaction",
        "error",
    ]
    assert results[3].transaction.status == pb.STATUS_SETTLED
    assert results[4].transaction.status == pb.STATUS_INSUFFICIENT_FUNDS
    assert results[5].error.reason == "ACCOUNT_ALREADY_EXISTS"
    assert shard.balances() == (60, 60)
    assert shard.store.applied_index == 1


def test_idempotency_key_within_one_batch() -> None:
    shard = Shard()
    results = shard.apply(
        create_account(A),
        create_tx(A, 10, key=b"k"),
        create_tx(A, 10, key=b"k"),
        create_tx(A, 11, key=b"k"),
    )
    assert results[1] == results[2]
    assert results[3].error.reason == "IDEMPOTENCY_KEY_REUSED"
    assert shard.balances() == (10, 10)


@pytest.mark.parametrize(
    "message",
    [
        pb.Command(now_ns=T),
        pb.Command(),
        pb.Command(request_id=b"rid", now_ns=T),
    ],
)
def test_malformed_command_is_an_error_and_advances_the_index(
    shard: Shard, message: pb.Command
) -> None:
    before = shard.balances()
    results = shard.apply(message, create_tx(A, 7))
    assert error_reason(results[0]) == "INVALID_COMMAND"
    assert results[1].WhichOneof("kind") == "transaction"
    assert shard.store.applied_index == 2
    assert shard.balances() == (before[0] + 7, before[1] + 7)


@pytest.mark.parametrize("junk", [b"junk", b"\xff\xff\xff", b"\x0a\x05ab", b"\x0a"])
def test_apply_encoded_junk_advances_the_index_with_no_results(shard: Shard, junk: bytes) -> None:
    before = [(k, v) for k, v in shard.items() if not k.startswith(b"m")]
    assert shard.machine.apply_encoded(junk, 2) == b""
    assert pb.ResultBatch.FromString(b"") == pb.ResultBatch()
    assert shard.store.applied_index == 2
    assert [(k, v) for k, v in shard.items() if not k.startswith(b"m")] == before


def test_apply_encoded_matches_apply() -> None:
    commands = [create_account(A), create_tx(A, 10, rid=b"x"), create_tx(UNKNOWN, 1)]
    direct, encoded = Shard(), Shard()
    results = direct.machine.apply(commands, 1)
    data = encoded.machine.apply_encoded(pb.CommandBatch(commands=commands).SerializeToString(), 1)
    assert data is not None
    assert list(pb.ResultBatch.FromString(data).results) == results
    assert encoded.items() == direct.items()


# --- determinism -------------------------------------------------------------------------------


def _batches() -> list[list[pb.Command]]:
    return [
        [create_account(A, T, b"ra", b"acct-key"), create_account(B, T + 1)],
        [
            create_tx(A, 500, now=T + 2, rid=b"t1"),
            create_tx(B, 50, settled=False, now=T + 2, key=b"k"),
        ],
        [
            create_tx(A, -100, settled=False, now=T + 3, description="héllo"),
            settle(B, 1, now=T + 1),
        ],
        [cancel(A, 2, now=T + 4), create_tx(A, -1000, now=T + 5), pb.Command(now_ns=T + 6)],
        [
            create_tx(A, 500, now=T + 7, rid=b"t1"),
            create_tx(B, 50, settled=False, now=T + 8, key=b"k"),
        ],
        [create_tx(A, 1, now=T + RETENTION + 10)],  # prunes the request records
        [settle(A, 99, now=T), create_account(A, T, key=b"acct-key"), create_account(A, T)],
    ]


def test_two_stores_fed_the_same_batches_are_identical() -> None:
    first, second = Shard(), Shard()
    for index, batch in enumerate(_batches(), start=1):
        results_1 = first.machine.apply(batch, index)
        results_2 = second.machine.apply(batch, index)
        assert results_1 == results_2
        assert first.items() == second.items()
    assert digest_items(first.store.items()) == digest_items(second.store.items())
    assert first.balances() == (501, 501)  # 500, the retry of t1 deduplicated, then 1
    assert first.balances(B) == (50, 50)


def test_digest_ignores_meta_keys_and_sees_data() -> None:
    first, second = Shard(), Shard()
    first.machine.apply([create_account(A)], 1)
    second.machine.apply([create_account(A)], 7)  # a different applied index
    assert first.items() != second.items()
    assert digest_items(first.store.items()) == digest_items(second.store.items())
    second.apply(create_tx(A, 1))
    assert digest_items(first.store.items()) != digest_items(second.store.items())


# --- reads -------------------------------------------------------------------------------------


def test_read_all_query_kinds(shard: Shard) -> None:
    shard.apply(*[create_tx(A, i + 1, now=T + i, description=f"d{i}") for i in range(5)])
    account = shard.machine.read(get_account(A))
    assert account.account == pb.AccountRecord(
        account_id=A,
        available_balance=15,
        settled_balance=15,
        created_at_ns=T,
        updated_at_ns=T + 4,
        transaction_count=5,
    )
    one = shard.machine.read(
        pb.Query(get_transaction=pb.GetTransaction(account_id=A, transaction_number=3))
    )
    assert one.transaction == pb.TransactionRecord(
        account_id=A,
        transaction_number=3,
        amount=3,
        description="d2",
        status=pb.STATUS_SETTLED,
        created_at_ns=T + 2,
        updated_at_ns=T + 2,
    )
    first = shard.machine.read(
        pb.Query(list_transactions=pb.ListTransactions(account_id=A, page_size=3))
    )
    assert [t.transaction_number for t in first.page.transactions] == [1, 2, 3]
    assert first.page.next_page_token
    rest = shard.machine.read(
        pb.Query(
            list_transactions=pb.ListTransactions(
                account_id=A, page_size=3, page_token=first.page.next_page_token
            )
        )
    )
    assert [t.transaction_number for t in rest.page.transactions] == [4, 5]
    assert rest.page.next_page_token == ""


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        (get_account(UNKNOWN), "ACCOUNT_NOT_FOUND"),
        (
            pb.Query(get_transaction=pb.GetTransaction(account_id=A, transaction_number=9)),
            "TRANSACTION_NOT_FOUND",
        ),
        (
            pb.Query(get_transaction=pb.GetTransaction(account_id=A, transaction_number=0)),
            "TRANSACTION_NOT_FOUND",
        ),
        (
            pb.Query(get_transaction=pb.GetTransaction(account_id=UNKNOWN, transaction_number=1)),
            "TRANSACTION_NOT_FOUND",
        ),
        (pb.Query(list_transactions=pb.ListTransactions(account_id=UNKNOWN)), "ACCOUNT_NOT_FOUND"),
        (
            pb.Query(list_transactions=pb.ListTransactions(account_id=A, page_size=-1)),
            "INVALID_PAGE_SIZE",
        ),
        (
            pb.Query(list_transactions=pb.ListTransactions(account_id=A, page_token="junk")),
            "INVALID_PAGE_TOKEN",
        ),
        (
            pb.Query(list_transactions=pb.ListTransactions(account_id=A, page_token="A" * 10_000)),
            "INVALID_PAGE_TOKEN",
        ),
        (pb.Query(), "INVALID_COMMAND"),
    ],
)
def test_read_errors(shard: Shard, query: pb.Query, reason: str) -> None:
    before = shard.items()
    assert error_reason(shard.machine.read(query)) == reason
    assert shard.items() == before


def test_error_results_carry_metadata(shard: Shard) -> None:
    result = shard.apply(settle(A, 5))[0]
    assert result.error.reason == "TRANSACTION_NOT_FOUND"
    assert dict(result.error.metadata) == {"transaction_id": f"{A:016x}{5:016x}"}
    assert result.error.message == "transaction not found"


def test_pruning_keeps_up_with_large_entries(shard: Shard) -> None:
    """A budget of twice the entry's commands: records never pile up faster than they go."""
    per_entry = 500
    for entry in range(3):
        shard.apply(
            *[create_tx(A, 1, rid=b"e%d-%04d" % (entry, n), now=T) for n in range(per_entry)]
        )

    def request_keys() -> int:
        return sum(1 for k, _ in shard.store.items() if k[:1] in (b"r", b"q"))

    assert request_keys() == 3 * (per_entry + 1)
    shard.apply(*[create_tx(A, 1, now=T + RETENTION + 1) for _ in range(per_entry)])
    assert request_keys() == per_entry + 1  # a budget of 1,000 records: two entries' worth
    shard.apply(*[create_tx(A, 1, now=T + RETENTION + 2) for _ in range(per_entry)])
    assert request_keys() == 0
