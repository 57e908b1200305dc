"""Transfers between two accounts, atomic across shards: the deterministic steps.

A transfer moves ``amount`` from a source account to a destination account that may live on
another shard (another Raft group), so it cannot be one write. It is three steps, each one
command on one shard, each idempotent and safe to repeat in any number and by any number of
drivers:

1. ``begin`` (source shard): a PENDING debit transaction of ``-amount`` (the hold: ``available``
   drops, ``settled`` does not yet) and the transfer record, IN_FLIGHT, with an entry in the
   in-flight index. Without the funds, the debit is stored INSUFFICIENT_FUNDS and the transfer
   ends INSUFFICIENT_FUNDS at once: nothing moved. An idempotency key (scoped to the source
   account) returns the same transfer on a retry.
2. ``credit`` (destination shard): decided once per transfer and recorded (keyed by the
   transfer): either a SETTLED ``+amount`` transaction on the destination, or refused (the
   account does not exist, or the balance would overflow). Every later ``credit`` of the same
   transfer returns that same decision, so two drivers can never see different answers.
3. ``finish`` (source shard): with the credit's decision, settle the debit (COMPLETED) or cancel
   it (FAILED: the hold is given back), and drop the in-flight entry. A transfer already final
   is returned unchanged.

Between steps 1 and 3 the money is held on the source (not spendable) and, after step 2, also
credited on the destination: the sum of ``settled`` balances counts it twice until ``finish``
settles the debit, and never counts it zero times. After ``finish`` it is counted once, or
(FAILED) it never left. A driver that dies anywhere leaves the transfer IN_FLIGHT in the index;
any driver resumes it from the record: credit, then finish.

The transfer is named by its source account and its debit transaction's number: the public
transfer id is the debit transaction's id, so it routes to the source shard like any
transaction id. Both transactions carry that reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from ledger import limits
from ledger.core.accounts import AccountsCore, StoreReader, Write, check_description_and_key
from ledger.core.outcomes import Failure, Reason
from ledger.core.records import (
    Account,
    Status,
    Transaction,
    Transfer,
    TransferCredit,
    TransferKeyEntry,
    TransferStatus,
    account_key,
    credit_key,
    expiry_range_until,
    in_flight_key,
    in_flight_range,
    parse_expiry_key,
    parse_in_flight_key,
    transaction_key,
    transfer_idempotency_key,
    transfer_key,
)

__all__ = [
    "BeginTransfer",
    "CreditTransfer",
    "FinishTransfer",
    "GetTransfer",
    "InFlight",
    "ListInFlightTransfers",
    "TransferCommand",
    "TransferCore",
    "TransferQuery",
    "TransferStep",
]


class BeginTransfer(NamedTuple):
    from_account_id: int
    to_account_id: int
    amount: int
    description: str
    now_ns: int
    idempotency_key: bytes = b""
    within_shard: bool = False  # both accounts on this shard: all three steps at once


class CreditTransfer(NamedTuple):
    to_account_id: int
    from_account_id: int
    debit_number: int
    amount: int
    description: str
    now_ns: int


class FinishTransfer(NamedTuple):
    from_account_id: int
    debit_number: int
    credit: TransferCredit
    now_ns: int


class GetTransfer(NamedTuple):
    from_account_id: int
    debit_number: int


class ListInFlightTransfers(NamedTuple):
    after: tuple[int, int] | None
    limit: int


TransferCommand = BeginTransfer | CreditTransfer | FinishTransfer
TransferQuery = GetTransfer | ListInFlightTransfers


class InFlight(NamedTuple):
    """What a resolver needs from a shard: its in-flight transfers, and the earliest pending-hold
    timeout (0: none), so that it can move an idle shard's clock past it."""

    transfers: list[Transfer]
    next_hold_expiry_ns: int


class TransferStep(NamedTuple):
    """A step's result and the writes that make it durable (none for a failure or replay)."""

    result: Transfer | TransferCredit | Failure
    writes: tuple[Write, ...] = ()


class _Layered:
    """Writes of the earlier steps of a same-shard transfer over the store (gets only)."""

    def __init__(self, base: StoreReader) -> None:
        self._base = base
        self._writes: dict[bytes, bytes | None] = {}

    def get(self, key: bytes) -> bytes | None:
        return self._writes[key] if key in self._writes else self._base.get(key)

    def scan(self, start: bytes, stop: bytes, limit: int) -> Sequence[tuple[bytes, bytes]]:
        raise AssertionError("transfer steps never scan")

    def add(self, writes: Sequence[Write]) -> None:
        for key, value in writes:
            self._writes[key] = value


def _check_shape(command: BeginTransfer) -> Failure | None:
    if not 0 < command.amount <= limits.int64_max:
        return Failure.of(Reason.INVALID_AMOUNT, "a transfer amount must be a positive int64")
    if command.from_account_id == command.to_account_id:
        return Failure.of(Reason.SAME_ACCOUNT, "a transfer needs two different accounts")
    return check_description_and_key(command.description, command.idempotency_key)


