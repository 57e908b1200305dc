"""Conversions between the internal protobuf messages and the core's commands and results.

Everything the replicated log carries is protobuf (compact, versioned by field numbers); the core
works on plain dataclasses. Malformed commands from the wire decode to a ``Failure``, never to an
exception: nothing a peer sends may wedge the apply loop.
"""

from __future__ import annotations

from ledger import limits
from ledger.core import (
    Account,
    CancelTransaction,
    Command,
    CreateAccount,
    CreateTransaction,
    Failure,
    GetAccount,
    GetTransaction,
    ListTransactions,
    Query,
    Reason,
    Result,
    SettleTransaction,
    Status,
    Transaction,
    TransactionPage,
)
from ledger.pb import ledger_internal_pb2 as pb

__all__ = [
    "account_to_pb",
    "command_from_pb",
    "query_from_pb",
    "result_to_pb",
    "transaction_to_pb",
]

_PB_STATUS = {status: pb.Status.Value("STATUS_" + status.name) for status in Status}
_INVALID_COMMAND = Failure.of(Reason.INVALID_COMMAND, "malformed command")


def command_from_pb(message: pb.Command) -> Command | Failure:
    kind = message.WhichOneof("kind")
    now_ns = message.now_ns
    if kind == "create_transaction":
        body = message.create_transaction
        return CreateTransaction(
            body.account_id, body.amount, body.description, body.settled, now_ns,
            body.idempotency_key,
        )
    if kind == "create_account":
        return CreateAccount(
            message.create_account.account_id, now_ns, message.create_account.idempotency_key
        )
    if kind == "settle_transaction":
        body_s = message.settle_transaction
        return SettleTransaction(body_s.account_id, body_s.transaction_number, now_ns)
    if kind == "cancel_transaction":
        body_c = message.cancel_transaction
        return CancelTransaction(body_c.account_id, body_c.transaction_number, now_ns)
    return _INVALID_COMMAND


def query_from_pb(message: pb.Query) -> Query | Failure:
    kind = message.WhichOneof("kind")
    if kind == "get_account":
        return GetAccount(message.get_account.account_id)
    if kind == "get_transaction":
        body = message.get_transaction
        return GetTransaction(body.account_id, body.transaction_number)
    if kind == "list_transactions":
        body_l = message.list_transactions
        if len(body_l.page_token) > limits.page_token_chars_max:
            return Failure.of(Reason.INVALID_PAGE_TOKEN, "malformed page token")
        return ListTransactions(body_l.account_id, body_l.page_size, body_l.page_token)
    return _INVALID_COMMAND


def account_to_pb(account: Account) -> pb.AccountRecord:
    return pb.AccountRecord(
        account_id=account.account_id,
        available_balance=account.available_balance,
        settled_balance=account.settled_balance,
        created_at_ns=account.created_at_ns,
        updated_at_ns=account.updated_at_ns,
        transaction_count=account.transaction_count,
        idempotency_key=account.idempotency_key,
    )


def transaction_to_pb(transaction: Transaction) -> pb.TransactionRecord:
    return pb.TransactionRecord(
        account_id=transaction.account_id,
        transaction_number=transaction.transaction_number,
        amount=transaction.amount,
        description=transaction.description,
        status=_PB_STATUS[transaction.status],
        created_at_ns=transaction.created_at_ns,
        updated_at_ns=transaction.updated_at_ns,
    )


def result_to_pb(result: Result) -> pb.Result:
    if isinstance(result, Transaction):
        return pb.Result(transaction=transaction_to_pb(result))
    if isinstance(result, Account):
        return pb.Result(account=account_to_pb(result))
    if isinstance(result, Failure):
        error = pb.Error(reason=result.reason.value, message=result.message)
        for key, value in result.metadata:
            error.metadata[key] = value
        return pb.Result(error=error)
    assert isinstance(result, TransactionPage)
    page = pb.TransactionPage(next_page_token=result.next_page_token)
    page.transactions.extend(transaction_to_pb(t) for t in result.transactions)
    return pb.Result(page=page)
