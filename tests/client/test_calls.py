"""Each client method sends its rpc with the right fields and returns the right message; writes
carry idempotency keys; the token rides on every call; failures become typed exceptions with
the server's reason and metadata.

Method: the scripted in-process server (``fake_server``) answers; every test runs on the sync
and on the async client (the ``ledger`` fixture).
"""

from __future__ import annotations

import pickle

import grpc
import pytest
from harness import free_port

from client.conftest import Ledger
from client.fake_server import Fail, FakeLedger, item_failure
from ledger.client import (
    AlreadyExists,
    ClientSecurity,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    LedgerClient,
    LedgerError,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    Unimplemented,
)
from ledger.client.errors import error_for, error_from_item
from ledger.pb import ledger_api_pb2 as api

ACCOUNT = "0123456789abcdef"
OTHER = "fedcba9876543210"
TX = ACCOUNT + "0000000000000002"


def _transaction(**fields: object) -> api.Transaction:
    return api.Transaction(id=TX, amount=-10, status=api.TRANSACTION_STATUS_PENDING, **fields)


def test_every_rpc_has_its_method(fake: FakeLedger, ledger: Ledger) -> None:
    account = api.Account(id=ACCOUNT, available_balance=90, settled_balance=100)
    transaction = _transaction(description="Purchase 1")
    settled = api.Transaction(id=TX, amount=-10, status=api.TRANSACTION_STATUS_SETTLED)
    transfer = api.Transfer(id=TX, from_account_id=ACCOUNT, to_account_id=OTHER, amount=5)
    page = api.ListTransactionsResponse(transactions=[transaction], next_page_token="next")
    fake.on("GetAccount", api.GetAccountResponse(account=account))
    fake.on("CreateAccount", api.CreateAccountResponse(account=account))
    fake.on("GetTransaction", api.GetTransactionResponse(transaction=transaction))
    fake.on("CreateTransaction", api.CreateTransactionResponse(transaction=transaction))
    fake.on("SettleTransaction", api.SettleTransactionResponse(transaction=settled))
    fake.on("CancelTransaction", api.CancelTransactionResponse(transaction=settled))
    fake.on("ListTransactions", page)
    fake.on("CreateTransfer", api.CreateTransferResponse(transfer=transfer))
    fake.on("GetTransfer", api.GetTransferResponse(transfer=transfer))

    assert ledger("get_account", ACCOUNT) == account
    assert ledger("create_account") == account
    assert ledger("get_transaction", TX) == transaction
    made = ledger(
        "create_transaction",
        ACCOUNT,
        -10,
        description="Purchase 1",
        settled=False,
        hold_timeout_ms=60_000,
    )
    assert made == transaction
    assert ledger("settle_transaction", TX) == settled
    assert ledger("cancel_transaction", TX) == settled
    assert ledger("list_transactions", ACCOUNT, page_size=7, page_token="abc") == page
    moved = ledger("create_transfer", ACCOUNT, OTHER, 5, description="rent", idempotency_key="k")
    assert moved == transfer
    assert ledger("get_transfer", TX) == transfer

    assert fake.requests("GetAccount") == [api.GetAccountRequest(account_id=ACCOUNT)]
    assert fake.requests("GetTransaction") == [api.GetTransactionRequest(transaction_id=TX)]
    (create,) = fake.requests("CreateTransaction")
    assert (create.account_id, create.amount, create.description) == (ACCOUNT, -10, "Purchase 1")
    assert (create.settled, create.hold_timeout_ms) == (False, 60_000)
    assert create.idempotency_key  # drawn by the client
    assert fake.requests("SettleTransaction") == [api.SettleTransactionRequest(transaction_id=TX)]
    assert fake.requests("CancelTransaction") == [api.CancelTransactionRequest(transaction_id=TX)]
    assert fake.requests("ListTransactions") == [
        api.ListTransactionsRequest(account_id=ACCOUNT, page_size=7, page_token="abc")
    ]
    assert fake.requests("CreateTransfer") == [
        api.CreateTransferRequest(
            from_account_id=ACCOUNT,
            to_account_id=OTHER,
            amount=5,
            description="rent",
            idempotency_key="k",
        )
    ]
    assert fake.requests("GetTransfer") == [api.GetTransferRequest(transfer_id=TX)]
    # Only the batch rpcs are left, and they have their own tests.
    called = {seen.method for seen in fake.seen}
    assert called | {"CreateAccounts", "CreateTransactions"} == set(
        api.DESCRIPTOR.services_by_name["LedgerServiceApi"].methods_by_name
    )


