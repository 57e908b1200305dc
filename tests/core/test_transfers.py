"""The transfer steps of ``ledger.core.transfers``: every transition and every refusal.

Goal: begin holds the funds (or ends INSUFFICIENT_FUNDS with nothing moved), credit decides once
and for ever, finish settles or gives back and is a no-op when repeated, a same-shard transfer
is one step, every refusal writes nothing, and both sides carry the transfer reference.
Method: ``TransferCore`` over in-memory shard stores; every step's writes are committed the way
the replication layer does (one batch per step).
"""

from __future__ import annotations

import itertools

import pytest

from ledger import limits
from ledger.core.accounts import AccountsCore
from ledger.core.commands import (
    CancelTransaction,
    CreateAccount,
    CreateTransaction,
    SettleTransaction,
)
from ledger.core.outcomes import Failure, Reason
from ledger.core.records import Status, Transfer, TransferCredit, TransferStatus
from ledger.core.transfers import BeginTransfer, CreditTransfer, FinishTransfer, TransferCore
from ledger.storage.memory import MemoryShardStore

T = 1_700_000_000_000_000_000
SOURCE, TARGET = 0x1111, 0x2222


class Shard:
    """One shard: a store, its step machines, and commit like the replication layer."""

    def __init__(self) -> None:
        self.store = MemoryShardStore()
        self._index = itertools.count(1)

    def commit(self, writes: tuple[tuple[bytes, bytes | None], ...]) -> None:
        if writes:
            self.store.commit(writes, next(self._index))

    @property
    def transfers(self) -> TransferCore:
        return TransferCore(self.store)

    @property
    def accounts(self) -> AccountsCore:
        return AccountsCore(self.store)

    def open_account(self, account_id: int, balance: int = 0) -> None:
        applied = self.accounts.create_account(CreateAccount(account_id, T))
        self.commit(applied.writes)
        if balance:
            applied = self.accounts.create_transaction(
                CreateTransaction(account_id, balance, "top-up", True, T)
            )
            self.commit(applied.writes)

    def balances(self, account_id: int) -> tuple[int, int]:
        account = self.accounts.account(account_id)
        assert account is not None
        return account.available_balance, account.settled_balance

    def step(
        self, result_and_writes: tuple[object, tuple[tuple[bytes, bytes | None], ...]]
    ) -> object:
        result, writes = result_and_writes
        self.commit(writes)
        return result


@pytest.fixture
def shards() -> tuple[Shard, Shard]:
    source, target = Shard(), Shard()
    source.open_account(SOURCE, 100)
    target.open_account(TARGET, 5)
    return source, target


def begin(amount: int = 30, key: bytes = b"", description: str = "rent") -> BeginTransfer:
    return BeginTransfer(SOURCE, TARGET, amount, description, T + 1, key)


def test_begin_holds_the_funds_and_indexes_the_transfer(shards: tuple[Shard, Shard]) -> None:
    source, _ = shards
    transfer = source.step(source.transfers.begin(begin()))
    assert isinstance(transfer, Transfer) and transfer.status == TransferStatus.IN_FLIGHT
    assert source.balances(SOURCE) == (70, 100)  # held, not yet settled
    debit = source.accounts.transaction(SOURCE, transfer.debit_number)
    assert debit is not None and debit.status == Status.PENDING and debit.amount == -30
    assert debit.transfer_key == (SOURCE, transfer.debit_number)
    assert source.transfers.in_flight(None, 10) == [transfer]


