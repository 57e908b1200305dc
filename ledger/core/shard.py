"""One entry point to a shard's step machines: accounts and transactions, and transfers.

The replication layer applies commands and answers queries through ``ShardCore`` and never has
to know which machine owns a command.
"""

from __future__ import annotations

from ledger.core.accounts import AccountsCore, Applied, Result, StoreReader
from ledger.core.commands import Command, Query
from ledger.core.outcomes import Failure
from ledger.core.records import Transfer, TransferCredit
from ledger.core.transfers import (
    BeginTransfer,
    CreditTransfer,
    FinishTransfer,
    GetTransfer,
    InFlight,
    ListInFlightTransfers,
    TransferCommand,
    TransferCore,
    TransferQuery,
    TransferStep,
)

__all__ = ["AnyCommand", "AnyQuery", "AnyResult", "ShardCore"]

AnyCommand = Command | TransferCommand
AnyQuery = Query | TransferQuery
AnyResult = Result | Transfer | TransferCredit | InFlight
_TRANSFER_COMMANDS = (BeginTransfer, CreditTransfer, FinishTransfer)
_TRANSFER_QUERIES = (GetTransfer, ListInFlightTransfers)


class ShardCore:
    def __init__(self, store: StoreReader) -> None:
        self._accounts = AccountsCore(store)
        self._transfers = TransferCore(store)

    def execute(self, command: AnyCommand) -> Applied | TransferStep:
        if isinstance(command, _TRANSFER_COMMANDS):
            return self._transfers.execute(command)
        return self._accounts.execute(command)

    def expire_hold(self, account_id: int, number: int, clock_ns: int) -> Applied:
        return self._accounts.expire_hold(account_id, number, clock_ns)

    def query(self, query: AnyQuery) -> AnyResult | Failure:
        if isinstance(query, _TRANSFER_QUERIES):
            return self._transfers.query(query)
        return self._accounts.query(query)
