"""AccountsCore against the ledger's rules, transition by transition and error by error.

Goal: every state transition and every refusal the spec names for the core (create/get account,
create/settle/cancel transaction, idempotency, the updated_at max rule, ListTransactions paging),
with exact balances, statuses, timestamps and Failure reasons and metadata.

Method: a real ``AccountsCore`` over a ``MemoryShardStore``; each ``Applied`` is committed with
``store.commit(writes, store.applied_index + 1)`` as the replication layer does. Times and ids
are fixed constants, no clock, no randomness. "Nothing changes" is checked by comparing every
data pair of the store (meta keys excluded) before and after the refused command. Invalid cases
come in tables at least as long as the valid ones.
"""

from __future__ import annotations

import base64
import struct

import pytest

from ledger import limits
from ledger.core import (
    Account,
    AccountsCore,
    Applied,
    CancelTransaction,
    CreateAccount,
    CreateTransaction,
    Failure,
    GetAccount,
    GetTransaction,
    ListTransactions,
    Reason,
    SettleTransaction,
    Status,
    Transaction,
    TransactionPage,
)
from ledger.core.pages import encode_page_token
from ledger.storage.base import META_PREFIX
from ledger.storage.memory import MemoryShardStore

T = 1_700_000_000_000_000_000  # a fixed "now" in Unix nanoseconds
A = 0x3D2DBE651AB536A1
B = 0x0123456789ABCDEF
UNKNOWN = 0xDEADBEEFDEADBEEF
I64_MAX = limits.int64_max
I64_MIN = limits.int64_min


class Ledger:
    """An AccountsCore over a memory store, committing each command like the state machine."""

    def __init__(self) -> None:
        self.store = MemoryShardStore()
        self.core = AccountsCore(self.store)

    def run(self, command: object) -> Applied:
        applied = self.core.execute(command)  # type: ignore[arg-type]
        self.store.commit(applied.writes, self.store.applied_index + 1)
        return applied

    def ok(self, command: object) -> Account | Transaction:
        applied = self.run(command)
        assert not isinstance(applied.result, Failure), applied.result
        assert applied.writes, "a successful new effect must write something"
        return applied.result

    def account(self, account_id: int = A) -> Account:
        result = self.core.get_account(account_id)
        assert isinstance(result, Account), result
        return result

    def transaction(self, number: int, account_id: int = A) -> Transaction:
        result = self.core.get_transaction(account_id, number)
        assert isinstance(result, Transaction), result
        return result

    def balances(self, account_id: int = A) -> tuple[int, int]:
        account = self.account(account_id)
        return account.available_balance, account.settled_balance

    def data(self) -> list[tuple[bytes, bytes]]:
        return [(k, v) for k, v in self.store.items() if not k.startswith(META_PREFIX)]

    def tx(
        self,
        amount: int,
        settled: bool = True,
        now: int = T,
        description: str = "",
        key: bytes = b"",
        account_id: int = A,
    ) -> Applied:
        return self.run(CreateTransaction(account_id, amount, description, settled, now, key))

    def page(self, account_id: int = A, page_size: int = 0, token: str = "") -> TransactionPage:
        result = self.core.list_transactions(ListTransactions(account_id, page_size, token))
        assert isinstance(result, TransactionPage), result
        return result


def refused(applied_or_result: object, reason: Reason, **metadata: str) -> Failure:
    """Assert a Failure with ``reason`` whose metadata holds at least ``metadata``."""
    result = (
        applied_or_result.result if isinstance(applied_or_result, Applied) else applied_or_result
    )
    assert isinstance(result, Failure), result
    assert result.reason is reason, result
    assert result.message and not result.message.startswith(reason.value), result.message
    held = dict(result.metadata)
    for key, value in metadata.items():
        assert held.get(key) == value, (key, held)
    if isinstance(applied_or_result, Applied):
        assert applied_or_result.writes == (), "a refusal must not write"
    return result


def hex_id(account_id: int) -> str:
    return f"{account_id:016x}"


def hex_tx(account_id: int, number: int) -> str:
    return f"{account_id:016x}{number:016x}"


@pytest.fixture
def ledger() -> Ledger:
    ledger = Ledger()
    ledger.ok(CreateAccount(A, T))
    return ledger