def test_without_the_funds_nothing_moves_and_the_transfer_is_final(
    shards: tuple[Shard, Shard],
) -> None:
    source, _ = shards
    transfer = source.step(source.transfers.begin(begin(amount=101)))
    assert isinstance(transfer, Transfer)
    assert transfer.status == TransferStatus.INSUFFICIENT_FUNDS
    assert source.balances(SOURCE) == (100, 100)
    debit = source.accounts.transaction(SOURCE, transfer.debit_number)
    assert debit is not None and debit.status == Status.INSUFFICIENT_FUNDS
    assert source.transfers.in_flight(None, 10) == []


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        (BeginTransfer(SOURCE, SOURCE, 1, "", T), Reason.SAME_ACCOUNT),
        (BeginTransfer(SOURCE, TARGET, 0, "", T), Reason.INVALID_AMOUNT),
        (BeginTransfer(SOURCE, TARGET, -5, "", T), Reason.INVALID_AMOUNT),
        (BeginTransfer(SOURCE, TARGET, limits.int64_max + 1, "", T), Reason.INVALID_AMOUNT),
        (BeginTransfer(0x9999, TARGET, 1, "", T), Reason.ACCOUNT_NOT_FOUND),
        (
            BeginTransfer(SOURCE, TARGET, 1, "x" * (limits.description_bytes_max + 1), T),
            Reason.DESCRIPTION_TOO_LONG,
        ),
        (
            BeginTransfer(SOURCE, TARGET, 1, "", T, b"k" * (limits.idempotency_key_bytes_max + 1)),
            Reason.IDEMPOTENCY_KEY_TOO_LONG,
        ),
    ],
)
def test_a_refused_begin_writes_nothing(
    shards: tuple[Shard, Shard], command: BeginTransfer, reason: Reason
) -> None:
    source, _ = shards
    result, writes = source.transfers.begin(command)
    assert isinstance(result, Failure) and result.reason == reason and writes == ()


def test_an_idempotency_key_returns_the_same_transfer(shards: tuple[Shard, Shard]) -> None:
    source, _ = shards
    first = source.step(source.transfers.begin(begin(key=b"k1")))
    replay, writes = source.transfers.begin(begin(key=b"k1"))
    assert replay == first and writes == ()
    reused, writes = source.transfers.begin(begin(amount=31, key=b"k1"))
    assert isinstance(reused, Failure) and reused.reason == Reason.IDEMPOTENCY_KEY_REUSED
    assert writes == () and source.balances(SOURCE) == (70, 100)


def credit_of(transfer: Transfer) -> CreditTransfer:
    return CreditTransfer(
        transfer.to_account_id,
        transfer.from_account_id,
        transfer.debit_number,
        transfer.amount,
        transfer.description,
        T + 2,
    )


def test_credit_is_decided_once(shards: tuple[Shard, Shard]) -> None:
    source, target = shards
    transfer = source.step(source.transfers.begin(begin()))
    assert isinstance(transfer, Transfer)
    decision = target.step(target.transfers.credit(credit_of(transfer)))
    assert isinstance(decision, TransferCredit) and decision.credited
    assert target.balances(TARGET) == (35, 35)
    credit = target.accounts.transaction(TARGET, decision.credit_number)
    assert credit is not None and credit.status == Status.SETTLED and credit.amount == 30
    assert credit.transfer_key == (SOURCE, transfer.debit_number)
    again, writes = target.transfers.credit(credit_of(transfer))
    assert again == decision and writes == ()
    assert target.balances(TARGET) == (35, 35)


def test_a_refused_credit_stays_refused(shards: tuple[Shard, Shard]) -> None:
    source, _ = shards
    transfer = source.step(source.transfers.begin(BeginTransfer(SOURCE, 0x7777, 10, "", T)))
    assert isinstance(transfer, Transfer)
    elsewhere = Shard()  # the destination's shard, where 0x7777 does not exist yet
    decision = elsewhere.step(elsewhere.transfers.credit(credit_of(transfer)))
    assert decision == TransferCredit(0, Reason.ACCOUNT_NOT_FOUND.name)
    elsewhere.open_account(0x7777)
    assert elsewhere.transfers.credit(credit_of(transfer)) == (decision, ())


def test_a_credit_that_would_overflow_is_refused(shards: tuple[Shard, Shard]) -> None:
    source, target = shards
    transfer = source.step(source.transfers.begin(begin(amount=10)))
    assert isinstance(transfer, Transfer)
    target.step(
        target.accounts.create_transaction(
            CreateTransaction(TARGET, limits.int64_max - 5, "", True, T)
        )
    )
    decision = target.step(target.transfers.credit(credit_of(transfer)))
    assert decision == TransferCredit(0, Reason.BALANCE_OVERFLOW.name)


