"""Fixtures of the client library's unit tests: a scripted in-process server, and ``ledger``,
which runs a client method on the sync or the async client (every test using it runs on both:
they share their logic, and these tests check that they also share their behaviour)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from client.fake_server import FakeLedger
from ledger.client import AsyncLedgerClient, ClientSecurity, LedgerClient, RetryPolicy
from ledger.pb import ledger_api_pb2 as api

# Short pauses, room for a few attempts: the tests that time things pass their own.
FAST = RetryPolicy(
    deadline_s=5.0, attempt_timeout_s=2.0, backoff_initial_s=0.01, backoff_max_s=0.05
)


class Ledger:
    """One client flavour against one address; each call opens and closes a client."""

    def __init__(self, flavour: str, address: str) -> None:
        self.flavour = flavour
        self.address = address

    def __call__(
        self,
        method: str,
        *args: Any,
        retry: RetryPolicy = FAST,
        security: ClientSecurity | None = None,
        **kwargs: Any,
    ) -> Any:
        if self.flavour == "sync":
            with LedgerClient(self.address, retry=retry, security=security) as client:
                return getattr(client, method)(*args, **kwargs)

        async def run() -> Any:
            async with AsyncLedgerClient(self.address, retry=retry, security=security) as client:
                return await getattr(client, method)(*args, **kwargs)

        return asyncio.run(run())

    def transactions(
        self, account_id: str, page_size: int, retry: RetryPolicy = FAST
    ) -> list[api.Transaction]:
        """``iter_transactions`` to the end."""
        if self.flavour == "sync":
            with LedgerClient(self.address, retry=retry) as client:
                return list(client.iter_transactions(account_id, page_size=page_size))

        async def run() -> list[api.Transaction]:
            async with AsyncLedgerClient(self.address, retry=retry) as client:
                return [t async for t in client.iter_transactions(account_id, page_size=page_size)]

        return asyncio.run(run())


@pytest.fixture
def fake() -> FakeLedger:
    return FakeLedger()


@pytest.fixture
def address(fake: FakeLedger) -> Iterator[str]:
    with fake.serve() as serving:
        yield serving


@pytest.fixture(params=["sync", "async"])
def ledger(request: pytest.FixtureRequest, address: str) -> Ledger:
    return Ledger(request.param, address)
