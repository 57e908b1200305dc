"""Crash safety and clean shutdown of ``ledger-standalone``.

Goal: a SIGKILL in the middle of load loses nothing that was acknowledged, tears no write in half
(balances always equal what the stored transactions say), and a client that retries its
unanswered requests with their idempotency keys gets each applied exactly once. A SIGTERM stops
the server cleanly (exit code 0, ``stopped`` printed) and a restart keeps every record.

Method: each test runs its own standalone process over a temporary data dir. Eight threads send
creates (each with an idempotency key that is also its description) and settles/cancels of their
own pending transactions, recording every acknowledged answer. The process is SIGKILLed once
enough answers are in (no timing: we wait for a count), restarted, and then inspected only
through the public API.
"""

from __future__ import annotations

import pathlib
import random
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import grpc
import pytest
from harness import StandaloneService, wait_until

from integration.load import expected_balances, list_all
from ledger.pb import ledger_api_pb2 as api
from ledger.pb import ledger_api_pb2_grpc

T = 10.0
PENDING = api.TRANSACTION_STATUS_PENDING
SETTLED = api.TRANSACTION_STATUS_SETTLED
CANCELLED = api.TRANSACTION_STATUS_CANCELLED

account_count = 20
worker_count = 8
acked_before_kill = 1000  # acknowledged calls to wait for before the SIGKILL
wait_for_acks_s = 120.0

Stub = ledger_api_pb2_grpc.LedgerServiceApiStub


@pytest.fixture
def standalone(tmp_path: pathlib.Path) -> Iterator[StandaloneService]:
    service = StandaloneService(tmp_path)
    try:
        service.start()
        yield service
    finally:
        service.stop()


def connect(address: str) -> tuple[grpc.Channel, Stub]:
    channel = grpc.insecure_channel(address)
    return channel, ledger_api_pb2_grpc.LedgerServiceApiStub(channel)


@dataclass
class Create:
    account_id: str
    amount: int
    settled: bool
    key: str  # also the description

    def request(self) -> api.CreateTransactionRequest:
        return api.CreateTransactionRequest(
            account_id=self.account_id,
            amount=self.amount,
            description=self.key,
            settled=self.settled,
            idempotency_key=self.key,
        )


@dataclass
class Load:
    """Eight workers; what each call did (or might have done) is recorded for the checks."""

    stub: Stub
    account_ids: list[str]
    creates: list[Create] = field(default_factory=list)
    acked: dict[str, api.Transaction] = field(default_factory=dict)  # key -> acknowledged tx
    unacked: list[Create] = field(default_factory=list)
    # transaction id -> statuses it may have now (a settle/cancel whose answer never came)
    maybe: dict[str, set[int]] = field(default_factory=dict)
    acks: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    errors: Counter[str] = field(default_factory=Counter)

    def run(self, worker: int) -> None:
        rng = random.Random(worker)
        own_pending: list[str] = []
        number = 0
        while not self.stop.is_set():
            if own_pending and rng.random() < 0.25:
                self._finish(rng, own_pending.pop(rng.randrange(len(own_pending))))
                continue
            number += 1
            create = Create(
                account_id=rng.choice(self.account_ids),
                amount=rng.choice([1, 2, 5, 10, 50]) * rng.choice([1, -1]),
                settled=rng.random() < 0.5,
                key=f"w{worker}-{number}",
            )
            with self.lock:
                self.creates.append(create)
            try:
                transaction = self.stub.CreateTransaction(create.request(), timeout=T).transaction
            except grpc.RpcError as error:
                with self.lock:
                    self.unacked.append(create)
                    self.errors[error.code().name] += 1
                continue
            assert transaction.description == create.key
            with self.lock:
                self.acked[create.key] = transaction
                self.acks += 1
            if transaction.status == PENDING:
                own_pending.append(create.key)

    def _finish(self, rng: random.Random, key: str) -> None:
        original = self.acked[key]
        settle = rng.random() < 0.5
        target = SETTLED if settle else CANCELLED
        try:
            if settle:
                request = api.SettleTransactionRequest(transaction_id=original.id)
                done = self.stub.SettleTransaction(request, timeout=T).transaction
            else:
                cancel = api.CancelTransactionRequest(transaction_id=original.id)
                done = self.stub.CancelTransaction(cancel, timeout=T).transaction
        except grpc.RpcError as error:
            with self.lock:
                self.maybe[original.id] = {PENDING, target}
                self.errors[error.code().name] += 1
            return
        assert done.status == target
        with self.lock:
            self.acked[key] = done
            self.acks += 1