def funded(amount: int) -> Ledger:
    """A ledger whose account A holds ``amount`` settled (available == settled == amount)."""
    ledger = Ledger()
    ledger.ok(CreateAccount(A, T))
    if amount:
        assert ledger.tx(amount, True, T).result.status == Status.SETTLED
    return ledger


# --- CreateAccount / GetAccount ----------------------------------------------------------------


@pytest.mark.parametrize("key", [b"", b"k", b"x" * limits.idempotency_key_bytes_max])
def test_create_account_starts_at_zero(key: bytes) -> None:
    ledger = Ledger()
    account = ledger.ok(CreateAccount(A, T, key))
    assert account == Account(A, 0, 0, T, T, 0, key)
    assert ledger.account() == account


@pytest.mark.parametrize(
    ("first_key", "second_key"),
    [(b"", b""), (b"", b"k"), (b"k", b""), (b"k", b"other"), (b"k", b"K")],
)
def test_create_account_on_existing_id_is_refused_and_changes_nothing(
    first_key: bytes, second_key: bytes
) -> None:
    ledger = Ledger()
    ledger.ok(CreateAccount(A, T, first_key))
    ledger.tx(70, True, T + 1)
    before = ledger.data()
    refused(
        ledger.run(CreateAccount(A, T + 2, second_key)),
        Reason.ACCOUNT_ALREADY_EXISTS,
        account_id=hex_id(A),
    )
    assert ledger.data() == before
    assert ledger.balances() == (70, 70)


@pytest.mark.parametrize("key", [b"k", b"x" * limits.idempotency_key_bytes_max])
def test_create_account_repeat_with_same_key_returns_the_account_and_writes_nothing(
    key: bytes,
) -> None:
    ledger = Ledger()
    created = ledger.ok(CreateAccount(A, T, key))
    again = ledger.run(CreateAccount(A, T + 5, key))
    assert again.result == created and again.writes == ()
    ledger.tx(30, True, T + 6)
    later = ledger.run(CreateAccount(A, T + 7, key))
    assert later.writes == ()
    assert later.result == ledger.account()  # the account as it is now
    assert (later.result.available_balance, later.result.created_at_ns) == (30, T)


@pytest.mark.parametrize("length", [limits.idempotency_key_bytes_max + 1, 200, 4096])
def test_create_account_key_too_long(length: int) -> None:
    ledger = Ledger()
    refused(ledger.run(CreateAccount(A, T, b"k" * length)), Reason.IDEMPOTENCY_KEY_TOO_LONG)
    refused(ledger.core.get_account(A), Reason.ACCOUNT_NOT_FOUND)
    assert ledger.data() == []


@pytest.mark.parametrize("account_id", [0, 1, UNKNOWN, limits.uint64_max])
def test_get_account_unknown(ledger: Ledger, account_id: int) -> None:
    refused(
        ledger.core.get_account(account_id), Reason.ACCOUNT_NOT_FOUND, account_id=hex_id(account_id)
    )
    refused(
        ledger.core.query(GetAccount(account_id)),
        Reason.ACCOUNT_NOT_FOUND,
        account_id=hex_id(account_id),
    )


@pytest.mark.parametrize("account_id", [0, 1, limits.uint64_max])
def test_extreme_account_ids_work(account_id: int) -> None:
    ledger = Ledger()
    ledger.ok(CreateAccount(account_id, T))
    ledger.tx(5, True, T, account_id=account_id)
    assert ledger.balances(account_id) == (5, 5)
    assert [t.amount for t in ledger.page(account_id).transactions] == [5]


# --- CreateTransaction: shape and existence ----------------------------------------------------


