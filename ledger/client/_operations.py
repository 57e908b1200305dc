"""Everything both clients do, written once and free of I/O: requests, keys, retries, batches,
pages, error mapping.

Each operation is a *plan*: a generator that yields what it needs done (``Call`` an rpc with a
timeout, ``Sleep``) and gets back the response, or has the call's ``grpc.RpcError`` thrown in
at the ``yield``. ``LedgerClient`` runs plans with blocking calls and ``time.sleep``,
``AsyncLedgerClient`` with ``await`` and ``asyncio.sleep``; nothing else differs between them,
so the retry policy, the idempotency keys, the splitting of batches and the paging cannot
drift apart. The clients' methods are made from the ``Operations`` methods below, with their
signatures and docstrings (``sync.py``, ``aio.py``).
"""

from __future__ import annotations

import dataclasses
import inspect
import random
import re
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from typing import Any, Generic, TypeAlias, TypeVar

import grpc
from google.protobuf.message import Message

from ledger import limits
from ledger.client.errors import Internal, LedgerError, error_from_item, error_from_rpc
from ledger.client.models import ItemResult, NewTransaction, new_idempotency_key
from ledger.client.retry import Attempts, RetryPolicy, Safety
from ledger.pb import ledger_api_pb2 as api

__all__ = ["Call", "Operations", "Plan", "Sleep", "Steps", "client_signature"]

T = TypeVar("T")
R = TypeVar("R", bound=Message)
ItemT = TypeVar("ItemT", bound=Message)
V = TypeVar("V")


@dataclasses.dataclass(frozen=True, slots=True)
class Call:
    """Send ``request`` on the stub method ``method`` with this timeout."""

    method: str
    request: Message
    timeout_s: float


@dataclasses.dataclass(frozen=True, slots=True)
class Sleep:
    seconds: float


Effect: TypeAlias = Call | Sleep
# Sent back: the response after a Call, None after a Sleep; a failed Call is thrown in.
Plan: TypeAlias = Generator[Effect, Message | None, T]


class Steps(Generic[T]):
    """Steps through a plan for a driver: ``next()`` is the next effect (None: finished, see
    ``result``); after a ``Call`` the driver reports ``reply(response)`` or ``fail(error)``."""

    def __init__(self, plan: Plan[T]) -> None:
        self._plan = plan
        self._reply: Message | None = None
        self._failure: grpc.RpcError | None = None
        self._result: tuple[T] | None = None

    def next(self) -> Effect | None:
        reply, failure = self._reply, self._failure
        self._reply, self._failure = None, None
        try:
            return self._plan.send(reply) if failure is None else self._plan.throw(failure)
        except StopIteration as done:
            self._result = (done.value,)
            return None

    def reply(self, response: Message) -> None:
        self._reply = response

    def fail(self, error: grpc.RpcError) -> None:
        self._failure = error

    @property
    def result(self) -> T:
        assert self._result is not None, "the plan has not finished"
        return self._result[0]

    def close(self) -> None:
        self._plan.close()


def client_signature(build: Callable[..., Any]) -> inspect.Signature:
    """The signature a client method made from ``build`` shows: ``Plan[X]`` becomes ``X``."""
    signature = inspect.signature(build)
    returns = signature.return_annotation
    if isinstance(returns, str) and (match := re.fullmatch(r"Plan\[(.*)\]", returns)):
        returns = match.group(1)
    return signature.replace(return_annotation=returns)


def _key(given: str | None, new_key: Callable[[], str]) -> str:
    return given if given else new_key()


@dataclasses.dataclass(frozen=True, slots=True)
class _Batch(Generic[ItemT, V]):
    """How one batch rpc is called and read."""

    method: str
    request: Callable[[list[ItemT]], Message]
    response_type: type[Message]
    results: Callable[[Any], Sequence[Any]]  # response -> per-item results (status + value)
    value: Callable[[Any], V]  # one successful result -> its value


_ACCOUNTS: _Batch[api.CreateAccountRequest, api.Account] = _Batch(
    "CreateAccounts",
    lambda items: api.CreateAccountsRequest(accounts=items),
    api.CreateAccountsResponse,
    lambda response: response.results,
    lambda result: result.account,
)
_TRANSACTIONS: _Batch[api.CreateTransactionRequest, api.Transaction] = _Batch(
    "CreateTransactions",
    lambda items: api.CreateTransactionsRequest(transactions=items),
    api.CreateTransactionsResponse,
    lambda response: response.results,
    lambda result: result.transaction,
)


@dataclasses.dataclass(slots=True)
class _Cursor:
    token: str = ""
    done: bool = False
    pages: int = 0


