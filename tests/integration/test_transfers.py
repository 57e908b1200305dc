"""CreateTransfer and GetTransfer against a live standalone server and a live cluster.

Goal: a transfer between accounts on different shards (and on the same shard) completes with
both sides settled and each side listing one transaction that carries the transfer id; without
the funds nothing moves; every bad input gets its documented status and changes nothing; an
idempotency key returns the same transfer. Method: the ``service`` fixture (both kinds), public
API only.
"""

from __future__ import annotations

import time

import grpc
import pytest

from integration.errors import expect_error
from ledger import ids
from ledger.pb import ledger_api_pb2 as api
from ledger.pb import ledger_api_pb2_grpc

Stub = ledger_api_pb2_grpc.LedgerServiceApiStub
call_timeout_s = 15.0


def account_on(stub: Stub, same_shard_as: str | None, *, same: bool) -> str:
    """A new account whose shard is (or is not) the one of ``same_shard_as``."""
    for _ in range(200):
        account = stub.CreateAccount(api.CreateAccountRequest(), timeout=call_timeout_s).account
        if same_shard_as is None:
            return str(account.id)
        on_same = shard(account.id) == shard(same_shard_as)
        if on_same == same:
            return str(account.id)
    raise AssertionError("no account landed where wanted")


def shard(account_id: str) -> int:
    return ids.shard_index(ids.parse_account_id(account_id))


def top_up(stub: Stub, account_id: str, amount: int) -> None:
    stub.CreateTransaction(
        api.CreateTransactionRequest(account_id=account_id, amount=amount, settled=True),
        timeout=call_timeout_s,
    )


def balances(stub: Stub, account_id: str) -> tuple[int, int]:
    account = stub.GetAccount(
        api.GetAccountRequest(account_id=account_id), timeout=call_timeout_s
    ).account
    return account.available_balance, account.settled_balance


def history(stub: Stub, account_id: str) -> list[api.Transaction]:
    return list(
        stub.ListTransactions(
            api.ListTransactionsRequest(account_id=account_id), timeout=call_timeout_s
        ).transactions
    )


def transfer(
    stub: Stub, source: str, target: str, amount: int, key: str = "", description: str = "rent"
) -> api.Transfer:
    return stub.CreateTransfer(
        api.CreateTransferRequest(
            from_account_id=source,
            to_account_id=target,
            amount=amount,
            description=description,
            idempotency_key=key,
        ),
        timeout=call_timeout_s,
    ).transfer


@pytest.mark.parametrize("same_shard", [False, True], ids=["across-shards", "same-shard"])
def test_a_transfer_completes_and_shows_on_both_sides(stub: Stub, same_shard: bool) -> None:
    source = account_on(stub, None, same=True)
    target = account_on(stub, source, same=same_shard)
    top_up(stub, source, 100)
    done = transfer(stub, source, target, 30)
    assert done.status == api.TRANSFER_STATUS_COMPLETED
    assert (done.from_account_id, done.to_account_id, done.amount) == (source, target, 30)
    assert done.id == done.debit_transaction_id and done.credit_transaction_id
    assert balances(stub, source) == (70, 70) and balances(stub, target) == (30, 30)
    debit = [t for t in history(stub, source) if t.transfer_id == done.id]
    credit = [t for t in history(stub, target) if t.transfer_id == done.id]
    assert [(t.amount, t.status, t.id) for t in debit] == [
        (-30, api.TRANSACTION_STATUS_SETTLED, done.debit_transaction_id)
    ]
    assert [(t.amount, t.status, t.id) for t in credit] == [
        (30, api.TRANSACTION_STATUS_SETTLED, done.credit_transaction_id)
    ]
    fetched = stub.GetTransfer(
        api.GetTransferRequest(transfer_id=done.id), timeout=call_timeout_s
    ).transfer
    assert fetched == done
    # Both sides belong to the transfer: no client settles or cancels them.
    for transaction_id in (done.debit_transaction_id, done.credit_transaction_id):
        for call, request in (
            (stub.SettleTransaction, api.SettleTransactionRequest),
            (stub.CancelTransaction, api.CancelTransactionRequest),
        ):
            expect_error(
                lambda: call(request(transaction_id=transaction_id), timeout=call_timeout_s),
                grpc.StatusCode.FAILED_PRECONDITION,
                "TRANSACTION_IN_TRANSFER",
            )
    assert balances(stub, source) == (70, 70) and balances(stub, target) == (30, 30)