@pytest.mark.parametrize(
    ("account_id", "amount", "description", "key", "reason"),
    [
        (UNKNOWN, 10, "", b"", Reason.ACCOUNT_NOT_FOUND),
        (UNKNOWN, -10, "", b"k", Reason.ACCOUNT_NOT_FOUND),
        (A, 0, "", b"", Reason.INVALID_AMOUNT),
        (A, 0, "", b"k", Reason.INVALID_AMOUNT),
        (A, I64_MAX + 1, "", b"", Reason.INVALID_AMOUNT),
        (A, I64_MIN - 1, "", b"", Reason.INVALID_AMOUNT),
        (A, 10, "é" * 513, b"", Reason.DESCRIPTION_TOO_LONG),  # 1026 bytes
        (A, 10, "a" * 1025, b"", Reason.DESCRIPTION_TOO_LONG),
        (A, 10, "a" + "é" * 512, b"", Reason.DESCRIPTION_TOO_LONG),  # 1025 bytes, 513 chars
        (A, 10, "€" * 342, b"", Reason.DESCRIPTION_TOO_LONG),  # 1026 bytes, 342 chars
        (A, 10, "😀" * 257, b"", Reason.DESCRIPTION_TOO_LONG),  # 1028 bytes, 257 chars
        (A, 10, "", b"k" * 129, Reason.IDEMPOTENCY_KEY_TOO_LONG),
    ],
)
def test_create_transaction_refusals_change_nothing(
    ledger: Ledger, account_id: int, amount: int, description: str, key: bytes, reason: Reason
) -> None:
    ledger.tx(100, True, T)
    before = ledger.data()
    failure = refused(ledger.tx(amount, True, T + 1, description, key, account_id), reason)
    if reason is Reason.ACCOUNT_NOT_FOUND:
        assert dict(failure.metadata)["account_id"] == hex_id(account_id)
    assert ledger.data() == before
    assert ledger.account().transaction_count == 1


@pytest.mark.parametrize(
    "description",
    ["", "x", "é" * 512, "a" * 1024, "€" * 341 + "a", "😀" * 256, "line\nbreak\x00nul"],
)
def test_create_transaction_description_up_to_1024_bytes(ledger: Ledger, description: str) -> None:
    assert len(description.encode()) <= 1024
    created = ledger.tx(5, True, T + 1, description).result
    assert isinstance(created, Transaction)
    assert ledger.transaction(created.transaction_number).description == description


# --- CreateTransaction: balances ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "amount", "settled", "status", "balances"),
    [
        (0, 100, True, Status.SETTLED, (100, 100)),
        (0, 100, False, Status.PENDING, (0, 0)),  # pending top-ups count in neither balance
        (50, 100, True, Status.SETTLED, (150, 150)),
        (50, 100, False, Status.PENDING, (50, 50)),
        (100, -30, True, Status.SETTLED, (70, 70)),
        (100, -30, False, Status.PENDING, (70, 100)),  # a hold moves available only
        (100, -100, True, Status.SETTLED, (0, 0)),  # available exactly reaching 0 is allowed
        (100, -100, False, Status.PENDING, (0, 100)),
        (0, I64_MAX, True, Status.SETTLED, (I64_MAX, I64_MAX)),
        (I64_MAX, -I64_MAX, True, Status.SETTLED, (0, 0)),
        (I64_MAX, -I64_MAX, False, Status.PENDING, (0, I64_MAX)),
    ],
)
def test_create_transaction_balances(
    start: int, amount: int, settled: bool, status: Status, balances: tuple[int, int]
) -> None:
    ledger = funded(start)
    number = ledger.account().transaction_count + 1
    applied = ledger.tx(amount, settled, T + 10, "desc")
    assert applied.result == Transaction(A, number, amount, "desc", status, T + 10, T + 10)
    assert ledger.transaction(number) == applied.result
    assert ledger.balances() == balances
    account = ledger.account()
    assert (account.created_at_ns, account.updated_at_ns, account.transaction_count) == (
        T,
        T + 10,
        number,
    )


@pytest.mark.parametrize(
    ("start", "amount", "settled"),
    [
        (0, -1, True),
        (0, -1, False),
        (100, -101, True),
        (100, -101, False),
        (0, I64_MIN, True),
        (I64_MAX, I64_MIN, False),  # I64_MAX + I64_MIN = -1
    ],
)
def test_insufficient_funds_is_stored_and_moves_only_updated_at(
    start: int, amount: int, settled: bool
) -> None:
    ledger = funded(start)
    ledger.tx(10, False, T + 1)  # a pending top-up does not help
    before = ledger.account()
    applied = ledger.tx(amount, settled, T + 20, "too much")
    number = before.transaction_count + 1
    expected = Transaction(A, number, amount, "too much", Status.INSUFFICIENT_FUNDS, T + 20, T + 20)
    assert applied.result == expected  # an OK result, not a Failure
    assert ledger.transaction(number) == expected
    after = ledger.account()
    assert (after.available_balance, after.settled_balance) == (
        before.available_balance,
        before.settled_balance,
    )
    assert after.updated_at_ns == T + 20
    assert after.transaction_count == number