class Operations:
    """The client's operations as plans; one instance per client (it holds the policy)."""

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        rng: random.Random | None = None,
        new_key: Callable[[], str] = new_idempotency_key,
    ) -> None:
        self.policy = policy
        self._rng = rng or random.Random()
        self._new_key = new_key

    # -- one call, retried -------------------------------------------------------------------

    def _call(
        self,
        method: str,
        request: Message,
        response_type: type[R],
        safety: Safety,
        idempotency_key: str | None = None,
    ) -> Plan[R]:
        """Send the same ``request`` (the same key) until it succeeds or the policy gives up."""
        attempts = Attempts(self.policy, safety, self._rng)
        while True:
            try:
                response = yield Call(method, request, attempts.timeout_s())
            except grpc.RpcError as failure:
                error = error_from_rpc(
                    failure, attempts=attempts.count, idempotency_key=idempotency_key
                )
                pause_s = attempts.pause_s(error)
                if pause_s is None:
                    raise error from failure
                yield Sleep(pause_s)
                continue
            if not isinstance(response, response_type):
                raise TypeError(f"{method} answered {type(response).__name__}")
            return response

    # -- accounts ----------------------------------------------------------------------------

    def get_account(self, account_id: str) -> Plan[api.Account]:
        """The account ``account_id`` (16 lowercase hex characters) with its balances.

        Raises ``NotFound`` (reason ``ACCOUNT_NOT_FOUND``) or ``InvalidArgument``
        (``INVALID_ACCOUNT_ID``). Retried on transient failures (a read has no effect).
        """
        request = api.GetAccountRequest(account_id=account_id)
        response = yield from self._call("GetAccount", request, api.GetAccountResponse, Safety.READ)
        return response.account

    def create_account(self, *, idempotency_key: str | None = None) -> Plan[api.Account]:
        """A new account with zero balances.

        ``idempotency_key`` (1-128 bytes; default: a fresh random one) makes every repeat
        return the same account; the client sends the same key on each of its retries.
        """
        key = _key(idempotency_key, self._new_key)
        request = api.CreateAccountRequest(idempotency_key=key)
        response = yield from self._call(
            "CreateAccount", request, api.CreateAccountResponse, Safety.KEYED, key
        )
        return response.account

    def create_accounts(
        self, count: int | None = None, *, idempotency_keys: Iterable[str | None] | None = None
    ) -> Plan[list[ItemResult[api.Account]]]:
        """``count`` new accounts, or one per key of ``idempotency_keys`` (``None`` or ``""``
        in it: a fresh key); any number, sent in ``CreateAccounts`` calls of at most
        ``limits.batch_items_max`` items. One ``ItemResult`` per account, in input order;
        see ``create_transactions`` for retries and failures.
        """
        if (count is None) == (idempotency_keys is None):
            raise TypeError("give either count or idempotency_keys")
        if count is not None:
            if count < 0:
                raise ValueError("count must not be negative")
            wanted: list[str | None] = [None] * count
        else:
            assert idempotency_keys is not None
            wanted = list(idempotency_keys)
        keys = [_key(key, self._new_key) for key in wanted]
        items = [api.CreateAccountRequest(idempotency_key=key) for key in keys]
        return (yield from self._batch(_ACCOUNTS, items, keys))

    # -- transactions ------------------------------------------------------------------------

    def get_transaction(self, transaction_id: str) -> Plan[api.Transaction]:
        """The transaction ``transaction_id`` (32 lowercase hex characters) as it is now.

        Raises ``NotFound`` (``TRANSACTION_NOT_FOUND``) or ``InvalidArgument``.
        """
        request = api.GetTransactionRequest(transaction_id=transaction_id)
        response = yield from self._call(
            "GetTransaction", request, api.GetTransactionResponse, Safety.READ
        )
        return response.transaction

    def create_transaction(
        self,
        account_id: str,
        amount: int,
        *,
        description: str = "",
        settled: bool = False,
        idempotency_key: str | None = None,
        hold_timeout_ms: int = 0,
    ) -> Plan[api.Transaction]:
        """A transaction on ``account_id``: ``amount`` > 0 is a top-up, < 0 a purchase (minor
        units); ``settled=False`` leaves it pending (settle or cancel it later), optionally
        cancelled by the server after ``hold_timeout_ms``.

        A purchase above the available balance is not an error: the transaction comes back
        with status ``TRANSACTION_STATUS_INSUFFICIENT_FUNDS`` and nothing moved.
        ``idempotency_key`` (scoped to the account; default: a fresh random one) is sent on
        every retry, so the transaction is created at most once; a key already used on this
        account for another payload raises ``AlreadyExists`` (``IDEMPOTENCY_KEY_REUSED``).
        """
        key = _key(idempotency_key, self._new_key)
        request = NewTransaction(
            account_id,
            amount,
            description=description,
            settled=settled,
            hold_timeout_ms=hold_timeout_ms,
        ).request(key)
        response = yield from self._call(
            "CreateTransaction", request, api.CreateTransactionResponse, Safety.KEYED, key
        )
        return response.transaction

    def create_transactions(
        self, items: Iterable[NewTransaction | api.CreateTransactionRequest]
    ) -> Plan[list[ItemResult[api.Transaction]]]:
        """Create any number of transactions (any accounts), in ``CreateTransactions`` calls of
        at most ``limits.batch_items_max`` items, one after the other.

        Returns one ``ItemResult`` per item, in input order: the transaction, or the error the
        single call would have raised. Every item carries an idempotency key (its own, or a
        fresh one), so calls and items are retried like single writes: a call that fails
        transiently is resent whole, items that fail transiently are resent alone, each with
        the same key, within ``deadline_s`` per call. A call that still fails gives its error
        to each of its items; the later calls are then not sent and their items carry the same
        error (they were not applied). A failed item's ``idempotency_key`` lets the caller
        send it again, exactly once.
        """
        requests: list[api.CreateTransactionRequest] = []
        keys: list[str] = []
        for item in items:
            if isinstance(item, NewTransaction):
                key = _key(item.idempotency_key, self._new_key)
                request = item.request(key)
            elif isinstance(item, api.CreateTransactionRequest):
                request = api.CreateTransactionRequest()
                request.CopyFrom(item)  # never change the caller's message
                key = _key(request.idempotency_key, self._new_key)
                request.idempotency_key = key
            else:
                raise TypeError(f"not a transaction to create: {item!r}")
            requests.append(request)
            keys.append(key)
        return (yield from self._batch(_TRANSACTIONS, requests, keys))

    def settle_transaction(self, transaction_id: str) -> Plan[api.Transaction]:
        """Settle a pending transaction; returns it with status ``SETTLED``.

        Raises ``FailedPrecondition`` (``TRANSACTION_NOT_PENDING``) if it is not pending.
        The rpc has no idempotency key, so it is retried only when the server says nothing
        was applied; after an unknown outcome (``DeadlineExceeded``, or ``Unavailable`` with
        no reason) the error is raised: read the transaction to see whether it is settled.
        """
        request = api.SettleTransactionRequest(transaction_id=transaction_id)
        response = yield from self._call(
            "SettleTransaction", request, api.SettleTransactionResponse, Safety.UNKEYED
        )
        return response.transaction

    def cancel_transaction(self, transaction_id: str) -> Plan[api.Transaction]:
        """Cancel a pending transaction (its hold is given back); returns it with status
        ``CANCELLED``. Retried like ``settle_transaction`` (no idempotency key)."""
        request = api.CancelTransactionRequest(transaction_id=transaction_id)
        response = yield from self._call(
            "CancelTransaction", request, api.CancelTransactionResponse, Safety.UNKEYED
        )
        return response.transaction

    def list_transactions(
        self, account_id: str, *, page_size: int = 0, page_token: str = ""
    ) -> Plan[api.ListTransactionsResponse]:
        """One page of the account's transactions, in creation order (``page_size`` 0: the
        server's default, 100; at most 1,000), and the token of the next page (``""`` on the
        last). ``iter_transactions`` hides the paging."""
        request = api.ListTransactionsRequest(
            account_id=account_id, page_size=page_size, page_token=page_token
        )
        response = yield from self._call(
            "ListTransactions", request, api.ListTransactionsResponse, Safety.READ
        )
        return response

    def transaction_pages(
        self, account_id: str, page_size: int = limits.page_size_max
    ) -> Iterator[Plan[list[api.Transaction]]]:
        """The plans that fetch the account's pages in turn, for ``iter_transactions``; each
        must have run before the next is asked for (it moves the cursor)."""
        if not 1 <= page_size <= limits.page_size_max:
            raise ValueError(f"page_size must be 1..{limits.page_size_max}, got {page_size}")
        cursor = _Cursor()
        while not cursor.done:
            pages = cursor.pages
            yield self._page(account_id, page_size, cursor)
            if cursor.pages == pages:
                raise RuntimeError("a page's plan must run before the next page is asked for")

    def _page(
        self, account_id: str, page_size: int, cursor: _Cursor
    ) -> Plan[list[api.Transaction]]:
        response = yield from self.list_transactions(
            account_id, page_size=page_size, page_token=cursor.token
        )
        if response.next_page_token and response.next_page_token == cursor.token:
            raise Internal(f"the server returned page token {cursor.token!r} twice")
        cursor.token = response.next_page_token
        cursor.done = not cursor.token
        cursor.pages += 1
        return list(response.transactions)

    # -- transfers ---------------------------------------------------------------------------

    def create_transfer(
        self,
        from_account_id: str,
        to_account_id: str,
        amount: int,
        *,
        description: str = "",
        idempotency_key: str | None = None,
    ) -> Plan[api.Transfer]:
        """Move ``amount`` (> 0) from one account to another, atomically, across shards.

        Returns the transfer: ``COMPLETED``, ``INSUFFICIENT_FUNDS`` (nothing moved) or
        ``FAILED`` (the credit was refused, everything given back). ``idempotency_key`` is
        scoped to the source account (default: a fresh one) and sent on every retry, so the
        transfer happens at most once; a transfer still in flight when time runs out raises
        ``DeadlineExceeded`` (reason ``TRANSFER_IN_FLIGHT``): it finishes on its own, and the
        same call with the error's ``idempotency_key`` returns its final state.
        """
        key = _key(idempotency_key, self._new_key)
        request = api.CreateTransferRequest(
            from_account_id=from_account_id,
            to_account_id=to_account_id,
            amount=amount,
            description=description,
            idempotency_key=key,
        )
        response = yield from self._call(
            "CreateTransfer", request, api.CreateTransferResponse, Safety.KEYED, key
        )
        return response.transfer

    def get_transfer(self, transfer_id: str) -> Plan[api.Transfer]:
        """The transfer ``transfer_id`` (its debit transaction's id) as it is now; status
        ``IN_FLIGHT`` while it finishes. Raises ``NotFound`` (``TRANSFER_NOT_FOUND``)."""
        request = api.GetTransferRequest(transfer_id=transfer_id)
        response = yield from self._call(
            "GetTransfer", request, api.GetTransferResponse, Safety.READ
        )
        return response.transfer

    # -- batches -----------------------------------------------------------------------------

    def _batch(
        self, batch: _Batch[ItemT, V], items: list[ItemT], keys: list[str]
    ) -> Plan[list[ItemResult[V]]]:
        """Every item in calls of at most ``limits.batch_items_max``, results in input order."""
        results: list[ItemResult[V]] = []
        for start in range(0, len(items), limits.batch_items_max):
            end = min(start + limits.batch_items_max, len(items))
            chunk, failure = yield from self._chunk(batch, items[start:end], keys[start:end])
            results.extend(chunk)
            if failure is not None:  # the call itself failed for good: send nothing more
                results.extend(ItemResult(None, failure, key) for key in keys[end:])
                break
        return results

    def _chunk(
        self, batch: _Batch[ItemT, V], items: list[ItemT], keys: list[str]
    ) -> Plan[tuple[list[ItemResult[V]], LedgerError | None]]:
        """One call's items, resent (the items that failed transiently, or all of them if the
        call failed) with the same keys until done or the policy gives up. Returns the results
        and, if the call itself failed for good, its error."""
        results: list[ItemResult[V] | None] = [None] * len(items)
        todo = list(range(len(items)))
        attempts = Attempts(self.policy, Safety.KEYED, self._rng)
        while True:
            request = batch.request([items[i] for i in todo])
            try:
                response = yield Call(batch.method, request, attempts.timeout_s())
            except grpc.RpcError as failure:
                error = error_from_rpc(failure, attempts=attempts.count)
                pause_s = attempts.pause_s(error)
                if pause_s is None:
                    for i in todo:
                        results[i] = ItemResult(None, error, keys[i])
                    return _complete(results), error
                yield Sleep(pause_s)
                continue
            if not isinstance(response, batch.response_type):
                raise TypeError(f"{batch.method} answered {type(response).__name__}")
            answers = batch.results(response)
            if len(answers) != len(todo):
                raise Internal(
                    f"{batch.method} answered {len(answers)} results for {len(todo)} items"
                )
            retry: list[int] = []
            transient: LedgerError | None = None
            for i, answer in zip(todo, answers, strict=True):
                if answer.status.code == 0:
                    results[i] = ItemResult(batch.value(answer), None, keys[i])
                    continue
                error = error_from_item(
                    answer.status, attempts=attempts.count, idempotency_key=keys[i]
                )
                results[i] = ItemResult(None, error, keys[i])
                if attempts.may_retry(error):
                    retry.append(i)
                    transient = error
            if transient is None:
                return _complete(results), None
            pause_s = attempts.pause_s(transient)
            if pause_s is None:
                return _complete(results), None
            todo = retry
            yield Sleep(pause_s)


def _complete(results: list[ItemResult[V] | None]) -> list[ItemResult[V]]:
    done = [result for result in results if result is not None]
    assert len(done) == len(results), "an item without a result"
    return done
