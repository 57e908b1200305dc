"""Internal result records -> public API messages (the gateway's presentation layer)."""

from __future__ import annotations

from ledger import ids
from ledger.pb import ledger_api_pb2 as api
from ledger.pb import ledger_internal_pb2 as pb

__all__ = ["account_to_api", "transaction_to_api"]

# Internal status -> public status, matched by name once at import (the numbers agree too).
_PUBLIC_STATUS = {
    value: api.TransactionStatus.Value("TRANSACTION_" + name)
    for name, value in pb.Status.items()
}


def account_to_api(record: pb.AccountRecord) -> api.Account:
    return api.Account(
        id=ids.format_account_id(record.account_id),
        available_balance=record.available_balance,
        settled_balance=record.settled_balance,
        created_at=record.created_at_ns,
        updated_at=record.updated_at_ns,
    )


def transaction_to_api(record: pb.TransactionRecord) -> api.Transaction:
    return api.Transaction(
        id=ids.format_transaction_id(record.account_id, record.transaction_number),
        amount=record.amount,
        description=record.description,
        status=_PUBLIC_STATUS[record.status],
        created_at=record.created_at_ns,
        updated_at=record.updated_at_ns,
    )