def test_insufficient_funds_counts_held_amounts() -> None:
    ledger = funded(100)
    ledger.tx(-60, False, T + 1)  # available 40
    assert ledger.tx(-41, True, T + 2).result.status == Status.INSUFFICIENT_FUNDS
    assert ledger.tx(-40, True, T + 3).result.status == Status.SETTLED
    assert ledger.balances() == (0, 60)


@pytest.mark.parametrize(
    ("start", "amount"),
    [(I64_MAX, 1), (I64_MAX - 5, 6), (1, I64_MAX), (I64_MAX // 2 + 1, I64_MAX // 2 + 1)],
)
def test_overflow_on_settled_top_up_changes_nothing(start: int, amount: int) -> None:
    ledger = funded(start)
    before = ledger.data()
    refused(ledger.tx(amount, True, T + 1), Reason.BALANCE_OVERFLOW, account_id=hex_id(A))
    assert ledger.data() == before
    assert ledger.balances() == (start, start)


@pytest.mark.parametrize(("start", "amount"), [(I64_MAX - 5, 5), (0, I64_MAX), (I64_MAX - 1, 1)])
def test_top_up_reaching_int64_max_exactly_is_allowed(start: int, amount: int) -> None:
    ledger = funded(start)
    assert ledger.tx(amount, True, T + 1).result.status == Status.SETTLED
    assert ledger.balances() == (I64_MAX, I64_MAX)


def test_pending_top_up_that_would_overflow_is_accepted_but_cannot_be_settled() -> None:
    ledger = funded(I64_MAX - 5)
    pending = ledger.tx(10, False, T + 1).result
    assert pending.status == Status.PENDING
    before = ledger.data()
    refused(
        ledger.run(SettleTransaction(A, pending.transaction_number, T + 2)),
        Reason.BALANCE_OVERFLOW,
        account_id=hex_id(A),
    )
    assert ledger.data() == before
    assert ledger.transaction(pending.transaction_number).status == Status.PENDING
    cancelled = ledger.ok(CancelTransaction(A, pending.transaction_number, T + 3))
    assert cancelled.status == Status.CANCELLED
    assert ledger.balances() == (I64_MAX - 5, I64_MAX - 5)


# --- CreateTransaction: idempotency ------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "settled", "status"),
    [
        (25, True, Status.SETTLED),
        (25, False, Status.PENDING),
        (-5, True, Status.SETTLED),
        (-5, False, Status.PENDING),
        (-500, False, Status.INSUFFICIENT_FUNDS),  # stored, so replayed too
    ],
)
@pytest.mark.parametrize("key", [b"k", b"\x00", b"x" * 128])
def test_idempotent_repeat_returns_the_same_transaction_and_writes_nothing(
    key: bytes, amount: int, settled: bool, status: Status
) -> None:
    ledger = funded(100)
    first = ledger.tx(amount, settled, T + 1, "coffee", key).result
    assert isinstance(first, Transaction) and first.status == status
    before = ledger.data()
    again = ledger.tx(amount, settled, T + 2, "coffee", key)
    assert again.result == first
    assert again.writes == ()
    assert ledger.data() == before
    assert ledger.account().updated_at_ns == T + 1
    assert ledger.account().transaction_count == first.transaction_number


def test_idempotent_repeat_returns_the_current_status() -> None:
    ledger = funded(100)
    first = ledger.tx(-10, False, T + 1, "hold", b"key").result
    ledger.ok(SettleTransaction(A, first.transaction_number, T + 2))
    again = ledger.tx(-10, False, T + 3, "hold", b"key")
    assert again.writes == ()
    assert again.result == ledger.transaction(first.transaction_number)
    assert again.result.status == Status.SETTLED
    assert ledger.balances() == (90, 90)


@pytest.mark.parametrize(
    ("amount", "description", "settled"),
    [
        (11, "coffee", True),  # amount
        (-10, "coffee", True),  # sign
        (10, "Coffee", True),  # description
        (10, "", True),
        (10, "coffee ", True),
        (10, "coffee", False),  # settled flag
    ],
)
def test_idempotency_key_reused_with_another_payload(
    amount: int, description: str, settled: bool
) -> None:
    ledger = funded(100)
    first = ledger.tx(10, True, T + 1, "coffee", b"key").result
    before = ledger.data()
    refused(
        ledger.tx(amount, settled, T + 2, description, b"key"),
        Reason.IDEMPOTENCY_KEY_REUSED,
        account_id=hex_id(A),
        transaction_id=hex_tx(A, first.transaction_number),
    )
    assert ledger.data() == before


def test_idempotency_key_is_scoped_to_the_account() -> None:
    ledger = funded(100)
    ledger.ok(CreateAccount(B, T))
    on_a = ledger.tx(10, True, T + 1, "x", b"shared", A).result
    on_b = ledger.tx(10, True, T + 2, "x", b"shared", B).result
    assert (on_a.account_id, on_b.account_id) == (A, B)
    assert on_b.transaction_number == 1  # a new transaction, not a replay of A's
    assert ledger.balances(B) == (10, 10)
    other = ledger.tx(99, True, T + 3, "y", b"shared", B)  # reused on B, independent of A
    refused(other, Reason.IDEMPOTENCY_KEY_REUSED, transaction_id=hex_tx(B, 1))
    assert ledger.tx(10, True, T + 4, "x", b"shared", A).result == on_a


def test_keys_differ_from_no_key() -> None:
    ledger = funded(0)
    first = ledger.tx(10, True, T + 1, "x").result
    second = ledger.tx(10, True, T + 2, "x").result  # no key: a second, independent top-up
    keyed = ledger.tx(10, True, T + 3, "x", b"a").result
    other_key = ledger.tx(10, True, T + 4, "x", b"b").result
    assert [t.transaction_number for t in (first, second, keyed, other_key)] == [1, 2, 3, 4]
    assert ledger.balances() == (40, 40)


def test_failed_keyed_create_leaves_the_key_unused() -> None:
    ledger = funded(I64_MAX)
    refused(ledger.tx(1, True, T + 1, "", b"k"), Reason.BALANCE_OVERFLOW)
    ledger.ok(CreateTransaction(A, -10, "", True, T + 2))
    assert ledger.tx(1, True, T + 3, "", b"k").result.status == Status.SETTLED


# --- Settle / Cancel ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "finish", "status", "held", "finished"),
    [
        (100, SettleTransaction, Status.SETTLED, (1000, 1000), (1100, 1100)),
        (100, CancelTransaction, Status.CANCELLED, (1000, 1000), (1000, 1000)),
        (-100, SettleTransaction, Status.SETTLED, (900, 1000), (900, 900)),
        (-100, CancelTransaction, Status.CANCELLED, (900, 1000), (1000, 1000)),
        (-1000, SettleTransaction, Status.SETTLED, (0, 1000), (0, 0)),
        (-1000, CancelTransaction, Status.CANCELLED, (0, 1000), (1000, 1000)),
    ],
)
def test_settle_and_cancel_balance_effects(
    amount: int, finish: type, status: Status, held: tuple[int, int], finished: tuple[int, int]
) -> None:
    ledger = funded(1000)
    pending = ledger.tx(amount, False, T + 1, "p").result
    assert pending.status == Status.PENDING
    assert ledger.balances() == held
    done = ledger.ok(finish(A, pending.transaction_number, T + 2))
    assert done == Transaction(A, pending.transaction_number, amount, "p", status, T + 1, T + 2)
    assert ledger.transaction(pending.transaction_number) == done
    assert ledger.balances() == finished
    assert ledger.account().updated_at_ns == T + 2


