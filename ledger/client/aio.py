"""``AsyncLedgerClient``: the asyncio client (grpc.aio); its operations come from
``_operations``, exactly as ``LedgerClient``'s."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, TypeVar

import grpc
import grpc.aio
from google.protobuf.message import Message

from ledger import limits
from ledger.client._operations import Call, Operations, Plan, Sleep, Steps, client_signature
from ledger.client.channels import CHANNEL_OPTIONS, ClientSecurity, open_aio_channel
from ledger.client.errors import Unavailable
from ledger.client.retry import DEFAULT_RETRY, RetryPolicy
from ledger.pb import ledger_api_pb2 as api
from ledger.pb import ledger_api_pb2_grpc

__all__ = ["AsyncLedgerClient", "run_plan_async"]

P = ParamSpec("P")
T = TypeVar("T")


async def run_plan_async(plan: Plan[T], call: Callable[[Call], Awaitable[Message]]) -> T:
    """Run a plan on the event loop: each ``Call`` awaited through ``call``, ``Sleep`` with
    ``asyncio.sleep``."""
    steps = Steps(plan)
    with contextlib.closing(steps):
        while (effect := steps.next()) is not None:
            if isinstance(effect, Sleep):
                await asyncio.sleep(effect.seconds)
                continue
            try:
                steps.reply(await call(effect))
            except grpc.RpcError as error:
                steps.fail(error)
        return steps.result


def _awaitable(
    build: Callable[Concatenate[Operations, P], Plan[T]],
) -> Callable[Concatenate[AsyncLedgerClient, P], Coroutine[Any, Any, T]]:
    """An ``AsyncLedgerClient`` method that runs the plan ``build`` makes, with its signature."""

    @functools.wraps(build)
    async def method(self: AsyncLedgerClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await run_plan_async(build(self._operations, *args, **kwargs), self._invoke)

    method.__qualname__ = f"AsyncLedgerClient.{build.__name__}"
    method.__module__ = __name__
    method.__signature__ = client_signature(build)  # type: ignore[attr-defined]
    return method


class AsyncLedgerClient:
    """The asyncio twin of ``LedgerClient``: the same methods, awaited, and
    ``iter_transactions`` as an async iterator. Create it inside the event loop that uses it;
    ``async with`` it, or ``await close()``."""

    def __init__(
        self,
        target: str = "localhost:8000",
        *,
        security: ClientSecurity | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        channel_options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        security = security or ClientSecurity()
        channel = open_aio_channel(target, security, (*CHANNEL_OPTIONS, *channel_options))
        self._setup(channel, security, retry, owns_channel=True)
        self.target = target

    @classmethod
    def from_channel(
        cls,
        channel: grpc.aio.Channel,
        *,
        security: ClientSecurity | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
    ) -> AsyncLedgerClient:
        """A client on a grpc.aio channel the caller built and closes."""
        client = cls.__new__(cls)
        client._setup(channel, security or ClientSecurity(), retry, owns_channel=False)
        client.target = ""
        return client

    def _setup(
        self,
        channel: grpc.aio.Channel,
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

    async def _invoke(self, call: Call) -> Message:
        response: Message = await getattr(self._stub, call.method)(
            call.request, timeout=call.timeout_s, metadata=self._metadata
        )
        return response

    @property
    def retry(self) -> RetryPolicy:
        return self._operations.policy

    async def wait_for_ready(self, timeout_s: float) -> None:
        """Wait until the channel is connected; ``Unavailable`` after ``timeout_s``."""
        try:
            await asyncio.wait_for(self._channel.channel_ready(), timeout_s)
        except TimeoutError:
            raise Unavailable(f"not connected within {timeout_s:g} s") from None

    async def close(self) -> None:
        """Close the channel (if the client opened it); calls in progress are cancelled."""
        if self._owns_channel:
            await self._channel.close()

    async def __aenter__(self) -> AsyncLedgerClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    get_account = _awaitable(Operations.get_account)
    create_account = _awaitable(Operations.create_account)
    create_accounts = _awaitable(Operations.create_accounts)
    get_transaction = _awaitable(Operations.get_transaction)
    create_transaction = _awaitable(Operations.create_transaction)
    create_transactions = _awaitable(Operations.create_transactions)
    settle_transaction = _awaitable(Operations.settle_transaction)
    cancel_transaction = _awaitable(Operations.cancel_transaction)
    list_transactions = _awaitable(Operations.list_transactions)
    create_transfer = _awaitable(Operations.create_transfer)
    get_transfer = _awaitable(Operations.get_transfer)

    async def iter_transactions(
        self, account_id: str, *, page_size: int = limits.page_size_max
    ) -> AsyncIterator[api.Transaction]:
        """Every transaction of the account, in creation order, fetched ``page_size`` at a time
        (each page retried like a read). Transactions created meanwhile show up at the end."""
        for page in self._operations.transaction_pages(account_id, page_size):
            for transaction in await run_plan_async(page, self._invoke):
                yield transaction
