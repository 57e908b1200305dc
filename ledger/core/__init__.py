"""The pure, deterministic ledger core: imports only ``ledger.limits``, ``ledger.ids`` and
``ledger.reasons``."""

from ledger.core.accounts import AccountsCore, Applied, Result, StoreReader, TransactionPage
from ledger.core.commands import (
    CancelTransaction,
    Command,
    CreateAccount,
    CreateTransaction,
    GetAccount,
    GetTransaction,
    ListTransactions,
    Query,
    SettleTransaction,
)
from ledger.core.outcomes import Failure, Reason
from ledger.core.records import Account, Status, Transaction

__all__ = [
    "Account",
    "AccountsCore",
    "Applied",
    "CancelTransaction",
    "Command",
    "CreateAccount",
    "CreateTransaction",
    "Failure",
    "GetAccount",
    "GetTransaction",
    "ListTransactions",
    "Query",
    "Reason",
    "Result",
    "SettleTransaction",
    "Status",
    "StoreReader",
    "Transaction",
    "TransactionPage",
]