def _make_not_pending(ledger: Ledger, how: str) -> int:
    if how == "created settled":
        return ledger.tx(5, True, T + 1).result.transaction_number
    if how == "settled":
        number = ledger.tx(-5, False, T + 1).result.transaction_number
        ledger.ok(SettleTransaction(A, number, T + 2))
        return number
    if how == "cancelled":
        number = ledger.tx(5, False, T + 1).result.transaction_number
        ledger.ok(CancelTransaction(A, number, T + 2))
        return number
    assert how == "insufficient funds"
    return ledger.tx(-10_000, False, T + 1).result.transaction_number


@pytest.mark.parametrize("finish", [SettleTransaction, CancelTransaction])
@pytest.mark.parametrize("how", ["created settled", "settled", "cancelled", "insufficient funds"])
def test_finishing_a_non_pending_transaction(how: str, finish: type) -> None:
    ledger = funded(100)
    number = _make_not_pending(ledger, how)
    status = ledger.transaction(number).status
    before = ledger.data()
    refused(
        ledger.run(finish(A, number, T + 3)),
        Reason.TRANSACTION_NOT_PENDING,
        transaction_id=hex_tx(A, number),
        status=status.name,
    )
    assert ledger.data() == before


@pytest.mark.parametrize("finish", [SettleTransaction, CancelTransaction])
@pytest.mark.parametrize("number", [0, 2, 99, limits.uint64_max])
def test_finishing_an_unknown_transaction(finish: type, number: int) -> None:
    ledger = funded(100)  # holds transaction 1
    before = ledger.data()
    refused(
        ledger.run(finish(A, number, T + 1)),
        Reason.TRANSACTION_NOT_FOUND,
        transaction_id=hex_tx(A, number),
    )
    refused(
        ledger.core.get_transaction(A, number),
        Reason.TRANSACTION_NOT_FOUND,
        transaction_id=hex_tx(A, number),
    )
    assert ledger.data() == before


