"""Batch helpers: any number of items, calls of at most ``limits.batch_items_max``, results in
input order; transient item failures resent alone with their keys, call failures resent whole.

Method: a scripted ``CreateTransactions``/``CreateAccounts`` that echoes each item (the
description says which input it was) and fails the items or calls a test asks for.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import grpc
import pytest

from client.conftest import Ledger
from client.fake_server import Fail, FakeLedger, item_failure, unavailable
from ledger import limits
from ledger.client import (
    InvalidArgument,
    ItemResult,
    NewTransaction,
    RetryPolicy,
    Unauthenticated,
    Unavailable,
)
from ledger.pb import ledger_api_pb2 as api

ACCOUNTS = ["0123456789abcdef", "fedcba9876543210", "00000000000000ff"]


def echo_transactions(
    fail_once: frozenset[str] = frozenset(),
    refuse: frozenset[str] = frozenset(),
) -> Callable[[api.CreateTransactionsRequest], api.CreateTransactionsResponse]:
    """Each item back as a transaction (numbered per account, in arrival order); descriptions
    in ``fail_once`` fail the first time with SHARD_UNAVAILABLE, those in ``refuse`` always
    with INVALID_AMOUNT."""
    numbers: dict[str, int] = {}
    failed: set[str] = set()
    lock = threading.Lock()

    def handle(request: api.CreateTransactionsRequest) -> api.CreateTransactionsResponse:
        results = []
        with lock:
            for item in request.transactions:
                if item.description in refuse:
                    status = item_failure(
                        grpc.StatusCode.INVALID_ARGUMENT, "bad amount", "INVALID_AMOUNT"
                    )
                    results.append(api.CreateTransactionResult(status=status))
                    continue
                if item.description in fail_once and item.description not in failed:
                    failed.add(item.description)
                    status = item_failure(
                        grpc.StatusCode.UNAVAILABLE, "shard has no quorum", "SHARD_UNAVAILABLE"
                    )
                    results.append(api.CreateTransactionResult(status=status))
                    continue
                numbers[item.account_id] = numbers.get(item.account_id, 0) + 1
                transaction = api.Transaction(
                    id=f"{item.account_id}{numbers[item.account_id]:016x}",
                    amount=item.amount,
                    description=item.description,
                )
                results.append(api.CreateTransactionResult(transaction=transaction))
        return api.CreateTransactionsResponse(results=results)

    return handle


def items(count: int) -> list[NewTransaction]:
    return [
        NewTransaction(ACCOUNTS[i % len(ACCOUNTS)], i + 1, description=f"item-{i}")
        for i in range(count)
    ]


def assert_in_input_order(
    results: list[ItemResult[api.Transaction]], sent: list[NewTransaction]
) -> None:
    assert len(results) == len(sent)
    for result, item in zip(results, sent, strict=True):
        transaction = result.unwrap()
        assert (transaction.description, transaction.amount) == (item.description, item.amount)


@pytest.mark.parametrize(
    ("count", "calls"),
    [(0, []), (1, [1]), (1000, [1000]), (1001, [1000, 1]), (2500, [1000, 1000, 500])],
)
def test_a_batch_is_split_into_calls_of_at_most_1000_in_order(
    fake: FakeLedger, ledger: Ledger, count: int, calls: list[int]
) -> None:
    assert limits.batch_items_max == 1000
    fake.on("CreateTransactions", echo_transactions())
    sent = items(count)
    results = ledger("create_transactions", sent)
    assert [len(r.transactions) for r in fake.requests("CreateTransactions")] == calls
    assert_in_input_order(results, sent)
    # The calls carry the items in input order, each with its own key.
    carried = [item for r in fake.requests("CreateTransactions") for item in r.transactions]
    assert [item.description for item in carried] == [item.description for item in sent]
    keys = [item.idempotency_key for item in carried]
    assert all(keys) and len(set(keys)) == count
    assert [result.idempotency_key for result in results] == keys


def test_items_may_be_requests_and_keep_their_keys(fake: FakeLedger, ledger: Ledger) -> None:
    fake.on("CreateTransactions", echo_transactions())
    mine = api.CreateTransactionRequest(
        account_id=ACCOUNTS[0], amount=7, description="item-0", idempotency_key="mine"
    )
    keyless = api.CreateTransactionRequest(account_id=ACCOUNTS[1], amount=8, description="x")
    given = NewTransaction(ACCOUNTS[2], 9, idempotency_key="given")
    results = ledger("create_transactions", iter([mine, keyless, given]))
    assert [r.idempotency_key for r in results][::2] == ["mine", "given"]
    assert results[1].idempotency_key and keyless.idempotency_key == ""  # not changed
    with pytest.raises(TypeError):
        ledger("create_transactions", [{"account_id": ACCOUNTS[0]}])


def test_transient_item_failures_are_resent_alone_with_their_keys(
    fake: FakeLedger, ledger: Ledger
) -> None:
    fake.on(
        "CreateTransactions",
        echo_transactions(
            fail_once=frozenset({"item-3", "item-1500"}), refuse=frozenset({"item-4"})
        ),
    )
    sent = items(2000)
    results = ledger("create_transactions", sent)
    calls = fake.requests("CreateTransactions")
    assert [len(call.transactions) for call in calls] == [1000, 1, 1000, 1]
    first_try = {item.description: item.idempotency_key for item in calls[0].transactions}
    assert calls[1].transactions[0].description == "item-3"
    assert calls[1].transactions[0].idempotency_key == first_try["item-3"]  # the same key
    assert calls[3].transactions[0].description == "item-1500"
    refused = results[4]
    assert not refused.ok and refused.value is None
    assert isinstance(refused.error, InvalidArgument) and refused.error.reason == "INVALID_AMOUNT"
    assert refused.error.idempotency_key == refused.idempotency_key == first_try["item-4"]
    with pytest.raises(InvalidArgument):
        refused.unwrap()
    assert_in_input_order(results[:4] + results[5:], sent[:4] + sent[5:])


def test_a_failed_call_is_resent_whole_with_the_same_keys(fake: FakeLedger, ledger: Ledger) -> None:
    fake.on("CreateTransactions", unavailable(reason=None), echo_transactions())
    sent = items(10)
    results = ledger("create_transactions", sent)
    first, second = fake.requests("CreateTransactions")
    assert first == second
    assert_in_input_order(results, sent)


def test_a_call_that_fails_for_good_stops_the_batch(fake: FakeLedger, ledger: Ledger) -> None:
    echo = echo_transactions()
    refused = Fail(grpc.StatusCode.UNAUTHENTICATED, "unknown token", "TOKEN_UNKNOWN")
    fake.on("CreateTransactions", echo, refused)
    sent = items(2500)
    results = ledger("create_transactions", sent)
    assert [len(r.transactions) for r in fake.requests("CreateTransactions")] == [1000, 1000]
    assert_in_input_order(results[:1000], sent[:1000])
    rest = results[1000:]
    assert len(rest) == 1500 and not any(result.ok for result in rest)
    assert all(isinstance(result.error, Unauthenticated) for result in rest)
    assert len({result.idempotency_key for result in rest}) == 1500


def test_items_still_failing_at_the_deadline_carry_their_error(
    fake: FakeLedger, ledger: Ledger
) -> None:
    def always_unavailable(request: api.CreateAccountsRequest) -> api.CreateAccountsResponse:
        status = item_failure(grpc.StatusCode.UNAVAILABLE, "no quorum", "SHARD_UNAVAILABLE")
        return api.CreateAccountsResponse(
            results=[api.CreateAccountResult(status=status) for _ in request.accounts]
        )

    fake.on("CreateAccounts", always_unavailable)
    policy = RetryPolicy(backoff_initial_s=0.0, backoff_max_s=0.0, attempts_max=3)
    results = ledger("create_accounts", idempotency_keys=["a", "b"], retry=policy)
    assert [r.idempotency_key for r in results] == ["a", "b"]
    assert all(isinstance(r.error, Unavailable) and r.error.attempts == 3 for r in results)
    assert [[a.idempotency_key for a in r.accounts] for r in fake.requests("CreateAccounts")] == [
        ["a", "b"]
    ] * 3


def test_create_accounts_by_count_or_keys(fake: FakeLedger, ledger: Ledger) -> None:
    def accounts(request: api.CreateAccountsRequest) -> api.CreateAccountsResponse:
        return api.CreateAccountsResponse(
            results=[
                api.CreateAccountResult(account=api.Account(id=f"{n:016x}"))
                for n in range(len(request.accounts))
            ]
        )

    fake.on("CreateAccounts", accounts)
    assert len(ledger("create_accounts", 1001)) == 1001
    made = ledger("create_accounts", idempotency_keys=["k1", None, "", "k4"])
    keys = [r.idempotency_key for r in made]
    assert keys[0] == "k1" and keys[3] == "k4" and keys[1] and keys[2] and keys[1] != keys[2]
    assert all(r.ok for r in made)
    assert [len(r.accounts) for r in fake.requests("CreateAccounts")] == [1000, 1, 4]
    assert ledger("create_accounts", 0) == []
    with pytest.raises(TypeError):
        ledger("create_accounts")
    with pytest.raises(TypeError):
        ledger("create_accounts", 2, idempotency_keys=["a"])
    with pytest.raises(ValueError):
        ledger("create_accounts", -1)
