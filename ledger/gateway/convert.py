"""Internal result records -> public API messages (the gateway's presentation layer)."""

from __future__ import annotations

from typing import cast

from ledger import ids
from ledger.pb import ledger_api_pb2 as api
from ledger.pb import ledger_internal_pb2 as pb

__all__ = ["account_to_api", "transaction_to_api", "transfer_to_api"]

# Internal status -> public status, matched by name once at import (the numbers agree too).
# (Enum lookups are typed as plain int by the protobuf stubs, hence the casts.)
_PUBLIC_STATUS: dict[int, api.TransactionStatus] = {
    value: cast("api.TransactionStatus", api.TransactionStatus.Value("TRANSACTION_" + name))
    for name, value in pb.Status.items()
}


_PUBLIC_TRANSFER_STATUS: dict[int, api.TransferStatus] = {
    value: cast("api.TransferStatus", api.TransferStatus.Value(name))
    for name, value in pb.TransferStatus.items()
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
        transfer_id=(
            ids.format_transaction_id(record.transfer_account_id, record.transfer_number)
            if record.transfer_number
            else ""
        ),
        expires_at=record.expires_at_ns,
    )


def transfer_to_api(record: pb.TransferRecord) -> api.Transfer:
    debit_id = ids.format_transaction_id(record.from_account_id, record.debit_number)
    return api.Transfer(
        id=debit_id,
        from_account_id=ids.format_account_id(record.from_account_id),
        to_account_id=ids.format_account_id(record.to_account_id),
        amount=record.amount,
        description=record.description,
        status=_PUBLIC_TRANSFER_STATUS[record.status],
        debit_transaction_id=debit_id,
        credit_transaction_id=(
            ids.format_transaction_id(record.to_account_id, record.credit_number)
            if record.credit_number
            else ""
        ),
        created_at=record.created_at_ns,
        updated_at=record.updated_at_ns,
    )