@pytest.mark.parametrize("finish", [SettleTransaction, CancelTransaction])
@pytest.mark.parametrize("number", [1, 0])
def test_finishing_on_an_unknown_account(finish: type, number: int) -> None:
    ledger = funded(100)
    before = ledger.data()
    refused(
        ledger.run(finish(UNKNOWN, number, T + 1)),
        Reason.ACCOUNT_NOT_FOUND,
        account_id=hex_id(UNKNOWN),
    )
    assert ledger.data() == before


def test_transaction_numbers_are_per_account_and_in_creation_order() -> None:
    ledger = funded(0)
    ledger.ok(CreateAccount(B, T))
    numbers = [ledger.tx(1, True, T + i).result.transaction_number for i in range(3)]
    assert numbers == [1, 2, 3]
    assert ledger.tx(1, True, T, account_id=B).result.transaction_number == 1
    assert ledger.core.query(GetTransaction(A, 2)) == ledger.transaction(2)


# --- updated_at never moves backwards ----------------------------------------------------------


def test_updated_at_takes_the_max_when_now_goes_backwards() -> None:
    ledger = Ledger()
    ledger.ok(CreateAccount(A, T + 1000))
    top_up = ledger.tx(100, True, T + 500).result  # the gateway clock stepped back
    assert (top_up.created_at_ns, top_up.updated_at_ns) == (T + 500, T + 500)
    assert ledger.account().updated_at_ns == T + 1000
    hold = ledger.tx(-10, False, T + 2000).result
    assert ledger.account().updated_at_ns == T + 2000
    settled = ledger.ok(SettleTransaction(A, hold.transaction_number, T + 1500))
    assert (settled.created_at_ns, settled.updated_at_ns) == (T + 2000, T + 2000)
    assert ledger.account().updated_at_ns == T + 2000
    insufficient = ledger.tx(-10_000, True, T + 100).result
    assert insufficient.status == Status.INSUFFICIENT_FUNDS
    assert ledger.account().updated_at_ns == T + 2000
    pending = ledger.tx(5, False, T + 3000).result
    cancelled = ledger.ok(CancelTransaction(A, pending.transaction_number, T))
    assert cancelled.updated_at_ns == T + 3000
    account = ledger.account()
    assert (account.created_at_ns, account.updated_at_ns) == (T + 1000, T + 3000)


def test_settle_and_cancel_stamp_now_on_both_records() -> None:
    ledger = funded(100)
    first = ledger.tx(-10, False, T + 1).result
    second = ledger.tx(10, False, T + 2).result
    assert ledger.ok(SettleTransaction(A, first.transaction_number, T + 50)).updated_at_ns == T + 50
    assert ledger.account().updated_at_ns == T + 50
    assert (
        ledger.ok(CancelTransaction(A, second.transaction_number, T + 60)).updated_at_ns == T + 60
    )
    assert ledger.account().updated_at_ns == T + 60


# --- The reference scenario --------------------------------------------------------------------


