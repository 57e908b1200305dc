"""A recording load generator for fault tests, and the checks that run after the faults.

Threads create settled top-ups through the gateway. Every call has a unique description; half of
them also carry an idempotency key equal to it. Each call ends acknowledged (with its transaction
id) or failed (outcome unknown). After the faults, ``resolve_and_check`` retries every failed
keyed call with its key (which must now succeed and return the original if it had applied) and
then checks every account's full history:

* every acknowledged call appears exactly once, with its acknowledged id: nothing lost;
* no description appears twice: no client call became two effects (gateway retries reuse one
  request id; client retries reuse one key);
* settled balance == sum of listed amounts == available balance (only settled top-ups).
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import grpc

from ledger import ids
from ledger.pb import ledger_api_pb2 as api
from ledger.pb import ledger_api_pb2_grpc

call_timeout_s = 8.0
_run_ids = itertools.count(1)


@dataclass
class Issued:
    account_id: str
    amount: int
    description: str
    keyed: bool
    transaction_id: str = ""  # set when acknowledged
    acked_at: float = 0.0  # time.monotonic() of the acknowledgement


@dataclass
class LoadRecorder:
    address: str
    account_ids: list[str]
    threads: int = 4
    # Pass the previous recorder's list to check several load phases as one history.
    issued: list[Issued] = field(default_factory=list)
    run_id: int = field(default_factory=lambda: next(_run_ids))
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for worker_id in range(self.threads):
            thread = threading.Thread(target=self._run, args=(worker_id,), daemon=True)
            thread.start()
            self._workers.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._workers:
            thread.join(call_timeout_s * 2)
            assert not thread.is_alive()

    def acked(self) -> list[Issued]:
        with self._lock:
            return [item for item in self.issued if item.transaction_id]

    def acked_after(self, moment: float, shard: int | None = None) -> list[Issued]:
        return [
            item
            for item in self.acked()
            if item.acked_at > moment
            and (shard is None or ids.shard_index(ids.parse_account_id(item.account_id)) == shard)
        ]

    def _run(self, worker_id: int) -> None:
        rng = random.Random(worker_id)
        channel = grpc.insecure_channel(self.address)
        stub = ledger_api_pb2_grpc.LedgerServiceApiStub(channel)
        sequence = 0
        while not self._stop.is_set():
            sequence += 1
            item = Issued(
                account_id=rng.choice(self.account_ids),
                amount=rng.randint(1, 1000),
                description=f"r{self.run_id}-w{worker_id}-{sequence}",
                keyed=sequence % 2 == 0,
            )
            with self._lock:
                self.issued.append(item)
            try:
                response = stub.CreateTransaction(_request(item), timeout=call_timeout_s)
            except grpc.RpcError:
                time.sleep(0.05)
                continue
            assert response.transaction.description == item.description
            with self._lock:
                item.transaction_id = response.transaction.id
                item.acked_at = time.monotonic()
        channel.close()


def _request(item: Issued) -> api.CreateTransactionRequest:
    return api.CreateTransactionRequest(
        account_id=item.account_id,
        amount=item.amount,
        description=item.description,
        settled=True,
        idempotency_key=item.description if item.keyed else "",
    )


def list_all(
    stub: ledger_api_pb2_grpc.LedgerServiceApiStub, account_id: str, page_size: int = 1000
) -> list[api.Transaction]:
    """An account's whole history, page by page, in creation order."""
    transactions: list[api.Transaction] = []
    token = ""
    while True:
        page = stub.ListTransactions(
            api.ListTransactionsRequest(
                account_id=account_id, page_size=page_size, page_token=token
            ),
            timeout=call_timeout_s,
        )
        transactions.extend(page.transactions)
        token = page.next_page_token
        if not token:
            return transactions


def expected_balances(transactions: list[api.Transaction]) -> tuple[int, int]:
    """(available, settled) by the ledger's rules from a full transaction history."""
    settled = sum(t.amount for t in transactions if t.status == api.TRANSACTION_STATUS_SETTLED)
    held = sum(
        t.amount
        for t in transactions
        if t.status == api.TRANSACTION_STATUS_PENDING and t.amount < 0
    )
    return settled + held, settled


def resolve_and_check(address: str, recorder: LoadRecorder) -> dict[str, tuple[int, int]]:
    """Run the checks of the module docstring; returns account -> (available, settled)."""
    channel = grpc.insecure_channel(address)
    stub = ledger_api_pb2_grpc.LedgerServiceApiStub(channel)
    try:
        for item in recorder.issued:
            if item.keyed and not item.transaction_id:
                response = stub.CreateTransaction(_request(item), timeout=call_timeout_s)
                item.transaction_id = response.transaction.id
        by_description = {item.description: item for item in recorder.issued}
        balances = {}
        for account_id in recorder.account_ids:
            history = list_all(stub, account_id)
            counts = Counter(t.description for t in history)
            doubled = [d for d, n in counts.items() if n > 1]
            assert not doubled, f"applied twice: {doubled[:5]}"
            for transaction in history:
                item = by_description[transaction.description]
                assert item.account_id == account_id and item.amount == transaction.amount
                if item.transaction_id:
                    assert item.transaction_id == transaction.id
            listed = {t.description for t in history}
            lost = [
                item.description
                for item in recorder.issued
                if item.account_id == account_id
                and item.transaction_id
                and item.description not in listed
            ]
            assert not lost, f"acknowledged but lost: {lost[:5]}"
            account = stub.GetAccount(
                api.GetAccountRequest(account_id=account_id), timeout=call_timeout_s
            ).account
            total = sum(t.amount for t in history)
            assert account.settled_balance == total
            assert account.available_balance == total
            balances[account_id] = (account.available_balance, account.settled_balance)
        return balances
    finally:
        channel.close()
