"""The batch rpcs CreateTransactions and CreateAccounts end to end, on every kind of deployment.

Goal: a batch is a list of independent calls in one message. Each item gets its own
``ItemStatus`` (code 0 with its transaction/account, or the google.rpc code and ErrorInfo
reason the single-item rpc would have returned), in request order; only a malformed batch (0
items, more than ``ledger.limits.batch_items_max``) fails the whole call with
INVALID_ARGUMENT. Idempotency keys behave exactly as for the single rpcs, inside one batch,
across batches and on the retry of a whole batch: nothing is applied twice. A purchase without
funds is an OK item whose transaction has status INSUFFICIENT_FUNDS.

Method: the module-scoped ``service`` fixture (conftest) runs every test against a standalone
server and against a 3-node cluster behind a gateway, through generated stubs only. Each test
works on fresh accounts and unique keys; effects are cross-checked with GetAccount /
ListTransactions. Every call has a deadline of at least 10 s.
"""

from __future__ import annotations

import collections
import re
import uuid
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from ledger import limits
from ledger.pb import ledger_api_pb2 as api
from ledger.pb import ledger_api_pb2_grpc

T = 10.0  # deadline of small calls
T_BIG = 30.0  # deadline of 1000-item batches (a cluster applies them over 16 Raft groups)
OK = 0
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT.value[0]  # 3
NOT_FOUND = grpc.StatusCode.NOT_FOUND.value[0]  # 5
ALREADY_EXISTS = grpc.StatusCode.ALREADY_EXISTS.value[0]  # 6
SETTLED = api.TRANSACTION_STATUS_SETTLED
PENDING = api.TRANSACTION_STATUS_PENDING
INSUFFICIENT = api.TRANSACTION_STATUS_INSUFFICIENT_FUNDS
HEX16 = re.compile(r"[0-9a-f]{16}")
HEX32 = re.compile(r"[0-9a-f]{32}")

Stub = ledger_api_pb2_grpc.LedgerServiceApiStub


def tx(
    account_id: str, amount: int, settled: bool = True, key: str = "", description: str = "batch"
) -> api.CreateTransactionRequest:
    return api.CreateTransactionRequest(
        account_id=account_id,
        amount=amount,
        settled=settled,
        idempotency_key=key,
        description=description,
    )


def create_transactions(
    stub: Stub, items: list[api.CreateTransactionRequest], timeout: float = T
) -> list[api.CreateTransactionResult]:
    request = api.CreateTransactionsRequest(transactions=items)
    results = list(stub.CreateTransactions(request, timeout=timeout).results)
    assert len(results) == len(items)
    return results


def create_accounts(
    stub: Stub, items: list[api.CreateAccountRequest], timeout: float = T
) -> list[api.CreateAccountResult]:
    request = api.CreateAccountsRequest(accounts=items)
    results = list(stub.CreateAccounts(request, timeout=timeout).results)
    assert len(results) == len(items)
    return results


def assert_batch_size_refused(error: grpc.RpcError) -> None:
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert str(limits.batch_items_max) in error.details()
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None and len(status.details) == 1
    info = error_details_pb2.ErrorInfo()
    status.details[0].Unpack(info)
    assert info.reason == "INVALID_BATCH_SIZE"


def balances(stub: Stub, account_id: str) -> tuple[int, int]:
    account = stub.GetAccount(api.GetAccountRequest(account_id=account_id), timeout=T).account
    return account.available_balance, account.settled_balance


def listed(stub: Stub, account_id: str) -> list[api.Transaction]:
    return list(
        stub.ListTransactions(
            api.ListTransactionsRequest(account_id=account_id, page_size=1000), timeout=T
        ).transactions
    )


def fresh_accounts(stub: Stub, count: int) -> list[str]:
    results = create_accounts(stub, [api.CreateAccountRequest() for _ in range(count)])
    assert all(result.status.code == OK for result in results), results
    return [result.account.id for result in results]


def assert_ok(result: api.CreateTransactionResult) -> api.Transaction:
    assert result.status.code == OK, result.status
    assert result.status.reason == "" and result.status.message == ""
    assert result.HasField("transaction")
    assert HEX32.fullmatch(result.transaction.id)
    return result.transaction


def assert_failed(result: Any, code: int, reason: str) -> None:
    assert (result.status.code, result.status.reason) == (code, reason), result.status
    assert result.status.message, "a failed item has a plain message"
    assert "Traceback" not in result.status.message
    assert not result.HasField("transaction" if hasattr(result, "transaction") else "account")


# -- CreateTransactions -------------------------------------------------------------------------


