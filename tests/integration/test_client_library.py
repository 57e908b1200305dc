"""The client library (``ledger.client``) against live servers: a standalone server and a
3-node cluster.

Goal: every method works end to end; a write the client retries is applied exactly once, when
its first answer is lost, when its first attempt's deadline is too short, and when the process
answering it (the standalone server, the cluster's gateway) is killed and restarted with writes
in flight; ``iter_transactions`` walks more than one page in creation order; a 2,500-item batch
travels as calls of 1,000, 1,000 and 500 with results in input order; errors are typed, with
the server's reason.

Method: the module-scoped ``service`` fixture (``conftest.SERVICE_KINDS``: standalone and
cluster; the whole module is slow, as every test here starts real processes). The faults a test
needs are injected on the client's side with a gRPC interceptor on its channel
(``LedgerClient.from_channel``), which also counts the calls; what was applied is checked
through the API afterwards (transaction lists and balances).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest

from ledger.client import (
    AlreadyExists,
    AsyncLedgerClient,
    FailedPrecondition,
    InvalidArgument,
    LedgerClient,
    NewTransaction,
    NotFound,
    RetryPolicy,
)
from ledger.client.channels import CHANNEL_OPTIONS
from ledger.pb import ledger_api_pb2 as api

pytestmark = pytest.mark.slow  # real servers, and a cluster (the tests/conftest.py rule too)

# A deadline long enough to outlive a restart of the server the client talks to.
PATIENT = RetryPolicy(
    deadline_s=60.0, attempt_timeout_s=10.0, backoff_initial_s=0.05, backoff_max_s=0.5
)
SETTLED = api.TRANSACTION_STATUS_SETTLED


class _LostAnswer(grpc.RpcError):
    """What a client sees when the connection breaks after the server applied the call."""

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        return "the answer was lost on the way (injected)"

    def trailing_metadata(self) -> tuple[()]:
        return ()


class Faults(grpc.UnaryUnaryClientInterceptor):
    """Records every call; ``lose(method)`` drops the next answer of that rpc after the server
    has applied it, ``shorten(method, s)`` gives its next attempt a deadline of ``s``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self._next: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def lose(self, method: str) -> None:
        self._next[method] = ("lose", 0.0)

    def shorten(self, method: str, timeout_s: float) -> None:
        self._next[method] = ("shorten", timeout_s)

    def requests(self, method: str) -> list[Any]:
        return [request for name, request in self.calls if name == method]

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        method = details.method.rsplit("/", 1)[1]
        with self._lock:
            self.calls.append((method, request))
            fault, timeout_s = self._next.pop(method, ("", 0.0))
        if fault == "shorten":
            details = details._replace(timeout=timeout_s)
        outcome = continuation(details, request)
        if fault == "lose":
            outcome.result()  # the server answered: the call was applied
            raise _LostAnswer()
        return outcome


@contextlib.contextmanager
def client_with_faults(service: Any) -> Iterator[tuple[LedgerClient, Faults]]:
    faults = Faults()
    with grpc.insecure_channel(service.address, options=list(CHANNEL_OPTIONS)) as channel:
        intercepted = grpc.intercept_channel(channel, faults)
        yield LedgerClient.from_channel(intercepted, retry=PATIENT), faults


@pytest.fixture
def client(service: Any) -> Iterator[LedgerClient]:
    with LedgerClient(service.address, retry=PATIENT) as made:
        yield made


def history(client: LedgerClient, account_id: str) -> list[api.Transaction]:
    return list(client.iter_transactions(account_id))


# -- every method, end to end ----------------------------------------------------------------


def test_every_method_against_the_server(client: LedgerClient) -> None:
    source, target = client.create_account(), client.create_account()
    assert client.get_account(source.id) == source
    top_up = client.create_transaction(source.id, 100, description="Top-up", settled=True)
    pending = client.create_transaction(source.id, -10, description="Purchase")
    held = client.create_transaction(source.id, -5, hold_timeout_ms=3_600_000)
    assert pending.status == api.TRANSACTION_STATUS_PENDING and held.expires_at > 0
    assert client.settle_transaction(pending.id).status == SETTLED
    assert client.cancel_transaction(held.id).status == api.TRANSACTION_STATUS_CANCELLED
    assert client.get_transaction(top_up.id).amount == 100
    short = client.create_transaction(source.id, -1000, settled=True)
    assert short.status == api.TRANSACTION_STATUS_INSUFFICIENT_FUNDS  # not an error
    moved = client.create_transfer(source.id, target.id, 30, description="rent")
    assert moved.status == api.TRANSFER_STATUS_COMPLETED
    assert client.get_transfer(moved.id) == moved
    page = client.list_transactions(source.id, page_size=2)
    assert [t.id for t in page.transactions] == [top_up.id, pending.id] and page.next_page_token
    assert [t.id for t in history(client, source.id)] == [
        top_up.id,
        pending.id,
        held.id,
        short.id,
        moved.debit_transaction_id,
    ]
    after = client.get_account(source.id)
    assert (after.available_balance, after.settled_balance) == (60, 60)
    assert client.get_account(target.id).settled_balance == 30


