"""The public gRPC API end to end, against every kind of deployment.

Goal: every rpc's happy path and every documented error (status code, plain message, ErrorInfo
reason) behave as the spec says, bad input changes nothing and never breaks the server, and the
operational services (health, reflection) are there.

Method: the module-scoped ``service`` fixture starts a real process (parametrized over the
deployment kinds in ``conftest.SERVICE_KINDS``); tests talk to it through generated stubs and raw
channels only — never through its internals — so the same file checks a cluster unchanged. Each
test works on its own fresh accounts and unique keys, so tests sharing one service never interfere.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from integration.errors import error_info, expect_error
from integration.load import expected_balances, list_all
from ledger.pb import ledger_api_pb2 as api
from ledger.pb import ledger_api_pb2_grpc

T = call_timeout_s = 10.0
INT64_MAX = 2**63 - 1
SERVICE = "com.evrblk.monstera_example.ledger.gatewaypb.LedgerServiceApi"
PENDING = api.TRANSACTION_STATUS_PENDING
SETTLED = api.TRANSACTION_STATUS_SETTLED
CANCELLED = api.TRANSACTION_STATUS_CANCELLED
INSUFFICIENT = api.TRANSACTION_STATUS_INSUFFICIENT_FUNDS
HEX16 = re.compile(r"[0-9a-f]{16}")
HEX32 = re.compile(r"[0-9a-f]{32}")

Stub = ledger_api_pb2_grpc.LedgerServiceApiStub


# -- helpers --------------------------------------------------------------------------------


def get_account(stub: Stub, account_id: str) -> api.Account:
    return stub.GetAccount(api.GetAccountRequest(account_id=account_id), timeout=T).account


def balances(stub: Stub, account_id: str) -> tuple[int, int]:
    account = get_account(stub, account_id)
    return account.available_balance, account.settled_balance


def create_tx(
    stub: Stub,
    account_id: str,
    amount: int,
    settled: bool = True,
    description: str = "",
    key: str = "",
) -> api.Transaction:
    request = api.CreateTransactionRequest(
        account_id=account_id,
        amount=amount,
        description=description,
        settled=settled,
        idempotency_key=key,
    )
    return stub.CreateTransaction(request, timeout=T).transaction


def get_tx(stub: Stub, transaction_id: str) -> api.Transaction:
    return stub.GetTransaction(
        api.GetTransactionRequest(transaction_id=transaction_id), timeout=T
    ).transaction


def settle(stub: Stub, transaction_id: str) -> api.Transaction:
    return stub.SettleTransaction(
        api.SettleTransactionRequest(transaction_id=transaction_id), timeout=T
    ).transaction


def cancel(stub: Stub, transaction_id: str) -> api.Transaction:
    return stub.CancelTransaction(
        api.CancelTransactionRequest(transaction_id=transaction_id), timeout=T
    ).transaction


def list_page(
    stub: Stub, account_id: str, page_size: int = 0, page_token: str = ""
) -> api.ListTransactionsResponse:
    request = api.ListTransactionsRequest(
        account_id=account_id, page_size=page_size, page_token=page_token
    )
    return stub.ListTransactions(request, timeout=T)


def fund(stub: Stub, account_id: str, amount: int) -> None:
    create_tx(stub, account_id, amount, settled=True, description="funding")


def unknown_account_id() -> str:
    # A random 64-bit id: the chance that it names an existing account is negligible.
    return uuid.uuid4().hex[:16]


# -- accounts -------------------------------------------------------------------------------


def test_create_account_is_empty_and_well_formed(stub: Stub) -> None:
    account = stub.CreateAccount(api.CreateAccountRequest(), timeout=T).account
    assert HEX16.fullmatch(account.id)
    assert account.available_balance == 0 and account.settled_balance == 0
    assert account.created_at > 0
    assert account.created_at == account.updated_at
    assert get_account(stub, account.id) == account


def test_create_account_gives_distinct_ids(stub: Stub) -> None:
    created = {
        stub.CreateAccount(api.CreateAccountRequest(), timeout=T).account.id for _ in range(20)
    }
    assert len(created) == 20


def test_get_account_unknown_is_not_found(stub: Stub) -> None:
    account_id = unknown_account_id()
    error = expect_error(
        lambda: get_account(stub, account_id), grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND"
    )
    assert error.details() == "account not found"
    assert error_info(error).metadata["account_id"] == account_id


BAD_ACCOUNT_IDS = [
    "",
    "ABCDEF0123456789",  # uppercase
    "0123456789abcde",  # 15 chars
    "0123456789abcdef0",  # 17 chars
    "0123456789abcdeg",  # not hex
    " 0123456789abcdef",
    "0123456789abcdef\n",
    "0x23456789abcdef",
    "-123456789abcdef",
    "０123456789abcdef",  # full-width digit
]


@pytest.mark.parametrize("bad_id", BAD_ACCOUNT_IDS)
def test_bad_account_ids_are_invalid_argument(stub: Stub, bad_id: str) -> None:
    bad = grpc.StatusCode.INVALID_ARGUMENT
    expect_error(lambda: get_account(stub, bad_id), bad, "INVALID_ACCOUNT_ID")
    expect_error(lambda: create_tx(stub, bad_id, 5), bad, "INVALID_ACCOUNT_ID")
    expect_error(lambda: list_page(stub, bad_id), bad, "INVALID_ACCOUNT_ID")


def test_bad_transaction_ids_are_invalid_argument(stub: Stub, new_account: api.Account) -> None:
    good = create_tx(stub, new_account.id, 5).id
    bad_ids = [
        "",
        good.upper(),
        good[:-1],  # 31 chars
        good + "0",  # trailing garbage
        good + "\n",
        good + " ",
        new_account.id,  # an account id is not a transaction id
        good[:16] + "g" * 16,
    ]
    for bad_id in bad_ids:
        for call in (get_tx, settle, cancel):
            expect_error(
                lambda: call(stub, bad_id),
                grpc.StatusCode.INVALID_ARGUMENT,
                "INVALID_TRANSACTION_ID",
            )
    assert get_tx(stub, good).status == SETTLED  # nothing changed


def test_create_account_idempotency_key_returns_same_account(stub: Stub, unique: str) -> None:
    first = stub.CreateAccount(api.CreateAccountRequest(idempotency_key=unique), timeout=T).account
    fund(stub, first.id, 5)
    again = stub.CreateAccount(api.CreateAccountRequest(idempotency_key=unique), timeout=T).account
    assert again.id == first.id
    assert again.created_at == first.created_at
    # The repeat never resets the account.
    assert balances(stub, first.id) == (5, 5)
    other = stub.CreateAccount(
        api.CreateAccountRequest(idempotency_key=unique + "-other"), timeout=T
    ).account
    assert other.id != first.id


def test_create_account_idempotency_key_too_long(stub: Stub) -> None:
    expect_error(
        lambda: stub.CreateAccount(api.CreateAccountRequest(idempotency_key="k" * 129), timeout=T),
        grpc.StatusCode.INVALID_ARGUMENT,
        "IDEMPOTENCY_KEY_TOO_LONG",
    )
    key = uuid.uuid4().hex * 4  # exactly 128 bytes
    assert len(key) == 128
    account = stub.CreateAccount(api.CreateAccountRequest(idempotency_key=key), timeout=T).account
    assert HEX16.fullmatch(account.id)


# -- transactions: creation -------------------------------------------------------------------


def test_settled_top_up_and_purchase(stub: Stub, new_account: api.Account) -> None:
    top_up = create_tx(stub, new_account.id, 100, settled=True, description="top up")
    assert HEX32.fullmatch(top_up.id) and top_up.id.startswith(new_account.id)
    assert (top_up.amount, top_up.description, top_up.status) == (100, "top up", SETTLED)
    assert top_up.created_at == top_up.updated_at > 0
    assert balances(stub, new_account.id) == (100, 100)

    purchase = create_tx(stub, new_account.id, -30, settled=True, description="buy")
    assert (purchase.amount, purchase.status) == (-30, SETTLED)
    assert balances(stub, new_account.id) == (70, 70)
    assert get_tx(stub, purchase.id) == purchase
    assert get_tx(stub, top_up.id) == top_up


def test_pending_top_up_changes_no_balance(stub: Stub, new_account: api.Account) -> None:
    pending = create_tx(stub, new_account.id, 50, settled=False)
    assert pending.status == PENDING
    assert balances(stub, new_account.id) == (0, 0)


def test_pending_purchase_holds_available_only(stub: Stub, new_account: api.Account) -> None:
    fund(stub, new_account.id, 100)
    pending = create_tx(stub, new_account.id, -40, settled=False)
    assert pending.status == PENDING
    assert balances(stub, new_account.id) == (60, 100)


def test_insufficient_funds_is_ok_and_stored(stub: Stub, new_account: api.Account) -> None:
    fund(stub, new_account.id, 10)
    before = get_account(stub, new_account.id)
    for settled in (True, False):
        refused = create_tx(stub, new_account.id, -11, settled=settled, description="too much")
        assert refused.status == INSUFFICIENT
        assert refused.amount == -11 and refused.description == "too much"
        assert get_tx(stub, refused.id) == refused
        assert refused.id in {t.id for t in list_all(stub, new_account.id)}
    after = get_account(stub, new_account.id)
    assert (after.available_balance, after.settled_balance) == (10, 10)
    assert (before.available_balance, before.settled_balance) == (10, 10)
    # Exactly the available balance is fine.
    assert create_tx(stub, new_account.id, -10).status == SETTLED
    assert balances(stub, new_account.id) == (0, 0)


def test_zero_amount_is_invalid_argument(stub: Stub, new_account: api.Account) -> None:
    for settled in (True, False):
        expect_error(
            lambda: create_tx(stub, new_account.id, 0, settled=settled),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_AMOUNT",
        )
    assert list_all(stub, new_account.id) == []


def test_description_limit_is_1024_utf8_bytes(stub: Stub, new_account: api.Account) -> None:
    for too_long in ("d" * 1025, "é" * 512 + "d"):  # the second one has 513 chars
        assert len(too_long.encode("utf-8")) == 1025
        expect_error(
            lambda: create_tx(stub, new_account.id, 1, description=too_long),
            grpc.StatusCode.INVALID_ARGUMENT,
            "DESCRIPTION_TOO_LONG",
        )
    assert list_all(stub, new_account.id) == []
    for longest in ("d" * 1024, "é" * 512):
        transaction = create_tx(stub, new_account.id, 1, description=longest)
        assert get_tx(stub, transaction.id).description == longest
    assert balances(stub, new_account.id) == (2, 2)


def test_create_transaction_unknown_account(stub: Stub) -> None:
    account_id = unknown_account_id()
    error = expect_error(
        lambda: create_tx(stub, account_id, 5), grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND"
    )
    assert error.details() == "account not found"


def test_balance_overflow_changes_nothing(stub: Stub, new_account: api.Account) -> None:
    pending_top_up = create_tx(stub, new_account.id, 1, settled=False)
    create_tx(stub, new_account.id, INT64_MAX, settled=True)
    assert balances(stub, new_account.id) == (INT64_MAX, INT64_MAX)
    history = list_all(stub, new_account.id)

    expect_error(
        lambda: create_tx(stub, new_account.id, 1, settled=True),
        grpc.StatusCode.FAILED_PRECONDITION,
        "BALANCE_OVERFLOW",
    )
    expect_error(
        lambda: settle(stub, pending_top_up.id),
        grpc.StatusCode.FAILED_PRECONDITION,
        "BALANCE_OVERFLOW",
    )
    assert balances(stub, new_account.id) == (INT64_MAX, INT64_MAX)
    assert list_all(stub, new_account.id) == history
    assert get_tx(stub, pending_top_up.id).status == PENDING
    # A pending top-up changes no balance, so it cannot overflow.
    assert create_tx(stub, new_account.id, 1, settled=False).status == PENDING


def test_idempotency_key_too_long(stub: Stub, new_account: api.Account) -> None:
    expect_error(
        lambda: create_tx(stub, new_account.id, 5, key="k" * 129),
        grpc.StatusCode.INVALID_ARGUMENT,
        "IDEMPOTENCY_KEY_TOO_LONG",
    )
    expect_error(  # bytes, not chars: 65 two-byte chars
        lambda: create_tx(stub, new_account.id, 5, key="é" * 65),
        grpc.StatusCode.INVALID_ARGUMENT,
        "IDEMPOTENCY_KEY_TOO_LONG",
    )
    assert balances(stub, new_account.id) == (0, 0)
    assert create_tx(stub, new_account.id, 5, key="k" * 128).status == SETTLED
    assert balances(stub, new_account.id) == (5, 5)


# -- idempotency ------------------------------------------------------------------------------


def test_idempotent_repeat_returns_original_and_applies_once(
    stub: Stub, new_account: api.Account, unique: str
) -> None:
    first = create_tx(stub, new_account.id, 25, description="d", key=unique)
    for _ in range(3):
        again = create_tx(stub, new_account.id, 25, description="d", key=unique)
        assert again == first
    assert balances(stub, new_account.id) == (25, 25)
    assert [t.id for t in list_all(stub, new_account.id)] == [first.id]


def test_idempotent_repeat_after_state_change_returns_original(
    stub: Stub, new_account: api.Account, unique: str
) -> None:
    fund(stub, new_account.id, 100)
    pending = create_tx(stub, new_account.id, -10, settled=False, key=unique)
    settle(stub, pending.id)
    again = create_tx(stub, new_account.id, -10, settled=False, key=unique)
    assert again.id == pending.id
    assert balances(stub, new_account.id) == (90, 90)


def test_idempotency_key_reused_with_other_payload(
    stub: Stub, new_account: api.Account, unique: str
) -> None:
    original = create_tx(stub, new_account.id, 25, settled=True, description="d", key=unique)
    variants = [
        dict(amount=26, settled=True, description="d"),
        dict(amount=25, settled=False, description="d"),
        dict(amount=25, settled=True, description="e"),
    ]
    for variant in variants:
        error = expect_error(
            lambda: create_tx(stub, new_account.id, key=unique, **variant),  # type: ignore[arg-type]
            grpc.StatusCode.ALREADY_EXISTS,
            "IDEMPOTENCY_KEY_REUSED",
        )
        assert error_info(error).metadata["transaction_id"] == original.id
    assert balances(stub, new_account.id) == (25, 25)
    assert [t.id for t in list_all(stub, new_account.id)] == [original.id]


def test_idempotency_keys_are_scoped_to_the_account(stub: Stub, unique: str) -> None:
    first, second = (
        stub.CreateAccount(api.CreateAccountRequest(), timeout=T).account for _ in "ab"
    )
    on_first = create_tx(stub, first.id, 10, key=unique)
    on_second = create_tx(stub, second.id, 20, key=unique)  # other amount: not a reuse
    assert on_second.id != on_first.id and on_second.id.startswith(second.id)
    assert balances(stub, first.id) == (10, 10)
    assert balances(stub, second.id) == (20, 20)


def test_insufficient_funds_with_key_is_replayed_not_retried(
    stub: Stub, new_account: api.Account, unique: str
) -> None:
    refused = create_tx(stub, new_account.id, -5, key=unique)
    assert refused.status == INSUFFICIENT
    fund(stub, new_account.id, 100)
    assert create_tx(stub, new_account.id, -5, key=unique) == refused
    assert balances(stub, new_account.id) == (100, 100)


# -- settle and cancel ------------------------------------------------------------------------


def test_settle_pending_top_up(stub: Stub, new_account: api.Account) -> None:
    pending = create_tx(stub, new_account.id, 50, settled=False)
    before = get_account(stub, new_account.id)
    done = settle(stub, pending.id)
    assert (done.id, done.amount, done.status) == (pending.id, 50, SETTLED)
    assert done.created_at == pending.created_at
    # A later call stamps a later time (updated_at never moves backwards).
    assert done.updated_at > pending.updated_at
    after = get_account(stub, new_account.id)
    assert (after.available_balance, after.settled_balance) == (50, 50)
    assert after.updated_at > before.updated_at
    assert after.updated_at >= done.updated_at
    assert after.created_at == before.created_at
    assert get_tx(stub, pending.id) == done


def test_settle_pending_purchase(stub: Stub, new_account: api.Account) -> None:
    fund(stub, new_account.id, 100)
    pending = create_tx(stub, new_account.id, -30, settled=False)
    assert balances(stub, new_account.id) == (70, 100)
    assert settle(stub, pending.id).status == SETTLED
    assert balances(stub, new_account.id) == (70, 70)


def test_cancel_pending_top_up(stub: Stub, new_account: api.Account) -> None:
    pending = create_tx(stub, new_account.id, 50, settled=False)
    before = get_account(stub, new_account.id)
    done = cancel(stub, pending.id)
    assert (done.id, done.status) == (pending.id, CANCELLED)
    assert done.updated_at > pending.updated_at
    after = get_account(stub, new_account.id)
    assert (after.available_balance, after.settled_balance) == (0, 0)
    assert after.updated_at > before.updated_at
    assert get_tx(stub, pending.id) == done


def test_cancel_pending_purchase_returns_the_hold(stub: Stub, new_account: api.Account) -> None:
    fund(stub, new_account.id, 100)
    pending = create_tx(stub, new_account.id, -30, settled=False)
    assert balances(stub, new_account.id) == (70, 100)
    assert cancel(stub, pending.id).status == CANCELLED
    assert balances(stub, new_account.id) == (100, 100)


def test_settle_or_cancel_non_pending_is_failed_precondition(
    stub: Stub, new_account: api.Account
) -> None:
    fund(stub, new_account.id, 100)
    settled_pending = create_tx(stub, new_account.id, -10, settled=False)
    settle(stub, settled_pending.id)
    cancelled_pending = create_tx(stub, new_account.id, -10, settled=False)
    cancel(stub, cancelled_pending.id)
    settled_at_once = create_tx(stub, new_account.id, -10, settled=True)
    refused = create_tx(stub, new_account.id, -1000, settled=False)
    assert refused.status == INSUFFICIENT
    finished = [settled_pending, cancelled_pending, settled_at_once, refused]
    history = list_all(stub, new_account.id)
    state = balances(stub, new_account.id)
    assert state == (80, 80)

    for transaction in finished:
        for call in (settle, cancel):
            error = expect_error(
                lambda: call(stub, transaction.id),
                grpc.StatusCode.FAILED_PRECONDITION,
                "TRANSACTION_NOT_PENDING",
            )
            assert error.details() == "transaction is not pending"
            assert error_info(error).metadata["transaction_id"] == transaction.id
    assert balances(stub, new_account.id) == state
    assert list_all(stub, new_account.id) == history


def test_unknown_transaction_is_not_found(stub: Stub, new_account: api.Account) -> None:
    create_tx(stub, new_account.id, 5)
    missing = new_account.id + f"{1000:016x}"
    zero = new_account.id + "0" * 16
    for transaction_id in (missing, zero):
        for call in (get_tx, settle, cancel):
            error = expect_error(
                lambda: call(stub, transaction_id),
                grpc.StatusCode.NOT_FOUND,
                "TRANSACTION_NOT_FOUND",
            )
            assert error.details() == "transaction not found"
    on_unknown_account = unknown_account_id() + f"{1:016x}"
    for call in (get_tx, settle, cancel):
        expect_error(
            lambda: call(stub, on_unknown_account),
            grpc.StatusCode.NOT_FOUND,
            {"TRANSACTION_NOT_FOUND", "ACCOUNT_NOT_FOUND"},
        )


# -- listing ----------------------------------------------------------------------------------


def create_many(stub: Stub, account_id: str, count: int, workers: int = 16) -> set[str]:
    """``count`` settled top-ups of 1 created concurrently; returns their ids."""
    with ThreadPoolExecutor(workers) as pool:
        created = list(
            pool.map(
                lambda n: create_tx(stub, account_id, 1, description=f"tx {n}").id, range(count)
            )
        )
    assert len(set(created)) == count
    return set(created)


def test_list_in_creation_order_with_current_status(stub: Stub, new_account: api.Account) -> None:
    fund(stub, new_account.id, 100)
    created = [
        create_tx(stub, new_account.id, amount, settled=settled, description=f"n{n}")
        for n, (amount, settled) in enumerate([(5, True), (-7, False), (9, False), (-1, True)] * 3)
    ]
    settle(stub, created[1].id)
    cancel(stub, created[2].id)
    listed = list_all(stub, new_account.id)
    assert [t.id for t in listed][1:] == [t.id for t in created]
    assert [t.description for t in listed][1:] == [f"n{n}" for n in range(12)]
    for transaction in listed:
        assert get_tx(stub, transaction.id) == transaction
    assert listed[2].status == SETTLED and listed[3].status == CANCELLED
    assert balances(stub, new_account.id) == expected_balances(listed)


def test_list_empty_account(stub: Stub, new_account: api.Account) -> None:
    page = list_page(stub, new_account.id)
    assert list(page.transactions) == [] and page.next_page_token == ""


def test_list_default_page_size_and_paging(stub: Stub, new_account: api.Account) -> None:
    created = create_many(stub, new_account.id, 130)

    first = list_page(stub, new_account.id)  # page_size 0 = default 100
    assert len(first.transactions) == 100 and first.next_page_token
    second = list_page(stub, new_account.id, page_token=first.next_page_token)
    assert len(second.transactions) == 30 and second.next_page_token == ""
    everything = [*first.transactions, *second.transactions]
    assert {t.id for t in everything} == created
    assert len(everything) == 130

    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = list_page(stub, new_account.id, page_size=7, page_token=token)
        pages += 1
        assert len(page.transactions) <= 7
        seen.extend(t.id for t in page.transactions)
        token = page.next_page_token
        if not token:
            break
        assert len(page.transactions) == 7
    assert seen == [t.id for t in everything]  # each exactly once, same order
    assert pages == 19  # 18 full pages and one of 4

    # An exact multiple of the page size ends with an empty token on its last full page.
    page = list_page(stub, new_account.id, page_size=130)
    assert len(page.transactions) == 130 and page.next_page_token == ""


def test_list_page_size_above_max_is_clamped(stub: Stub, new_account: api.Account) -> None:
    created = create_many(stub, new_account.id, 1005)
    for page_size in (1001, 5000, 2**31 - 1):
        first = list_page(stub, new_account.id, page_size=page_size)
        assert len(first.transactions) == 1000 and first.next_page_token
    rest = list_page(stub, new_account.id, page_size=5000, page_token=first.next_page_token)
    assert len(rest.transactions) == 5 and rest.next_page_token == ""
    assert {t.id for t in [*first.transactions, *rest.transactions]} == created
    assert balances(stub, new_account.id) == (1005, 1005)


def test_list_bad_page_size_and_tokens(stub: Stub, new_account: api.Account) -> None:
    for _ in range(3):
        create_tx(stub, new_account.id, 1)
    other = stub.CreateAccount(api.CreateAccountRequest(), timeout=T).account
    for _ in range(3):
        create_tx(stub, other.id, 1)
    other_token = list_page(stub, other.id, page_size=1).next_page_token
    own_token = list_page(stub, new_account.id, page_size=1).next_page_token
    assert other_token and own_token

    bad = grpc.StatusCode.INVALID_ARGUMENT
    for page_size in (-1, -(2**31)):
        error = expect_error(
            lambda: list_page(stub, new_account.id, page_size=page_size), bad, "INVALID_PAGE_SIZE"
        )
        assert error.details() == "page_size must not be negative"
    malformed = [
        "x",
        "not a token",
        "!!!!",
        own_token + "A",
        own_token[:-1],
        own_token.upper() if own_token.upper() != own_token else own_token + "==",
        "A" * 65,
        "é" * 10,
        "AAAAAAAAAAAAAAAAAAAAAAAA",  # canonical length, version 0
    ]
    for token in malformed:
        expect_error(
            lambda: list_page(stub, new_account.id, page_token=token), bad, "INVALID_PAGE_TOKEN"
        )
    expect_error(
        lambda: list_page(stub, new_account.id, page_token=other_token), bad, "INVALID_PAGE_TOKEN"
    )
    # The tokens still work where they belong.
    assert len(list_page(stub, other.id, page_token=other_token).transactions) == 2
    assert len(list_page(stub, new_account.id, page_token=own_token).transactions) == 2


def test_list_unknown_account(stub: Stub) -> None:
    error = expect_error(
        lambda: list_page(stub, unknown_account_id()),
        grpc.StatusCode.NOT_FOUND,
        "ACCOUNT_NOT_FOUND",
    )
    assert error.details() == "account not found"


# -- concurrency ------------------------------------------------------------------------------


def test_concurrent_purchases_never_overdraw(stub: Stub, new_account: api.Account) -> None:
    fund(stub, new_account.id, 100)
    observed: list[int] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            observed.append(get_account(stub, new_account.id).available_balance)

    def purchase(n: int) -> api.Transaction:
        return create_tx(stub, new_account.id, -10, settled=n % 2 == 0, description=f"p{n}")

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        with ThreadPoolExecutor(40) as pool:
            results = list(pool.map(purchase, range(40)))
    finally:
        done.set()
        watcher.join(timeout=30)

    succeeded = [t for t in results if t.status in (SETTLED, PENDING)]
    refused = [t for t in results if t.status == INSUFFICIENT]
    assert len(succeeded) == 10 and len(refused) == 30
    assert all(value >= 0 for value in observed), min(observed)

    listed = list_all(stub, new_account.id)
    assert {t.id for t in listed} == {t.id for t in results} | {listed[0].id}
    available, settled = balances(stub, new_account.id)
    assert (available, settled) == expected_balances(listed)
    assert available == 0
    assert settled == 100 - 10 * sum(1 for t in succeeded if t.status == SETTLED)
    assert 0 <= available <= settled


# -- transport-level robustness ----------------------------------------------------------------

METHODS = [
    "GetAccount",
    "CreateAccount",
    "GetTransaction",
    "CreateTransaction",
    "SettleTransaction",
    "CancelTransaction",
    "ListTransactions",
]
JUNK = [
    b"\xff\xff\xff",
    b"\x08",  # a truncated varint
    b"\x0a\x05ab",  # a length-delimited field longer than the message
    b"\x0f",  # wire type 7 does not exist
    b"\x0a\x02\xc3\x28",  # invalid UTF-8 in a string field
    b"\x00",  # field number 0
    b"\xff" * 11,  # an over-long varint tag
]


def raw_call(channel: grpc.Channel, method: str, payload: bytes) -> bytes:
    call = channel.unary_unary(
        f"/{SERVICE}/{method}", request_serializer=None, response_deserializer=None
    )
    return call(payload, timeout=T)  # type: ignore[no-any-return]


@pytest.mark.parametrize("method", METHODS)
def test_malformed_request_bytes_are_invalid_argument(
    channel: grpc.Channel, stub: Stub, method: str
) -> None:
    for payload in JUNK:
        error = expect_error(
            lambda: raw_call(channel, method, payload),
            grpc.StatusCode.INVALID_ARGUMENT,
            "MALFORMED_REQUEST",
        )
        assert error.details() == "malformed request message"
    # The server still serves, on the same channel.
    account = stub.CreateAccount(api.CreateAccountRequest(), timeout=T).account
    assert get_account(stub, account.id) == account


def test_unknown_fields_are_ignored(
    channel: grpc.Channel, stub: Stub, new_account: api.Account
) -> None:
    request = api.GetAccountRequest(account_id=new_account.id).SerializeToString()
    extended = request + b"\xa0\x06\x01"  # field 100, varint 1: from a newer client
    response = api.GetAccountResponse.FromString(raw_call(channel, "GetAccount", extended))
    assert response.account == new_account


def test_unknown_method_is_unimplemented(channel: grpc.Channel, stub: Stub) -> None:
    for path in (f"/{SERVICE}/NoSuchMethod", "/no.such.Service/Method"):
        call = channel.unary_unary(path, request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as caught:
            call(b"", timeout=T)
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert HEX16.fullmatch(stub.CreateAccount(api.CreateAccountRequest(), timeout=T).account.id)


def test_tiny_deadline_is_deadline_exceeded(
    service: Any, stub: Stub, new_account: api.Account
) -> None:
    """A 1 µs deadline ends in DEADLINE_EXCEEDED and the server keeps serving.

    grpc core keeps deadlines at millisecond granularity, so a call that the server answers
    within that millisecond may still succeed; each attempt must end OK or DEADLINE_EXCEEDED,
    and some attempt (of many) must hit the deadline.
    """
    allowed = {grpc.StatusCode.OK, grpc.StatusCode.DEADLINE_EXCEEDED}
    calls: list[Callable[[], Any]] = [
        lambda: stub.CreateAccount(api.CreateAccountRequest(), timeout=1e-6),
        lambda: stub.GetAccount(api.GetAccountRequest(account_id=new_account.id), timeout=1e-6),
        lambda: stub.CreateTransaction(
            api.CreateTransactionRequest(account_id=new_account.id, amount=1, settled=True),
            timeout=1e-6,
        ),
    ]
    attempts_max = 100
    for call in calls:
        codes = []
        for _ in range(attempts_max):
            try:
                call()
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as error:
                codes.append(error.code())
                if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                    break
        assert set(codes) <= allowed, codes
        assert codes[-1] == grpc.StatusCode.DEADLINE_EXCEEDED
    # Still serving; each timed-out or answered create applied at most once.
    available, settled = balances(stub, new_account.id)
    listed = list_all(stub, new_account.id)
    assert available == settled == len(listed) <= attempts_max
    assert create_tx(stub, new_account.id, 1).status == SETTLED


def test_short_deadline_on_a_healthy_service_is_never_unavailable(
    service: Any, stub: Stub, new_account: api.Account
) -> None:
    """A deadline too short to finish gets OK or DEADLINE_EXCEEDED, never UNAVAILABLE.

    UNAVAILABLE tells clients (and their alerts and circuit breakers) that the service is down;
    a healthy service that ran out of the caller's time must say DEADLINE_EXCEEDED. 40 ms is
    enough for the call to reach the server but is below the cluster gateway's margin.
    """
    calls: list[Callable[[], Any]] = [
        lambda: stub.GetAccount(api.GetAccountRequest(account_id=new_account.id), timeout=0.04),
        lambda: stub.CreateTransaction(
            api.CreateTransactionRequest(account_id=new_account.id, amount=1, settled=True),
            timeout=0.04,
        ),
    ]
    codes = []
    for _ in range(10):
        for call in calls:
            try:
                call()
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as error:
                codes.append(error.code())
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.DEADLINE_EXCEEDED}, codes
    available, settled = balances(stub, new_account.id)
    assert available == settled == len(list_all(stub, new_account.id)) <= 10


# -- health and reflection --------------------------------------------------------------------


def test_health_serving(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for name in ("", SERVICE):
        response = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=T)
        assert response.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as caught:
        health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=T)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_reflection_lists_the_service(channel: grpc.Channel) -> None:
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    responses = list(reflection.ServerReflectionInfo(iter([request]), timeout=T))
    assert len(responses) == 1
    names = {service.name for service in responses[0].list_services_response.service}
    assert SERVICE in names
    assert "grpc.health.v1.Health" in names

    by_symbol = reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE)
    (described,) = reflection.ServerReflectionInfo(iter([by_symbol]), timeout=T)
    assert described.file_descriptor_response.file_descriptor_proto