def test_sigkill_under_load_loses_nothing_acknowledged(standalone: StandaloneService) -> None:
    channel, stub = connect(standalone.address)
    try:
        account_ids = [
            stub.CreateAccount(api.CreateAccountRequest(), timeout=T).account.id
            for _ in range(account_count)
        ]
        for account_id in account_ids:
            funding = api.CreateTransactionRequest(account_id=account_id, amount=500, settled=True)
            stub.CreateTransaction(funding, timeout=T)

        load = Load(stub, account_ids)
        with ThreadPoolExecutor(worker_count) as pool:
            futures = [pool.submit(load.run, worker) for worker in range(worker_count)]
            try:
                wait_until(
                    lambda: load.acks >= acked_before_kill or any(f.done() for f in futures),
                    wait_for_acks_s,
                    what=f"{acked_before_kill} acknowledged calls",
                )
                standalone.kill9()
            finally:
                load.stop.set()
            for future in futures:
                future.result()  # re-raise a worker's assertion
        assert load.acks >= acked_before_kill
    finally:
        channel.close()

    standalone.start()
    channel, stub = connect(standalone.address)
    try:
        # Every acknowledged answer survived: same amount, description and status.
        for key, transaction in load.acked.items():
            stored = stub.GetTransaction(
                api.GetTransactionRequest(transaction_id=transaction.id), timeout=T
            ).transaction
            assert (stored.amount, stored.description) == (transaction.amount, key)
            assert stored.created_at == transaction.created_at
            allowed = load.maybe.get(transaction.id, {transaction.status})
            assert stored.status in allowed, (key, stored.status, allowed)

        # No torn writes: each account's balances are what its stored history says.
        for account_id in account_ids:
            account = stub.GetAccount(
                api.GetAccountRequest(account_id=account_id), timeout=T
            ).account
            listed = list_all(stub, account_id)
            assert (account.available_balance, account.settled_balance) == expected_balances(listed)
            assert 0 <= account.available_balance <= account.settled_balance

        # Retrying every unanswered create with its key applies it at most once.
        for create in load.unacked:
            retried = stub.CreateTransaction(create.request(), timeout=T).transaction
            assert (retried.amount, retried.description) == (create.amount, create.key)
        # Retrying an answered one returns the original.
        for key, transaction in list(load.acked.items())[:50]:
            create = next(c for c in load.creates if c.key == key)
            assert (
                stub.CreateTransaction(create.request(), timeout=T).transaction.id == transaction.id
            )

        keys_sent = {create.key for create in load.creates}
        seen: Counter[str] = Counter()
        for account_id in account_ids:
            listed = list_all(stub, account_id)
            seen.update(t.description for t in listed if t.description)
            account = stub.GetAccount(
                api.GetAccountRequest(account_id=account_id), timeout=T
            ).account
            assert (account.available_balance, account.settled_balance) == expected_balances(listed)
        duplicated = {key: count for key, count in seen.items() if count > 1}
        assert not duplicated
        assert set(seen) == keys_sent  # every create is now applied, exactly once
    finally:
        channel.close()


def test_sigterm_exits_cleanly_and_restart_keeps_data(standalone: StandaloneService) -> None:
    channel, stub = connect(standalone.address)
    try:
        account = stub.CreateAccount(api.CreateAccountRequest(), timeout=T).account
        keyed = api.CreateTransactionRequest(
            account_id=account.id,
            amount=70,
            description="keyed",
            settled=True,
            idempotency_key="k1",
        )
        top_up = stub.CreateTransaction(keyed, timeout=T).transaction
        hold = api.CreateTransactionRequest(account_id=account.id, amount=-20, settled=False)
        pending = stub.CreateTransaction(hold, timeout=T).transaction
        before = stub.GetAccount(api.GetAccountRequest(account_id=account.id), timeout=T).account
        history = list_all(stub, account.id)
    finally:
        channel.close()

    assert standalone.process.stop() == 0
    log = standalone.process.log_path.read_text()
    assert "ledger-standalone stopped" in log
    assert "Traceback" not in log

    standalone.start()
    channel, stub = connect(standalone.address)
    try:
        after = stub.GetAccount(api.GetAccountRequest(account_id=account.id), timeout=T).account
        assert after == before
        assert (after.available_balance, after.settled_balance) == (50, 70)
        assert list_all(stub, account.id) == history
        # The idempotency key survived the restart.
        assert stub.CreateTransaction(keyed, timeout=T).transaction == top_up
        # And the data is live: the pending hold can still be settled.
        settle = api.SettleTransactionRequest(transaction_id=pending.id)
        assert stub.SettleTransaction(settle, timeout=T).transaction.status == SETTLED
        final = stub.GetAccount(api.GetAccountRequest(account_id=account.id), timeout=T).account
        assert (final.available_balance, final.settled_balance) == (50, 50)
    finally:
        channel.close()
    assert standalone.process.stop() == 0