def test_errors_are_typed_with_the_servers_reason(client: LedgerClient) -> None:
    account = client.create_account()
    missing = "0" * 15 + "1" if account.id != "0" * 15 + "1" else "0" * 15 + "2"
    with pytest.raises(NotFound) as not_found:
        client.get_account(missing)
    assert not_found.value.reason == "ACCOUNT_NOT_FOUND"
    assert not_found.value.metadata.get("account_id") == missing
    with pytest.raises(InvalidArgument) as invalid:
        client.create_transaction(account.id, 0, idempotency_key="zero")
    assert invalid.value.reason == "INVALID_AMOUNT" and invalid.value.idempotency_key == "zero"
    done = client.create_transaction(account.id, 5, settled=True)
    with pytest.raises(FailedPrecondition) as not_pending:
        client.settle_transaction(done.id)
    assert not_pending.value.reason == "TRANSACTION_NOT_PENDING"
    client.create_transaction(account.id, 5, idempotency_key="once")
    with pytest.raises(AlreadyExists) as reused:
        client.create_transaction(account.id, 6, idempotency_key="once")
    assert reused.value.reason == "IDEMPOTENCY_KEY_REUSED"
    assert not_found.value.attempts == invalid.value.attempts == 1  # answers: not retried


# -- exactly once under retries --------------------------------------------------------------


def test_a_write_whose_answer_is_lost_is_retried_and_applied_once(service: Any) -> None:
    with client_with_faults(service) as (client, faults):
        account = client.create_account()
        faults.lose("CreateTransaction")
        made = client.create_transaction(account.id, 100, settled=True)
        first, second = faults.requests("CreateTransaction")
        assert first == second and first.idempotency_key  # resent with the same key
        assert [t.id for t in history(client, account.id)] == [made.id]
        assert client.get_account(account.id).settled_balance == 100

        faults.lose("CreateAccount")
        again = client.create_account(idempotency_key=f"lost-{uuid.uuid4().hex}")
        assert client.get_account(again.id) == again
        assert len(faults.requests("CreateAccount")) == 3  # 1 + the lost one and its retry

        other = client.create_account()
        faults.lose("CreateTransfer")
        moved = client.create_transfer(account.id, other.id, 40)
        assert len(faults.requests("CreateTransfer")) == 2
        assert client.get_account(account.id).settled_balance == 60
        assert [t.id for t in history(client, other.id)] == [moved.credit_transaction_id]


def test_a_batch_whose_answer_is_lost_is_applied_once(service: Any) -> None:
    with client_with_faults(service) as (client, faults):
        account = client.create_account()
        faults.lose("CreateTransactions")
        sent = [NewTransaction(account.id, 1, settled=True) for _ in range(1500)]
        results = client.create_transactions(sent)
        assert all(result.ok for result in results)
        sizes = [len(r.transactions) for r in faults.requests("CreateTransactions")]
        assert sizes == [1000, 1000, 500]  # the first call twice, then the rest
        listed = history(client, account.id)
        assert [t.id for t in listed] == [result.unwrap().id for result in results]
        assert client.get_account(account.id).settled_balance == 1500


@pytest.mark.parametrize("first_deadline_s", [0.001, 0.005, 0.02, 0.05])
def test_a_too_short_deadline_then_a_retry_applies_once(
    service: Any, first_deadline_s: float
) -> None:
    """The first attempt may or may not reach the ledger before its deadline; either way the
    retry (same key) leaves exactly one transaction."""
    with client_with_faults(service) as (client, faults):
        account = client.create_account()
        for n in range(5):
            faults.shorten("CreateTransaction", first_deadline_s)
            client.create_transaction(account.id, 1, description=f"t{n}", settled=True)
        listed = history(client, account.id)
        assert [t.description for t in listed] == [f"t{n}" for n in range(5)]
        assert client.get_account(account.id).settled_balance == 5
        assert len(faults.requests("CreateTransaction")) >= 5


