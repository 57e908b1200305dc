"""Model-based test of the cross-shard transfer protocol (ledger.core.transfers), with crashes.

Goal: whatever the interleaving of many drivers, wherever a driver dies (before, between or
after any of its steps) and however many resolvers later finish the same transfers
concurrently, after quiescence every transfer is COMPLETED, FAILED (money back) or
INSUFFICIENT_FUNDS (nothing moved); each appears exactly once on each side it touched; the sum
of settled balances equals the external top-ups (money is conserved); and ``0 <= available <=
settled`` held on every account after every single step.

Method: 3 in-memory shards with 2 accounts each. A driver is the algorithm the gateway runs (same
shard: one step; else begin, credit, finish); a resolver is what finishes a transfer whose
driver died (for every in-flight transfer on every shard: credit, finish). Hypothesis draws the
transfers, where each driver crashes, and the schedule that interleaves drivers and resolvers
step by step. The steps are the production code; only the routing is the test's.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.core.accounts import AccountsCore
from ledger.core.commands import CreateAccount, CreateTransaction
from ledger.core.records import (
    Status,
    Transaction,
    Transfer,
    TransferCredit,
    TransferStatus,
    transaction_key_range,
)
from ledger.core.transfers import BeginTransfer, CreditTransfer, FinishTransfer, TransferCore
from ledger.storage.memory import MemoryShardStore

T = 1_700_000_000_000_000_000
SHARDS = 3
ACCOUNTS = [0x100 + n for n in range(2 * SHARDS)]  # account n lives on shard n % SHARDS
UNKNOWN_ACCOUNT = 0xDEAD  # on shard 0, never created: its credits are refused
Step = Callable[[], None]


@dataclass
class World:
    stores: list[MemoryShardStore] = field(
        default_factory=lambda: [MemoryShardStore() for _ in range(SHARDS)]
    )
    indexes: list[Iterator[int]] = field(
        default_factory=lambda: [itertools.count(1) for _ in range(SHARDS)]
    )
    external: int = 0  # top-ups from outside: what the settled balances must sum to
    begun: list[Transfer] = field(default_factory=list)

    def shard_of(self, account_id: int) -> int:
        return 0 if account_id == UNKNOWN_ACCOUNT else ACCOUNTS.index(account_id) % SHARDS

    def commit(self, shard: int, writes: tuple[tuple[bytes, bytes | None], ...]) -> None:
        if writes:
            self.stores[shard].commit(writes, next(self.indexes[shard]))
        self.check_accounts()

    def transfers(self, shard: int) -> TransferCore:
        return TransferCore(self.stores[shard])

    def accounts(self, account_id: int) -> AccountsCore:
        return AccountsCore(self.stores[self.shard_of(account_id)])

    def check_accounts(self) -> None:
        for account_id in ACCOUNTS:
            account = self.accounts(account_id).account(account_id)
            if account is not None:  # None only while the accounts are being opened
                assert 0 <= account.available_balance <= account.settled_balance, account

    def history(self, account_id: int) -> list[Transaction]:
        start, stop = transaction_key_range(account_id, 0)
        rows = self.stores[self.shard_of(account_id)].scan(start, stop, 10_000)
        return [Transaction.decode(value) for _, value in rows]


def open_accounts(world: World, balances: list[int]) -> None:
    for account_id, balance in zip(ACCOUNTS, balances, strict=True):
        shard = world.shard_of(account_id)
        world.commit(
            shard, world.accounts(account_id).create_account(CreateAccount(account_id, T)).writes
        )
        if balance:
            world.commit(
                shard,
                world.accounts(account_id)
                .create_transaction(CreateTransaction(account_id, balance, "top-up", True, T))
                .writes,
            )
            world.external += balance


def drive(world: World, command: BeginTransfer) -> Iterator[Step]:
    """The gateway's driver, one yielded step at a time (a crash is simply not resuming it)."""
    source = world.shard_of(command.from_account_id)
    begun: list[Transfer] = []

    def begin() -> None:
        steps = world.transfers(source)
        same_shard = world.shard_of(command.to_account_id) == source
        result, writes = steps.within_shard(command) if same_shard else steps.begin(command)
        world.commit(source, writes)
        assert isinstance(result, Transfer), result
        world.begun.append(result)
        begun.append(result)

    yield begin
    if begun[0].status == TransferStatus.IN_FLIGHT:
        yield from resume(world, begun[0])