def test_reference_scenario() -> None:
    ledger = Ledger()
    ledger.ok(CreateAccount(A, T))
    top_up = ledger.tx(100, False, T + 1, "top up").result
    assert (top_up.transaction_number, top_up.status) == (1, Status.PENDING)
    assert ledger.balances() == (0, 0)
    ledger.ok(SettleTransaction(A, top_up.transaction_number, T + 2))
    assert ledger.balances() == (100, 100)
    purchase = ledger.tx(-10, False, T + 3, "purchase").result
    assert (purchase.transaction_number, purchase.status) == (2, Status.PENDING)
    assert ledger.balances() == (90, 100)
    ledger.ok(SettleTransaction(A, purchase.transaction_number, T + 4))
    assert ledger.balances() == (90, 90)
    big = ledger.tx(-1000, False, T + 5, "big purchase").result
    assert (big.transaction_number, big.status) == (3, Status.INSUFFICIENT_FUNDS)
    assert ledger.balances() == (90, 90)
    assert [(t.transaction_number, t.status) for t in ledger.page().transactions] == [
        (1, Status.SETTLED),
        (2, Status.SETTLED),
        (3, Status.INSUFFICIENT_FUNDS),
    ]


# --- ListTransactions --------------------------------------------------------------------------


def many(count: int, account_id: int = A) -> Ledger:
    ledger = Ledger()
    ledger.ok(CreateAccount(account_id, T))
    for i in range(count):
        ledger.tx(i + 1, True, T + i, account_id=account_id)
    return ledger


def test_list_in_creation_order_with_current_status() -> None:
    ledger = funded(0)
    ledger.ok(CreateAccount(B, T))
    ledger.tx(7, True, T, account_id=B)  # another account's rows sit next to A's
    pending = ledger.tx(50, False, T + 1).result
    hold = ledger.tx(-1, False, T + 2).result  # INSUFFICIENT_FUNDS: nothing available yet
    ledger.ok(SettleTransaction(A, pending.transaction_number, T + 3))
    later_hold = ledger.tx(-5, False, T + 4).result
    ledger.ok(CancelTransaction(A, later_hold.transaction_number, T + 5))
    page = ledger.page()
    assert page.next_page_token == ""
    assert [(t.transaction_number, t.amount, t.status) for t in page.transactions] == [
        (1, 50, Status.SETTLED),
        (2, -1, Status.INSUFFICIENT_FUNDS),
        (3, -5, Status.CANCELLED),
    ]
    assert page.transactions[1] == ledger.transaction(hold.transaction_number)
    assert all(t.account_id == A for t in page.transactions)
    assert ledger.core.query(ListTransactions(A)) == page


def test_list_empty_account() -> None:
    assert funded(0).page() == TransactionPage((), "")


def test_list_default_page_size_is_100() -> None:
    ledger = many(150)
    first = ledger.page()
    assert [t.transaction_number for t in first.transactions] == list(range(1, 101))
    assert first.next_page_token
    second = ledger.page(token=first.next_page_token)
    assert [t.transaction_number for t in second.transactions] == list(range(101, 151))
    assert second.next_page_token == ""


@pytest.mark.parametrize("page_size", [1001, 5000, 2**31 - 1])
def test_list_page_size_is_clamped_to_1000(page_size: int) -> None:
    ledger = many(1001)
    first = ledger.page(page_size=page_size)
    assert len(first.transactions) == limits.page_size_max == 1000
    assert first.next_page_token
    second = ledger.page(page_size=page_size, token=first.next_page_token)
    assert [t.transaction_number for t in second.transactions] == [1001]
    assert second.next_page_token == ""


@pytest.mark.parametrize("page_size", [-1, -2, -1000, -(2**31)])
def test_list_negative_page_size(page_size: int) -> None:
    refused(
        many(3).core.list_transactions(ListTransactions(A, page_size)), Reason.INVALID_PAGE_SIZE
    )