def test_writes_survive_a_restart_of_the_server_they_talk_to(service: Any) -> None:
    """kill -9 of the process the client talks to (standalone: the server; cluster: the
    gateway) with writes in flight, then a restart: every write succeeds, exactly once."""
    answering = service.process if service.kind == "standalone" else service.gateway
    writes, workers = 300, 6
    with client_with_faults(service) as (client, faults):
        account = client.create_account()
        done: list[api.Transaction] = []
        warmed_up = threading.Event()

        def write(n: int) -> None:
            made = client.create_transaction(account.id, 1, description=f"w{n}", settled=True)
            done.append(made)
            if len(done) >= 10:
                warmed_up.set()

        with ThreadPoolExecutor(workers) as pool:
            futures = [pool.submit(write, n) for n in range(writes)]
            assert warmed_up.wait(30.0), "the first writes did not finish"
            answering.kill9()
            assert len(done) < writes - workers  # writes were still coming
            answering.start()
            for future in futures:
                future.result()
        # Some attempts failed while the process was down, and were sent again.
        assert len(faults.requests("CreateTransaction")) > writes
        listed = history(client, account.id)
        assert sorted(t.description for t in listed) == sorted(f"w{n}" for n in range(writes))
        assert sorted(t.id for t in listed) == sorted(t.id for t in done)
        assert client.get_account(account.id).settled_balance == writes


# -- paging and batches ----------------------------------------------------------------------


def test_a_2500_item_batch_is_split_and_iterated_over_pages(service: Any) -> None:
    with client_with_faults(service) as (client, faults):
        first, second = client.create_account(), client.create_account()
        sent = [
            NewTransaction((first, second)[n % 2].id, n + 1, description=f"item-{n}", settled=True)
            for n in range(2500)
        ]
        results = client.create_transactions(sent)
        sizes = [len(r.transactions) for r in faults.requests("CreateTransactions")]
        assert sizes == [1000, 1000, 500]
        made = [result.unwrap() for result in results]
        assert [t.description for t in made] == [item.description for item in sent]
        for account in (first, second):
            mine = [t for t in made if t.id.startswith(account.id)]
            before = len(faults.requests("ListTransactions"))
            listed = list(client.iter_transactions(account.id, page_size=500))
            assert len(faults.requests("ListTransactions")) - before == 3  # 1,250 in pages of 500
            assert [t.id for t in listed] == [t.id for t in mine]  # input order = creation order
            assert listed == sorted(listed, key=lambda t: t.id)
        total = sum(n + 1 for n in range(2500))
        balances = [client.get_account(a.id).settled_balance for a in (first, second)]
        assert sum(balances) == total


def test_create_accounts_in_batches(client: LedgerClient) -> None:
    keys = [f"acct-{uuid.uuid4().hex}" for _ in range(1001)]
    results = client.create_accounts(idempotency_keys=keys)
    ids = [result.unwrap().id for result in results]
    assert len(set(ids)) == 1001
    again = client.create_accounts(idempotency_keys=[*keys[:3], None])
    assert [result.unwrap().id for result in again[:3]] == ids[:3]  # the same accounts back
    assert again[3].unwrap().id not in ids


# -- the async client ------------------------------------------------------------------------


def run(main: Callable[[], Any]) -> Any:
    return asyncio.run(main())


def test_the_async_client_end_to_end(service: Any) -> None:
    async def main() -> tuple[list[int], int, int]:
        async with AsyncLedgerClient(service.address, retry=PATIENT) as client:
            await client.wait_for_ready(10.0)
            account = await client.create_account()
            results = await client.create_transactions(
                [NewTransaction(account.id, n, settled=True) for n in range(1, 1201)]
            )
            pending = await client.create_transaction(account.id, -7)
            await client.cancel_transaction(pending.id)
            amounts = [t.amount async for t in client.iter_transactions(account.id, page_size=400)]
            balance = (await client.get_account(account.id)).settled_balance
            return amounts, balance, sum(result.ok for result in results)

    amounts, balance, created = run(main)
    assert created == 1200
    assert amounts == [*range(1, 1201), -7]
    assert balance == sum(range(1, 1201))
