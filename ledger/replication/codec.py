"""Conversions between the internal protobuf messages and the core's commands and results.

Everything the replicated log carries is protobuf (compact, versioned by field numbers); the core
works on plain dataclasses. Malformed commands from the wire decode to a ``Failure``, never to an
exception: nothing a peer sends may wedge the apply loop.
"""

from __future__ import annotations

from typing import cast

from ledger import limits
from ledger.core import (
    Account,
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
from ledger.core.commands import Tick
from ledger.core.records import Transfer, TransferCredit, TransferStatus
from ledger.core.shard import AnyCommand, AnyQuery, AnyResult
from ledger.core.transfers import (
    BeginTransfer,
    CreditTransfer,
    FinishTransfer,
    GetTransfer,
    InFlight,
    ListInFlightTransfers,
)
from ledger.pb import ledger_internal_pb2 as pb

__all__ = [
    "account_to_pb",
    "command_from_pb",
    "query_from_pb",
    "result_to_pb",
    "transaction_to_pb",
    "transfer_to_pb",
]

# Core enum -> wire enum, by name (enum lookups are typed as plain int, hence the casts).
_PB_STATUS: dict[Status, pb.Status] = {
    status: cast("pb.Status", pb.Status.Value("STATUS_" + status.name)) for status in Status
}
_PB_TRANSFER_STATUS: dict[TransferStatus, pb.TransferStatus] = {
    status: cast("pb.TransferStatus", pb.TransferStatus.Value("TRANSFER_STATUS_" + status.name))
    for status in TransferStatus
}
_INVALID_COMMAND = Failure.of(Reason.INVALID_COMMAND, "malformed command")


def command_from_pb(message: pb.Command) -> AnyCommand | Failure:
    kind = message.WhichOneof("kind")
    now_ns = message.now_ns
    if kind == "create_transaction":
        body = message.create_transaction
        return CreateTransaction(
            body.account_id,
            body.amount,
            body.description,
            body.settled,
            now_ns,
            body.idempotency_key,
            body.expires_at_ns,
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
    if kind == "tick":
        return Tick(now_ns)
    return _transfer_command_from_pb(message)


def _transfer_command_from_pb(message: pb.Command) -> AnyCommand | Failure:
    kind = message.WhichOneof("kind")
    now_ns = message.now_ns
    if kind == "begin_transfer":
        begin = message.begin_transfer
        return BeginTransfer(
            begin.from_account_id,
            begin.to_account_id,
            begin.amount,
            begin.description,
            now_ns,
            begin.idempotency_key,
            begin.within_shard,
        )
    if kind == "credit_transfer":
        credit = message.credit_transfer
        if credit.amount <= 0 or credit.from_account_id == credit.to_account_id:
            return _INVALID_COMMAND
        return CreditTransfer(
            credit.to_account_id,
            credit.from_account_id,
            credit.debit_number,
            credit.amount,
            credit.description,
            now_ns,
        )
    if kind == "finish_transfer":
        finish = message.finish_transfer
        decision = finish.credit
        if (decision.credit_number > 0) == bool(decision.refusal_reason):
            return _INVALID_COMMAND  # exactly one of: credited, refused with a reason
        return FinishTransfer(
            finish.from_account_id,
            finish.debit_number,
            TransferCredit(decision.credit_number, decision.refusal_reason),
            now_ns,
        )
    return _INVALID_COMMAND


def query_from_pb(message: pb.Query) -> AnyQuery | Failure:
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
    if kind == "get_transfer":
        return GetTransfer(message.get_transfer.from_account_id, message.get_transfer.debit_number)
    if kind == "list_in_flight_transfers":
        body_f = message.list_in_flight_transfers
        after = (
            (body_f.after_account_id, body_f.after_debit_number)
            if body_f.after_debit_number
            else None
        )
        return ListInFlightTransfers(after, body_f.limit)
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
        transfer_account_id=transaction.transfer_account_id,
        transfer_number=transaction.transfer_number,
        expires_at_ns=transaction.expires_at_ns,
    )


def transfer_to_pb(transfer: Transfer) -> pb.TransferRecord:
    return pb.TransferRecord(
        from_account_id=transfer.from_account_id,
        debit_number=transfer.debit_number,
        to_account_id=transfer.to_account_id,
        amount=transfer.amount,
        status=_PB_TRANSFER_STATUS[transfer.status],
        credit_number=transfer.credit_number,
        created_at_ns=transfer.created_at_ns,
        updated_at_ns=transfer.updated_at_ns,
        description=transfer.description,
    )


def result_to_pb(result: AnyResult) -> pb.Result:
    if isinstance(result, Transfer):
        return pb.Result(transfer=transfer_to_pb(result))
    if isinstance(result, TransferCredit):
        return pb.Result(
            transfer_credit=pb.TransferCreditRecord(
                credit_number=result.credit_number, refusal_reason=result.reason
            )
        )
    if isinstance(result, InFlight):
        return pb.Result(
            transfers=pb.TransferList(
                transfers=[transfer_to_pb(t) for t in result.transfers],
                next_hold_expiry_ns=result.next_hold_expiry_ns,
            )
        )
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
