"""``LedgerClient``: the blocking client (grpc); its operations come from ``_operations``."""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, TypeVar

import grpc
from google.protobuf.message import Message

from ledger import limits
from ledger.client._operations import Call, Operations, Plan, Sleep, Steps, client_signature
from ledger.client.channels import CHANNEL_OPTIONS, ClientSecurity, open_channel
from ledger.client.errors import Unavailable
from ledger.client.retry import DEFAULT_RETRY, RetryPolicy
from ledger.pb import ledger_api_pb2 as api
from ledger.pb import ledger_api_pb2_grpc

__all__ = ["LedgerClient", "run_plan"]

P = ParamSpec("P")
T = TypeVar("T")


def run_plan(plan: Plan[T], call: Callable[[Call], Message]) -> T:
    """Run a plan with blocking calls: each ``Call`` through ``call``, ``Sleep`` by sleeping."""
    steps = Steps(plan)
    with contextlib.closing(steps):
        while (effect := steps.next()) is not None:
            if isinstance(effect, Sleep):
                time.sleep(effect.seconds)
                continue
            try:
                steps.reply(call(effect))
            except grpc.RpcError as error:
                steps.fail(error)
        return steps.result


def _blocking(
    build: Callable[Concatenate[Operations, P], Plan[T]],
) -> Callable[Concatenate[LedgerClient, P], T]:
    """A ``LedgerClient`` method that runs the plan ``build`` makes, with its signature."""

    @functools.wraps(build)
    def method(self: LedgerClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return run_plan(build(self._operations, *args, **kwargs), self._invoke)

    method.__qualname__ = f"LedgerClient.{build.__name__}"
    method.__module__ = __name__
    method.__signature__ = client_signature(build)  # type: ignore[attr-defined]
    return method


class LedgerClient:
    """A blocking client of the ledger's public API; thread-safe (one channel, shared).

    ``target`` is ``host:port``; ``security`` gives TLS and the bearer token (default:
    plaintext, no token); ``retry`` the retry limits (``RetryPolicy``). Use it as a context
    manager, or call ``close()``. ``from_channel`` wraps a channel built elsewhere.
    """

    def __init__(
        self,
        target: str = "localhost:8000",
        *,
        security: ClientSecurity | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        channel_options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        security = security or ClientSecurity()
        channel = open_channel(target, security, (*CHANNEL_OPTIONS, *channel_options))
        self._setup(channel, security, retry, owns_channel=True)
        self.target = target

    @classmethod
    def from_channel(
        cls,
        channel: grpc.Channel,
        *,
        security: ClientSecurity | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
    ) -> LedgerClient:
        """A client on a channel the caller built and closes (``security`` only adds the
        token: the channel's credentials are its own)."""
        client = cls.__new__(cls)
        client._setup(channel, security or ClientSecurity(), retry, owns_channel=False)
        client.target = ""
        return client

    def _setup(
        self,
        channel: grpc.Channel,
        security: ClientSecurity,
        retry: RetryPolicy,
        *,
        owns_channel: bool,
    ) -> None:
        self._channel = channel
        self._owns_channel = owns_channel
        self._stub = ledger_api_pb2_grpc.LedgerServiceApiStub(channel)
        self._metadata = security.metadata
        self._operations = Operations(retry)

    def _invoke(self, call: Call) -> Message:
        response: Message = getattr(self._stub, call.method)(
            call.request, timeout=call.timeout_s, metadata=self._metadata
        )
        return response

    @property
    def retry(self) -> RetryPolicy:
        return self._operations.policy

    def wait_for_ready(self, timeout_s: float) -> None:
        """Block until the channel is connected; ``Unavailable`` after ``timeout_s``."""
        try:
            grpc.channel_ready_future(self._channel).result(timeout=timeout_s)
        except grpc.FutureTimeoutError:
            raise Unavailable(f"not connected within {timeout_s:g} s") from None

    def close(self) -> None:
        """Close the channel (if the client opened it); calls in progress are cancelled."""
        if self._owns_channel:
            self._channel.close()

    def __enter__(self) -> LedgerClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    get_account = _blocking(Operations.get_account)
    create_account = _blocking(Operations.create_account)
    create_accounts = _blocking(Operations.create_accounts)
    get_transaction = _blocking(Operations.get_transaction)
    create_transaction = _blocking(Operations.create_transaction)
    create_transactions = _blocking(Operations.create_transactions)
    settle_transaction = _blocking(Operations.settle_transaction)
    cancel_transaction = _blocking(Operations.cancel_transaction)
    list_transactions = _blocking(Operations.list_transactions)
    create_transfer = _blocking(Operations.create_transfer)
    get_transfer = _blocking(Operations.get_transfer)

    def iter_transactions(
        self, account_id: str, *, page_size: int = limits.page_size_max
    ) -> Iterator[api.Transaction]:
        """Every transaction of the account, in creation order, fetched ``page_size`` at a time
        (each page retried like a read). Transactions created meanwhile show up at the end."""
        for page in self._operations.transaction_pages(account_id, page_size):
            yield from run_plan(page, self._invoke)