def _transfer_not_found(from_account_id: int, debit_number: int) -> Failure:
    return Failure.of(
        Reason.TRANSFER_NOT_FOUND,
        "transfer not found",
        transfer_id=f"{from_account_id:016x}{debit_number:016x}",
    )


class TransferCore:
    """The transfer steps of one shard over a read-only store view (see the module text)."""

    def __init__(self, store: StoreReader) -> None:
        self._store = store
        self._accounts = AccountsCore(store)

    # -- dispatch ---------------------------------------------------------------------------

    def execute(self, command: TransferCommand) -> TransferStep:
        if isinstance(command, BeginTransfer):
            return self.within_shard(command) if command.within_shard else self.begin(command)
        if isinstance(command, CreditTransfer):
            return self.credit(command)
        return self.finish(command)

    def query(self, query: TransferQuery) -> Transfer | InFlight | Failure:
        if isinstance(query, GetTransfer):
            return self.get_transfer(query.from_account_id, query.debit_number)
        if not 0 < query.limit <= limits.page_size_max:
            return Failure.of(Reason.INVALID_PAGE_SIZE, "limit must be 1..page_size_max")
        start, stop = expiry_range_until(limits.int64_max)
        earliest = self._store.scan(start, stop, 1)
        next_expiry_ns = parse_expiry_key(earliest[0][0])[0] if earliest else 0
        return InFlight(self.in_flight(query.after, query.limit), next_expiry_ns)

    # -- reads ------------------------------------------------------------------------------

    def get_transfer(self, from_account_id: int, debit_number: int) -> Transfer | Failure:
        data = self._store.get(transfer_key(from_account_id, debit_number))
        if data is None:
            return _transfer_not_found(from_account_id, debit_number)
        return Transfer.decode(data)

    def in_flight(self, after: tuple[int, int] | None, limit: int) -> list[Transfer]:
        """Transfers not yet final, in key order after ``after``: what a resolver resumes."""
        assert 0 < limit <= limits.page_size_max
        start, stop = in_flight_range(b"" if after is None else in_flight_key(*after))
        transfers = []
        for key, _ in self._store.scan(start, stop, limit):
            found = self.get_transfer(*parse_in_flight_key(key))
            assert isinstance(found, Transfer), "an in-flight entry without its transfer"
            transfers.append(found)
        return transfers

    # -- step 1: begin (source shard) ------------------------------------------------------

    def begin(self, command: BeginTransfer) -> TransferStep:
        failure = _check_shape(command)
        if failure is not None:
            return TransferStep(failure)
        source = self._accounts.account(command.from_account_id)
        if source is None:
            return TransferStep(
                Failure.of(
                    Reason.ACCOUNT_NOT_FOUND,
                    "account not found",
                    account_id=f"{command.from_account_id:016x}",
                )
            )
        if command.idempotency_key:
            replay = self._replay(source, command)
            if replay is not None:
                return TransferStep(replay)
        if source.transaction_count >= limits.uint64_max:
            return TransferStep(Failure.of(Reason.TRANSACTION_LIMIT_REACHED, "account is full"))
        number = source.transaction_count + 1
        funded = source.available_balance >= command.amount
        debit = Transaction(
            source.account_id,
            number,
            -command.amount,
            command.description,
            Status.PENDING if funded else Status.INSUFFICIENT_FUNDS,
            command.now_ns,
            command.now_ns,
            source.account_id,
            number,
        )
        held = source._replace(
            available_balance=source.available_balance - (command.amount if funded else 0),
            updated_at_ns=max(command.now_ns, source.updated_at_ns),
            transaction_count=number,
        )
        transfer = Transfer(
            source.account_id,
            number,
            command.to_account_id,
            command.amount,
            TransferStatus.IN_FLIGHT if funded else TransferStatus.INSUFFICIENT_FUNDS,
            0,
            command.now_ns,
            command.now_ns,
            command.description,
        )
        writes: list[Write] = [
            (account_key(source.account_id), held.encode()),
            (transaction_key(source.account_id, number), debit.encode()),
            (transfer_key(source.account_id, number), transfer.encode()),
        ]
        if funded:
            writes.append((in_flight_key(source.account_id, number), b""))
        if command.idempotency_key:
            entry = TransferKeyEntry(
                number, command.to_account_id, command.amount, command.description
            )
            writes.append(
                (
                    transfer_idempotency_key(source.account_id, command.idempotency_key),
                    entry.encode(),
                )
            )
        return TransferStep(transfer, tuple(writes))

    def _replay(self, source: Account, command: BeginTransfer) -> Transfer | Failure | None:
        data = self._store.get(transfer_idempotency_key(source.account_id, command.idempotency_key))
        if data is None:
            return None
        entry = TransferKeyEntry.decode(data)
        if (entry.to_account_id, entry.amount, entry.description) != (
            command.to_account_id,
            command.amount,
            command.description,
        ):
            return Failure.of(
                Reason.IDEMPOTENCY_KEY_REUSED,
                "idempotency key was already used with a different request",
                account_id=f"{source.account_id:016x}",
            )
        return self.get_transfer(source.account_id, entry.debit_number)

    # -- step 2: credit (destination shard) ------------------------------------------------

    def credit(self, command: CreditTransfer) -> TransferStep:
        assert command.amount > 0 and command.from_account_id != command.to_account_id
        key = credit_key(command.to_account_id, command.from_account_id, command.debit_number)
        recorded = self._store.get(key)
        if recorded is not None:
            return TransferStep(TransferCredit.decode(recorded))
        target = self._accounts.account(command.to_account_id)
        if target is None:
            refused = TransferCredit(0, Reason.ACCOUNT_NOT_FOUND.name)
            return TransferStep(refused, ((key, refused.encode()),))
        settled = target.settled_balance + command.amount
        if settled > limits.int64_max or target.transaction_count >= limits.uint64_max:
            refused = TransferCredit(0, Reason.BALANCE_OVERFLOW.name)
            return TransferStep(refused, ((key, refused.encode()),))
        number = target.transaction_count + 1
        credit = Transaction(
            target.account_id,
            number,
            command.amount,
            command.description,
            Status.SETTLED,
            command.now_ns,
            command.now_ns,
            command.from_account_id,
            command.debit_number,
        )
        credited = target._replace(
            available_balance=target.available_balance + command.amount,
            settled_balance=settled,
            updated_at_ns=max(command.now_ns, target.updated_at_ns),
            transaction_count=number,
        )
        decision = TransferCredit(number)
        return TransferStep(
            decision,
            (
                (account_key(target.account_id), credited.encode()),
                (transaction_key(target.account_id, number), credit.encode()),
                (key, decision.encode()),
            ),
        )

    # -- step 3: finish (source shard) -----------------------------------------------------

    def finish(self, command: FinishTransfer) -> TransferStep:
        found = self.get_transfer(command.from_account_id, command.debit_number)
        if isinstance(found, Failure) or found.status != TransferStatus.IN_FLIGHT:
            return TransferStep(found)  # final already: a repeat changes nothing
        source = self._accounts.account(found.from_account_id)
        debit = self._accounts.transaction(found.from_account_id, found.debit_number)
        assert source is not None and debit is not None and debit.status == Status.PENDING
        now_ns = max(command.now_ns, found.updated_at_ns)
        if command.credit.credited:
            source = source._replace(settled_balance=source.settled_balance - found.amount)
            debit = debit._replace(status=Status.SETTLED)
            final = found._replace(
                status=TransferStatus.COMPLETED, credit_number=command.credit.credit_number
            )
        else:
            source = source._replace(available_balance=source.available_balance + found.amount)
            debit = debit._replace(status=Status.CANCELLED)
            final = found._replace(status=TransferStatus.FAILED)
        source = source._replace(updated_at_ns=max(now_ns, source.updated_at_ns))
        debit = debit._replace(updated_at_ns=max(now_ns, debit.updated_at_ns))
        final = final._replace(updated_at_ns=now_ns)
        return TransferStep(
            final,
            (
                (account_key(source.account_id), source.encode()),
                (transaction_key(source.account_id, debit.transaction_number), debit.encode()),
                (transfer_key(final.from_account_id, final.debit_number), final.encode()),
                (in_flight_key(final.from_account_id, final.debit_number), None),
            ),
        )

    # -- all three on one shard: one command, one Raft entry --------------------------------

    def within_shard(self, command: BeginTransfer) -> TransferStep:
        """Both accounts on this shard: begin, credit and finish in one step, one batch."""
        layered = _Layered(self._store)
        begun = self.begin(command)
        if (
            not isinstance(begun.result, Transfer)
            or begun.result.status != TransferStatus.IN_FLIGHT
            or not begun.writes
        ):
            return begun  # a failure, a replay or INSUFFICIENT_FUNDS: nothing more to do
        layered.add(begun.writes)
        steps = TransferCore(layered)
        transfer = begun.result
        credited = steps.credit(
            CreditTransfer(
                transfer.to_account_id,
                transfer.from_account_id,
                transfer.debit_number,
                transfer.amount,
                transfer.description,
                command.now_ns,
            )
        )
        assert isinstance(credited.result, TransferCredit)
        layered.add(credited.writes)
        finished = TransferCore(layered).finish(
            FinishTransfer(
                transfer.from_account_id, transfer.debit_number, credited.result, command.now_ns
            )
        )
        writes: dict[bytes, bytes | None] = {}
        for key, value in (*begun.writes, *credited.writes, *finished.writes):
            writes[key] = value
        return TransferStep(finished.result, tuple(sorted(writes.items())))