def test_every_write_gets_a_fresh_key_unless_given_one(fake: FakeLedger, ledger: Ledger) -> None:
    fake.on("CreateAccount", api.CreateAccountResponse(account=api.Account(id=ACCOUNT)))
    fake.on("CreateTransaction", api.CreateTransactionResponse(transaction=_transaction()))
    fake.on("CreateTransfer", api.CreateTransferResponse(transfer=api.Transfer(id=TX)))
    for _ in range(2):
        ledger("create_account")
        ledger("create_transaction", ACCOUNT, 1)
        ledger("create_transfer", ACCOUNT, OTHER, 1)
    ledger("create_account", idempotency_key="mine-1")
    ledger("create_transaction", ACCOUNT, 1, idempotency_key="mine-2")
    ledger("create_transfer", ACCOUNT, OTHER, 1, idempotency_key="mine-3")
    for method, mine in (
        ("CreateAccount", "mine-1"),
        ("CreateTransaction", "mine-2"),
        ("CreateTransfer", "mine-3"),
    ):
        keys = [request.idempotency_key for request in fake.requests(method)]
        assert keys[2] == mine
        assert len(set(keys)) == 3 and all(keys)
        assert all(0 < len(key.encode()) <= 128 for key in keys)  # the server's limit


def test_the_token_rides_on_every_call(fake: FakeLedger, ledger: Ledger) -> None:
    fake.on("GetAccount", api.GetAccountResponse(account=api.Account(id=ACCOUNT)))
    ledger("get_account", ACCOUNT, security=ClientSecurity.load(token=" ledger_abc "))
    ledger("get_account", ACCOUNT)
    with_token, without = fake.calls("GetAccount")
    assert with_token.metadata["authorization"] == "Bearer ledger_abc"
    assert "authorization" not in without.metadata


@pytest.mark.parametrize(
    ("code", "reason", "cls"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ACCOUNT_ID", InvalidArgument),
        (grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND", NotFound),
        (grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED", AlreadyExists),
        (grpc.StatusCode.FAILED_PRECONDITION, "TRANSACTION_NOT_PENDING", FailedPrecondition),
        (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING", Unauthenticated),
        (grpc.StatusCode.PERMISSION_DENIED, "INSUFFICIENT_SCOPE", PermissionDenied),
        (grpc.StatusCode.INTERNAL, "INTERNAL", Internal),
        (grpc.StatusCode.UNIMPLEMENTED, None, Unimplemented),
    ],
)
def test_failures_become_typed_errors_with_their_reason(
    fake: FakeLedger, ledger: Ledger, code: grpc.StatusCode, reason: str | None, cls: type
) -> None:
    metadata = {"account_id": ACCOUNT} if reason else {}
    fake.on("GetAccount", Fail(code, "what went wrong", reason, metadata))
    with pytest.raises(cls) as caught:
        ledger("get_account", ACCOUNT)
    error = caught.value
    assert isinstance(error, LedgerError)
    assert error.code == code and error.message == "what went wrong"
    assert error.reason == (reason or "") and error.metadata == metadata
    assert error.attempts == 1 and error.idempotency_key is None
    assert str(error).startswith(f"{code.name}: what went wrong")
    assert len(fake.calls("GetAccount")) == 1  # none of these is retried


def test_a_failed_write_names_its_key(fake: FakeLedger, ledger: Ledger) -> None:
    fake.on("CreateTransaction", Fail(grpc.StatusCode.INVALID_ARGUMENT, "no", "INVALID_AMOUNT"))
    with pytest.raises(InvalidArgument) as caught:
        ledger("create_transaction", ACCOUNT, 0, idempotency_key="k-0")
    assert caught.value.idempotency_key == "k-0"
    assert caught.value.reason == "INVALID_AMOUNT"


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (grpc.StatusCode.UNAVAILABLE, Unavailable),
        (grpc.StatusCode.DEADLINE_EXCEEDED, DeadlineExceeded),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, ResourceExhausted),
        (grpc.StatusCode.NOT_FOUND, NotFound),
        (grpc.StatusCode.OUT_OF_RANGE, InvalidArgument),
        (grpc.StatusCode.DATA_LOSS, Internal),
    ],
)
def test_batch_item_statuses_map_like_calls(code: grpc.StatusCode, cls: type) -> None:
    status = item_failure(code, "shard has no quorum", "SHARD_UNAVAILABLE")
    status.metadata["shard"] = "3"
    error = error_from_item(status, attempts=2, idempotency_key="k")
    assert type(error) is cls
    assert (error.code, error.reason, error.message) == (code, "SHARD_UNAVAILABLE", status.message)
    assert (error.metadata, error.attempts, error.idempotency_key) == ({"shard": "3"}, 2, "k")
    unknown = error_from_item(api.ItemStatus(code=99))  # a code from the future
    assert type(unknown) is Internal and unknown.code == grpc.StatusCode.UNKNOWN


def test_an_unreachable_server_is_unavailable_fast() -> None:
    with LedgerClient(f"127.0.0.1:{free_port()}") as client, pytest.raises(Unavailable):
        client.wait_for_ready(0.2)


def test_errors_survive_pickling() -> None:
    error = error_for(
        grpc.StatusCode.NOT_FOUND,
        "account not found",
        "ACCOUNT_NOT_FOUND",
        {"account_id": ACCOUNT},
        attempts=2,
        idempotency_key="k",
    )
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is NotFound and repr(copy) == repr(error) and str(copy) == str(error)
    assert copy.idempotency_key == "k"