def test_without_the_funds_nothing_moves(stub: Stub) -> None:
    source = account_on(stub, None, same=True)
    target = account_on(stub, source, same=False)
    top_up(stub, source, 10)
    short = transfer(stub, source, target, 11)
    assert short.status == api.TRANSFER_STATUS_INSUFFICIENT_FUNDS
    assert not short.credit_transaction_id
    assert balances(stub, source) == (10, 10) and balances(stub, target) == (0, 0)
    assert history(stub, target) == []


def test_an_idempotency_key_returns_the_same_transfer(stub: Stub) -> None:
    source = account_on(stub, None, same=True)
    target = account_on(stub, source, same=False)
    top_up(stub, source, 50)
    first = transfer(stub, source, target, 20, key="pay-1")
    assert transfer(stub, source, target, 20, key="pay-1") == first
    assert balances(stub, source) == (30, 30)
    with pytest.raises(grpc.RpcError) as reused:
        transfer(stub, source, target, 21, key="pay-1")
    assert reused.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert balances(stub, source) == (30, 30) and balances(stub, target) == (20, 20)


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("same-account", grpc.StatusCode.INVALID_ARGUMENT),
        ("zero", grpc.StatusCode.INVALID_ARGUMENT),
        ("negative", grpc.StatusCode.INVALID_ARGUMENT),
        ("bad-id", grpc.StatusCode.INVALID_ARGUMENT),
        ("unknown-destination", grpc.StatusCode.NOT_FOUND),
        ("unknown-source", grpc.StatusCode.NOT_FOUND),
        ("long-description", grpc.StatusCode.INVALID_ARGUMENT),
    ],
)
def test_bad_transfers_get_their_status_and_change_nothing(
    stub: Stub, case: str, code: grpc.StatusCode
) -> None:
    source = account_on(stub, None, same=True)
    target = account_on(stub, source, same=False)
    top_up(stub, source, 40)
    request = {
        "same-account": dict(to_account_id=source, amount=5),
        "zero": dict(amount=0),
        "negative": dict(amount=-5),
        "bad-id": dict(to_account_id="not-an-id", amount=5),
        "unknown-destination": dict(to_account_id="00000000000000ab", amount=5),
        "unknown-source": dict(from_account_id="00000000000000ab", amount=5),
        "long-description": dict(amount=5, description="x" * 10_000),
    }[case]
    fields = {"from_account_id": source, "to_account_id": target, **request}
    with pytest.raises(grpc.RpcError) as refused:
        stub.CreateTransfer(api.CreateTransferRequest(**fields), timeout=call_timeout_s)
    assert refused.value.code() == code
    assert balances(stub, source) == (40, 40) and balances(stub, target) == (0, 0)
    assert len(history(stub, source)) == 1 and history(stub, target) == []


def test_get_transfer_of_an_unknown_or_malformed_id(stub: Stub) -> None:
    source = account_on(stub, None, same=True)
    with pytest.raises(grpc.RpcError) as missing:
        stub.GetTransfer(
            api.GetTransferRequest(transfer_id=source + "0" * 15 + "9"), timeout=call_timeout_s
        )
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as malformed:
        stub.GetTransfer(api.GetTransferRequest(transfer_id="xyz"), timeout=call_timeout_s)
    assert malformed.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_pending_hold_with_a_timeout_is_cancelled_on_its_own(stub: Stub) -> None:
    """Nothing else writes to the shard: the gateway's resolver moves its clock (Tick)."""
    account = account_on(stub, None, same=True)
    top_up(stub, account, 50)
    held = stub.CreateTransaction(
        api.CreateTransactionRequest(
            account_id=account, amount=-20, settled=False, hold_timeout_ms=500
        ),
        timeout=call_timeout_s,
    ).transaction
    assert held.status == api.TRANSACTION_STATUS_PENDING and held.expires_at > held.created_at
    assert balances(stub, account) == (30, 50)
    deadline = time.monotonic() + 15.0
    while time.monotonic() < deadline:
        found = stub.GetTransaction(
            api.GetTransactionRequest(transaction_id=held.id), timeout=call_timeout_s
        ).transaction
        if found.status == api.TRANSACTION_STATUS_CANCELLED:
            break
        time.sleep(0.2)
    assert found.status == api.TRANSACTION_STATUS_CANCELLED
    assert balances(stub, account) == (50, 50)
    with pytest.raises(grpc.RpcError) as refused:
        stub.CreateTransaction(
            api.CreateTransactionRequest(
                account_id=account, amount=-5, settled=True, hold_timeout_ms=500
            ),
            timeout=call_timeout_s,
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