def test_mixed_items_get_their_own_status_in_request_order(
    stub: Stub, new_account: api.Account
) -> None:
    account_id = new_account.id
    unknown = "00000000000000ff"
    items = [
        tx(account_id, 100),  # 0 ok
        tx("not-an-id", 5),  # 1 bad id
        tx(account_id, 0),  # 2 amount 0
        tx(unknown, 5),  # 3 unknown account
        tx(account_id, -30, settled=False),  # 4 ok, pending purchase
        tx(account_id.upper(), 5),  # 5 bad id (strict parsing)
        tx(account_id, 7, description="x" * (limits.description_bytes_max + 1)),  # 6 too long
        tx(account_id, 1, key="k" * (limits.idempotency_key_bytes_max + 1)),  # 7 key too long
        tx(account_id, 11),  # 8 ok
    ]
    results = create_transactions(stub, items)

    first = assert_ok(results[0])
    assert (first.amount, first.status) == (100, SETTLED)
    assert first.id.startswith(account_id)
    assert_failed(results[1], INVALID_ARGUMENT, "INVALID_ACCOUNT_ID")
    assert_failed(results[2], INVALID_ARGUMENT, "INVALID_AMOUNT")
    assert_failed(results[3], NOT_FOUND, "ACCOUNT_NOT_FOUND")
    assert dict(results[3].status.metadata) == {"account_id": unknown}
    pending = assert_ok(results[4])
    assert (pending.amount, pending.status) == (-30, PENDING)
    assert_failed(results[5], INVALID_ARGUMENT, "INVALID_ACCOUNT_ID")
    assert_failed(results[6], INVALID_ARGUMENT, "DESCRIPTION_TOO_LONG")
    assert_failed(results[7], INVALID_ARGUMENT, "IDEMPOTENCY_KEY_TOO_LONG")
    last = assert_ok(results[8])
    assert (last.amount, last.status) == (11, SETTLED)

    # Only the OK items changed anything: settled 100 + 11, the pending -30 holds available.
    assert balances(stub, account_id) == (111 - 30, 111)
    assert {t.id for t in listed(stub, account_id)} == {first.id, pending.id, last.id}


@pytest.mark.parametrize("count", [0, limits.batch_items_max + 1])
def test_batch_size_out_of_range_fails_the_whole_call(
    stub: Stub, new_account: api.Account, count: int
) -> None:
    items = [tx(new_account.id, 1) for _ in range(count)]
    with pytest.raises(grpc.RpcError) as caught:
        stub.CreateTransactions(api.CreateTransactionsRequest(transactions=items), timeout=T)
    assert_batch_size_refused(caught.value)
    assert balances(stub, new_account.id) == (0, 0)
    assert listed(stub, new_account.id) == []


@pytest.mark.parametrize("count", [0, limits.batch_items_max + 1])
def test_account_batch_size_out_of_range_fails_the_whole_call(stub: Stub, count: int) -> None:
    items = [api.CreateAccountRequest() for _ in range(count)]
    with pytest.raises(grpc.RpcError) as caught:
        stub.CreateAccounts(api.CreateAccountsRequest(accounts=items), timeout=T)
    assert_batch_size_refused(caught.value)


def test_full_batch_across_many_accounts(stub: Stub) -> None:
    account_ids = fresh_accounts(stub, 50)
    items = []
    expected: collections.Counter[str] = collections.Counter()
    for position in range(limits.batch_items_max):
        account_id = account_ids[position % len(account_ids)]
        amount = position + 1
        items.append(tx(account_id, amount))
        expected[account_id] += amount
    results = create_transactions(stub, items, timeout=T_BIG)

    for item, result in zip(items, results, strict=True):
        transaction = assert_ok(result)
        assert transaction.id.startswith(item.account_id)
        assert (transaction.amount, transaction.status) == (item.amount, SETTLED)
    assert len({result.transaction.id for result in results}) == len(items)
    for account_id in account_ids:
        total = expected[account_id]
        assert balances(stub, account_id) == (total, total), account_id
        assert len(listed(stub, account_id)) == limits.batch_items_max // len(account_ids)


def test_full_batch_on_one_account_with_largest_descriptions(
    stub: Stub, new_account: api.Account
) -> None:
    # All 1000 items land on one shard (one group, ~1.1 MB of commands): the largest entry a
    # client can cause. Items are applied in request order, so the listing is in that order.
    description = "d" * limits.description_bytes_max
    items = [
        tx(new_account.id, position + 1, description=description)
        for position in range(limits.batch_items_max)
    ]
    results = create_transactions(stub, items, timeout=T_BIG)
    ids = [assert_ok(result).id for result in results]
    total = sum(range(1, limits.batch_items_max + 1))
    assert balances(stub, new_account.id) == (total, total)
    transactions = listed(stub, new_account.id)
    assert [t.id for t in transactions] == ids
    assert all(t.description == description for t in transactions[:3])


def test_same_key_twice_in_one_batch_applies_once(stub: Stub, new_account: api.Account) -> None:
    key = uuid.uuid4().hex
    results = create_transactions(
        stub, [tx(new_account.id, 40, key=key), tx(new_account.id, 40, key=key)]
    )
    first, second = assert_ok(results[0]), assert_ok(results[1])
    assert first.id == second.id
    assert balances(stub, new_account.id) == (40, 40)
    assert [t.id for t in listed(stub, new_account.id)] == [first.id]


