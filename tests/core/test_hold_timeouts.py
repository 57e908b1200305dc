"""Pending holds with a timeout: cancelled by the shard clock, deterministically.

Goal: a pending purchase created with a timeout is cancelled (its hold given back) by the first
entry whose shard clock reaches the timeout, and not before; settling or cancelling it first
leaves nothing for the timeout to do; a timeout on a settled transaction, or in the past, is
INVALID_HOLD_TIMEOUT and changes nothing; a Tick (a command that only moves the clock) is
enough; re-executing the same commands on another replica gives the same bytes.
Method: ``ShardStateMachine`` over in-memory stores, commands as the gateway sends them.
"""

from __future__ import annotations

import itertools

from ledger.pb import ledger_internal_pb2 as pb
from ledger.replication.state_machine import ShardStateMachine
from ledger.storage.memory import MemoryShardStore

T = 1_700_000_000_000_000_000
ACCOUNT = 0x4242
SECOND_NS = 1_000_000_000


class Replica:
    def __init__(self) -> None:
        self.machine = ShardStateMachine(MemoryShardStore())
        self._index = itertools.count(1)
        self._request = itertools.count(1)

    def run(self, now_ns: int, **kind: object) -> pb.Result:
        command = pb.Command(
            request_id=next(self._request).to_bytes(16, "big"), now_ns=now_ns, **kind
        )  # type: ignore[arg-type]
        results = self.machine.apply([command], next(self._index))
        assert results is not None
        return results[0]

    def balances(self) -> tuple[int, int]:
        account = self.machine.read(pb.Query(get_account=pb.GetAccount(account_id=ACCOUNT)))
        return account.account.available_balance, account.account.settled_balance

    def status(self, number: int) -> int:
        found = self.machine.read(
            pb.Query(
                get_transaction=pb.GetTransaction(account_id=ACCOUNT, transaction_number=number)
            )
        )
        return int(found.transaction.status)


def funded() -> Replica:
    replica = Replica()
    replica.run(T, create_account=pb.CreateAccount(account_id=ACCOUNT))
    replica.run(
        T, create_transaction=pb.CreateTransaction(account_id=ACCOUNT, amount=100, settled=True)
    )
    return replica


def hold(replica: Replica, amount: int, expires_at_ns: int, now_ns: int = T) -> pb.Result:
    return replica.run(
        now_ns,
        create_transaction=pb.CreateTransaction(
            account_id=ACCOUNT, amount=-amount, settled=False, expires_at_ns=expires_at_ns
        ),
    )


def test_an_expired_hold_is_cancelled_by_the_shard_clock_and_not_before() -> None:
    replica = funded()
    held = hold(replica, 30, expires_at_ns=T + 10 * SECOND_NS)
    number = held.transaction.transaction_number
    assert held.transaction.expires_at_ns == T + 10 * SECOND_NS
    assert replica.balances() == (70, 100)
    replica.run(T + 9 * SECOND_NS, tick=pb.Tick())
    assert replica.status(number) == pb.STATUS_PENDING
    replica.run(T + 10 * SECOND_NS, tick=pb.Tick())
    assert replica.status(number) == pb.STATUS_CANCELLED
    assert replica.balances() == (100, 100)


def test_any_later_command_moves_the_clock_too() -> None:
    replica = funded()
    number = hold(replica, 30, expires_at_ns=T + SECOND_NS).transaction.transaction_number
    replica.run(
        T + 2 * SECOND_NS,
        create_transaction=pb.CreateTransaction(account_id=ACCOUNT, amount=5, settled=True),
    )
    assert replica.status(number) == pb.STATUS_CANCELLED
    assert replica.balances() == (105, 105)


def test_a_hold_settled_in_time_is_left_alone() -> None:
    replica = funded()
    number = hold(replica, 30, expires_at_ns=T + SECOND_NS).transaction.transaction_number
    replica.run(
        T, settle_transaction=pb.SettleTransaction(account_id=ACCOUNT, transaction_number=number)
    )
    replica.run(T + 5 * SECOND_NS, tick=pb.Tick())
    assert replica.status(number) == pb.STATUS_SETTLED
    assert replica.balances() == (70, 70)
    assert not any(key.startswith(b"e") for key, _ in replica.machine.store.items())


def test_a_bad_timeout_is_refused_and_changes_nothing() -> None:
    replica = funded()
    past = hold(replica, 30, expires_at_ns=T - 1)
    settled = replica.run(
        T,
        create_transaction=pb.CreateTransaction(
            account_id=ACCOUNT, amount=-30, settled=True, expires_at_ns=T + SECOND_NS
        ),
    )
    for refused in (past, settled):
        assert refused.error.reason == "INVALID_HOLD_TIMEOUT"
    assert replica.balances() == (100, 100)


def test_many_expiries_are_cancelled_over_several_entries_identically_on_replicas() -> None:
    replicas = [funded(), funded()]
    for replica in replicas:
        for n in range(150):  # more than one entry's budget
            hold(replica, 1, expires_at_ns=T + SECOND_NS + n)
        for step in range(4):
            replica.run(T + (2 + step) * SECOND_NS, tick=pb.Tick())
    first, second = (dict(replica.machine.store.items()) for replica in replicas)
    assert first == second
    assert replicas[0].balances() == (100, 100)