@pytest.mark.parametrize(
    ("count", "page_size"), [(0, 1), (1, 1), (10, 5), (11, 5), (23, 7), (250, 0), (30, 1000)]
)
def test_paging_covers_everything_exactly_once(count: int, page_size: int) -> None:
    ledger = many(count)
    seen: list[int] = []
    token = ""
    pages = 0
    while True:
        page = ledger.page(page_size=page_size, token=token)
        pages += 1
        assert len(page.transactions) <= (page_size or 100)
        seen.extend(t.transaction_number for t in page.transactions)
        if not page.next_page_token:
            break
        assert len(page.transactions) == (page_size or 100)  # only the last page is short
        token = page.next_page_token
    assert seen == list(range(1, count + 1))
    size = page_size or 100
    assert pages == max(1, -(-count // size))  # no trailing empty page


def test_page_token_sees_transactions_created_after_it() -> None:
    ledger = many(3)
    first = ledger.page(page_size=2)
    ledger.tx(4, True, T + 10)
    rest = ledger.page(page_size=2, token=first.next_page_token)
    assert [t.transaction_number for t in rest.transactions] == [3, 4]
    assert rest.next_page_token == ""


def test_page_token_for_another_account() -> None:
    ledger = many(5)
    ledger.ok(CreateAccount(B, T))
    ledger.tx(1, True, T, account_id=B)
    token = ledger.page(page_size=2).next_page_token
    assert token
    refused(ledger.core.list_transactions(ListTransactions(B, 2, token)), Reason.INVALID_PAGE_TOKEN)
    refused(
        ledger.core.list_transactions(ListTransactions(UNKNOWN, 2, token)),
        Reason.INVALID_PAGE_TOKEN,
    )


def _b64(raw: bytes, pad: bool = False) -> str:
    text = base64.urlsafe_b64encode(raw).decode()
    return text if pad else text.rstrip("=")


_GOOD = encode_page_token(A, 2)
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# 17 bytes take 23 chars, whose last char carries 2 unused low bits: set one, same bytes.
_NOT_CANONICAL_LAST = _GOOD[:-1] + _ALPHABET[_ALPHABET.index(_GOOD[-1]) ^ 1]
# A token using the url-safe chars, rewritten in the standard alphabet: same bytes again.
_URLSAFE = encode_page_token(A, limits.uint64_max - 1)
assert "_" in _URLSAFE
_STANDARD_ALPHABET = _URLSAFE.replace("-", "+").replace("_", "/")
MALFORMED_TOKENS = [
    "garbage",
    "!!!",
    "=",
    " ",
    "A" * (limits.page_token_chars_max + 1),
    "A" * 1000,
    _b64(b"\x01" * 16),  # valid base64, wrong length
    _b64(struct.pack(">BQQ", 1, A, 2) + b"\x00"),  # valid base64, one byte too many
    _b64(struct.pack(">BQQ", 1, A, 2), pad=True),  # padded
    _GOOD + "=",
    _GOOD + " ",
    _GOOD + "\n",
    " " + _GOOD,
    _GOOD[:10] + "!" + _GOOD[10:],  # a char base64 would skip
    _NOT_CANONICAL_LAST,
    _STANDARD_ALPHABET,
    _b64(struct.pack(">BQQ", 2, A, 2)),  # unknown version
    _b64(struct.pack(">BQQ", 0, A, 2)),
    _b64(struct.pack(">BQQ", 1, A, 0)),  # after number 0 is never issued
    _b64(struct.pack(">BQQ", 1, A, limits.uint64_max)),
    "é" * 23,
    _GOOD[:-1],  # truncated
    "\x00" * 23,
]


@pytest.mark.parametrize("token", MALFORMED_TOKENS)
def test_malformed_page_tokens(token: str) -> None:
    ledger = many(5)
    before = ledger.data()
    refused(ledger.core.list_transactions(ListTransactions(A, 2, token)), Reason.INVALID_PAGE_TOKEN)
    assert ledger.data() == before


@pytest.mark.parametrize("after", [1, 2, 4, 5, 6, 1000])
def test_valid_page_tokens(after: int) -> None:
    ledger = many(5)
    page = ledger.page(page_size=2, token=encode_page_token(A, after))
    assert [t.transaction_number for t in page.transactions] == list(
        range(after + 1, min(after + 2, 5) + 1)
    )


@pytest.mark.parametrize(
    ("page_size", "token"), [(0, ""), (5, ""), (2, encode_page_token(UNKNOWN, 1))]
)
def test_list_unknown_account(page_size: int, token: str) -> None:
    refused(
        many(3).core.list_transactions(ListTransactions(UNKNOWN, page_size, token)),
        Reason.ACCOUNT_NOT_FOUND,
        account_id=hex_id(UNKNOWN),
    )