def test_same_key_different_payload_in_one_batch(stub: Stub, new_account: api.Account) -> None:
    key = uuid.uuid4().hex
    results = create_transactions(
        stub, [tx(new_account.id, 40, key=key), tx(new_account.id, 41, key=key)]
    )
    # The two items race inside the batch: whichever is applied first wins, the other is refused.
    codes = sorted(result.status.code for result in results)
    assert codes == [OK, ALREADY_EXISTS], [r.status for r in results]
    winner = next(result for result in results if result.status.code == OK)
    loser = next(result for result in results if result.status.code != OK)
    assert_failed(loser, ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")
    amount = winner.transaction.amount
    assert balances(stub, new_account.id) == (amount, amount)


def test_key_reused_with_other_amount_across_batches(stub: Stub, new_account: api.Account) -> None:
    key = uuid.uuid4().hex
    original = assert_ok(create_transactions(stub, [tx(new_account.id, 25, key=key)])[0])
    results = create_transactions(
        stub, [tx(new_account.id, 26, key=key), tx(new_account.id, 25, key=key)]
    )
    assert_failed(results[0], ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")
    assert results[0].status.metadata, "the ErrorInfo metadata is carried into the item"
    assert assert_ok(results[1]).id == original.id
    assert balances(stub, new_account.id) == (25, 25)


def test_retry_of_a_whole_batch_applies_nothing_twice(stub: Stub) -> None:
    account_ids = fresh_accounts(stub, 5)
    prefix = uuid.uuid4().hex
    items = [
        tx(account_ids[position % 5], 10 + position, key=f"{prefix}-{position}")
        for position in range(100)
    ]
    first = [assert_ok(result).id for result in create_transactions(stub, items)]
    before = {account_id: balances(stub, account_id) for account_id in account_ids}
    retried = [assert_ok(result).id for result in create_transactions(stub, items)]

    assert retried == first
    assert len(set(first)) == len(items)
    for account_id in account_ids:
        assert balances(stub, account_id) == before[account_id]
        assert len(listed(stub, account_id)) == 20
    assert sum(before[a][1] for a in account_ids) == sum(10 + p for p in range(100))


def test_insufficient_funds_item_is_ok_with_its_status(
    stub: Stub, new_account: api.Account
) -> None:
    results = create_transactions(
        stub, [tx(new_account.id, -1000), tx(new_account.id, -1, settled=False)]
    )
    for result in results:
        transaction = assert_ok(result)
        assert transaction.status == INSUFFICIENT
    assert balances(stub, new_account.id) == (0, 0)
    assert [t.status for t in listed(stub, new_account.id)] == [INSUFFICIENT, INSUFFICIENT]


# -- CreateAccounts -----------------------------------------------------------------------------


def test_create_accounts_distinct_fresh_ids(stub: Stub) -> None:
    results = create_accounts(stub, [api.CreateAccountRequest() for _ in range(200)])
    accounts = [result.account for result in results]
    for result in results:
        assert result.status.code == OK, result.status
    assert all(HEX16.fullmatch(account.id) for account in accounts)
    assert len({account.id for account in accounts}) == 200
    assert all((a.available_balance, a.settled_balance) == (0, 0) for a in accounts)
    assert all(a.created_at > 0 and a.created_at == a.updated_at for a in accounts)
    for account in accounts[:5]:
        assert balances(stub, account.id) == (0, 0)


def test_create_accounts_key_too_long_item_fails_alone(stub: Stub) -> None:
    max_key = uuid.uuid4().hex.ljust(limits.idempotency_key_bytes_max, "k")
    results = create_accounts(
        stub,
        [
            api.CreateAccountRequest(),
            api.CreateAccountRequest(idempotency_key="k" * (limits.idempotency_key_bytes_max + 1)),
            api.CreateAccountRequest(idempotency_key=max_key),
        ],
    )
    assert results[0].status.code == OK and HEX16.fullmatch(results[0].account.id)
    assert_failed(results[1], INVALID_ARGUMENT, "IDEMPOTENCY_KEY_TOO_LONG")
    # A key of exactly the maximum length is fine.
    assert results[2].status.code == OK and HEX16.fullmatch(results[2].account.id)


def test_create_accounts_same_key_returns_same_account(stub: Stub) -> None:
    key = uuid.uuid4().hex
    results = create_accounts(
        stub,
        [
            api.CreateAccountRequest(idempotency_key=key),
            api.CreateAccountRequest(idempotency_key=key),
            api.CreateAccountRequest(),
        ],
    )
    assert all(result.status.code == OK for result in results), [r.status for r in results]
    assert results[0].account.id == results[1].account.id
    assert results[2].account.id != results[0].account.id
    again = create_accounts(stub, [api.CreateAccountRequest(idempotency_key=key)])
    assert again[0].account.id == results[0].account.id
    single = stub.CreateAccount(api.CreateAccountRequest(idempotency_key=key), timeout=T)
    assert single.account.id == results[0].account.id