def resume(world: World, transfer: Transfer) -> Iterator[Step]:
    """Credit then finish: what a driver does after begin, and what a resolver does."""
    decision: list[TransferCredit] = []

    def credit() -> None:
        target = world.shard_of(transfer.to_account_id)
        result, writes = world.transfers(target).credit(
            CreditTransfer(
                transfer.to_account_id,
                transfer.from_account_id,
                transfer.debit_number,
                transfer.amount,
                transfer.description,
                T + 2,
            )
        )
        world.commit(target, writes)
        assert isinstance(result, TransferCredit)
        decision.append(result)

    def finish() -> None:
        source = world.shard_of(transfer.from_account_id)
        result, writes = world.transfers(source).finish(
            FinishTransfer(transfer.from_account_id, transfer.debit_number, decision[0], T + 3)
        )
        world.commit(source, writes)
        assert isinstance(result, Transfer) and result.status != TransferStatus.IN_FLIGHT

    yield credit
    yield finish


def resolver(world: World) -> Iterator[Step]:
    for shard in range(SHARDS):
        for transfer in world.transfers(shard).in_flight(None, 1000):
            yield from resume(world, transfer)


transfers = st.lists(
    st.tuples(
        st.sampled_from([*ACCOUNTS]),
        st.sampled_from([*ACCOUNTS, UNKNOWN_ACCOUNT]),
        st.integers(1, 150),
        st.integers(0, 3),  # the driver dies after this many steps (3: it never dies)
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(
    balances=st.lists(st.integers(0, 200), min_size=len(ACCOUNTS), max_size=len(ACCOUNTS)),
    planned=transfers,
    schedule=st.lists(st.integers(0, 1_000), max_size=200),
)
def test_every_transfer_ends_final_once_on_each_side_and_money_is_conserved(
    balances: list[int], planned: list[tuple[int, int, int, int]], schedule: list[int]
) -> None:
    world = World()
    open_accounts(world, balances)
    runners: list[tuple[Iterator[Step], int]] = []
    for number, (source, target, amount, crash_after) in enumerate(planned):
        if source == target:
            continue
        command = BeginTransfer(source, target, amount, f"t{number}", T + 1)
        runners.append((drive(world, command), crash_after))
    run_interleaved(runners, schedule)
    # The drivers are gone; two resolvers finish what is left, interleaved with each other.
    run_interleaved([(resolver(world), 10_000), (resolver(world), 10_000)], schedule)

    settled = 0
    for account_id in ACCOUNTS:
        account = world.accounts(account_id).account(account_id)
        assert account is not None
        settled += account.settled_balance
        assert account.available_balance == account.settled_balance  # nothing left on hold
    assert settled == world.external
    for shard in range(SHARDS):
        assert world.transfers(shard).in_flight(None, 1000) == []
    for begun in world.begun:
        check_final(world, begun)


def run_interleaved(runners: list[tuple[Iterator[Step], int]], schedule: list[int]) -> None:
    """Advance the runners one step at a time in the drawn order; a runner stops for good after
    its crash point (its remaining steps never run), or when it has no step left."""
    live = [[iterator, budget] for iterator, budget in runners]
    turns = iter(schedule)
    while live:
        chosen = live[next(turns, 0) % len(live)]
        if chosen[1] == 0:
            live.remove(chosen)  # crashed
            continue
        step = next(chosen[0], None)  # type: ignore[call-overload]
        if step is None:
            live.remove(chosen)
            continue
        step()
        chosen[1] -= 1


def check_final(world: World, begun: Transfer) -> None:
    source_shard = world.shard_of(begun.from_account_id)
    final = world.transfers(source_shard).get_transfer(begun.from_account_id, begun.debit_number)
    assert isinstance(final, Transfer) and final.status != TransferStatus.IN_FLIGHT
    reference = (begun.from_account_id, begun.debit_number)
    debits = [t for t in world.history(begun.from_account_id) if t.transfer_key == reference]
    assert len(debits) == 1 and debits[0].amount == -begun.amount
    credits = (
        []
        if begun.to_account_id == UNKNOWN_ACCOUNT
        else [t for t in world.history(begun.to_account_id) if t.transfer_key == reference]
    )
    expected_debit = {
        TransferStatus.COMPLETED: Status.SETTLED,
        TransferStatus.FAILED: Status.CANCELLED,
        TransferStatus.INSUFFICIENT_FUNDS: Status.INSUFFICIENT_FUNDS,
    }[final.status]
    assert debits[0].status == expected_debit
    if final.status == TransferStatus.COMPLETED:
        assert len(credits) == 1 and credits[0].amount == begun.amount
        assert credits[0].transaction_number == final.credit_number
    else:
        assert credits == []
    if begun.to_account_id == UNKNOWN_ACCOUNT:
        assert final.status in (TransferStatus.FAILED, TransferStatus.INSUFFICIENT_FUNDS)