def test_finish_completes_or_gives_back_and_a_repeat_changes_nothing(
    shards: tuple[Shard, Shard],
) -> None:
    source, target = shards
    done = source.step(source.transfers.begin(begin()))
    refused = source.step(source.transfers.begin(BeginTransfer(SOURCE, 0x7777, 20, "", T)))
    assert isinstance(done, Transfer) and isinstance(refused, Transfer)
    decision = target.step(target.transfers.credit(credit_of(done)))
    assert isinstance(decision, TransferCredit)
    completed = source.step(
        source.transfers.finish(FinishTransfer(SOURCE, done.debit_number, decision, T + 3))
    )
    failed = source.step(
        source.transfers.finish(
            FinishTransfer(
                SOURCE, refused.debit_number, TransferCredit(0, "ACCOUNT_NOT_FOUND"), T + 3
            )
        )
    )
    assert isinstance(completed, Transfer) and completed.status == TransferStatus.COMPLETED
    assert completed.credit_number == decision.credit_number
    assert isinstance(failed, Transfer) and failed.status == TransferStatus.FAILED
    assert source.balances(SOURCE) == (70, 70)  # 30 left, 20 given back
    assert source.transfers.in_flight(None, 10) == []
    debit = source.accounts.transaction(SOURCE, refused.debit_number)
    assert debit is not None and debit.status == Status.CANCELLED
    again, writes = source.transfers.finish(
        FinishTransfer(SOURCE, done.debit_number, decision, T + 4)
    )
    assert again == completed and writes == ()
    missing, writes = source.transfers.finish(FinishTransfer(SOURCE, 99, decision, T))
    assert isinstance(missing, Failure) and missing.reason == Reason.TRANSFER_NOT_FOUND
    assert writes == ()


def test_a_client_cannot_settle_or_cancel_a_transfers_own_transactions(
    shards: tuple[Shard, Shard],
) -> None:
    """Only the transfer finishes its hold: a client settling or cancelling the debit while the
    transfer is in flight would leave the finish step nothing to finish (money in two places)."""
    source, target = shards
    transfer = source.step(source.transfers.begin(begin()))
    assert isinstance(transfer, Transfer)
    debit_id = (SOURCE, transfer.debit_number)
    for command in (SettleTransaction, CancelTransaction):
        before = dict(source.store.items())
        refused, writes = source.accounts.execute(command(*debit_id, T + 2))
        assert isinstance(refused, Failure)
        assert refused.reason == Reason.TRANSACTION_IN_TRANSFER and writes == ()
        transfer_id = f"{SOURCE:016x}{transfer.debit_number:016x}"
        assert dict(refused.metadata)["transfer_id"] == transfer_id
        assert dict(source.store.items()) == before
    decision = target.step(target.transfers.credit(credit_of(transfer)))
    assert isinstance(decision, TransferCredit)
    credit_id = (TARGET, decision.credit_number)
    completed = source.step(
        source.transfers.finish(FinishTransfer(SOURCE, transfer.debit_number, decision, T + 3))
    )
    assert isinstance(completed, Transfer) and completed.status == TransferStatus.COMPLETED
    assert source.balances(SOURCE) == (70, 70) and target.balances(TARGET) == (35, 35)
    # Finished sides stay the transfer's: refused the same way, not as "not pending".
    for shard, (account_id, number) in [(source, debit_id), (target, credit_id)]:
        for command in (SettleTransaction, CancelTransaction):
            refused, writes = shard.accounts.execute(command(account_id, number, T + 4))
            assert isinstance(refused, Failure) and writes == ()
            assert refused.reason == Reason.TRANSACTION_IN_TRANSFER


def test_a_same_shard_transfer_is_one_step() -> None:
    shard = Shard()
    shard.open_account(SOURCE, 100)
    shard.open_account(TARGET)
    transfer = shard.step(shard.transfers.within_shard(begin()))
    assert isinstance(transfer, Transfer) and transfer.status == TransferStatus.COMPLETED
    assert shard.balances(SOURCE) == (70, 70) and shard.balances(TARGET) == (30, 30)
    assert shard.transfers.in_flight(None, 10) == []
    assert shard.transfers.get_transfer(SOURCE, transfer.debit_number) == transfer
    short = shard.step(shard.transfers.within_shard(begin(amount=1_000)))
    assert isinstance(short, Transfer) and short.status == TransferStatus.INSUFFICIENT_FUNDS
    assert shard.balances(SOURCE) == (70, 70)


def test_get_transfer_of_an_unknown_id_is_not_found(shards: tuple[Shard, Shard]) -> None:
    source, _ = shards
    missing = source.transfers.get_transfer(SOURCE, 42)
    assert isinstance(missing, Failure) and missing.reason == Reason.TRANSFER_NOT_FOUND
