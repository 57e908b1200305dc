"""``iter_transactions``: every transaction of an account across pages, paging hidden.

Method: a scripted ``ListTransactions`` that pages a list of transactions with opaque tokens
the way the server does (creation order, ``page_size`` per page, empty token on the last).
"""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest

from client.conftest import Ledger
from client.fake_server import Fail, FakeLedger, unavailable
from ledger import limits
from ledger.client import NotFound
from ledger.pb import ledger_api_pb2 as api

ACCOUNT = "0123456789abcdef"


def pages_of(
    count: int,
) -> Callable[[api.ListTransactionsRequest], api.ListTransactionsResponse]:
    transactions = [api.Transaction(id=f"{ACCOUNT}{n:016x}", amount=n) for n in range(1, count + 1)]

    def handle(request: api.ListTransactionsRequest) -> api.ListTransactionsResponse:
        assert request.account_id == ACCOUNT
        start = int(request.page_token[len("after-") :]) if request.page_token else 0
        end = start + (request.page_size or limits.page_size_default)
        token = f"after-{end}" if end < len(transactions) else ""
        return api.ListTransactionsResponse(
            transactions=transactions[start:end], next_page_token=token
        )

    return handle


@pytest.mark.parametrize(("count", "pages"), [(0, 1), (99, 1), (100, 1), (250, 3)])
def test_every_transaction_in_order_over_pages(
    fake: FakeLedger, ledger: Ledger, count: int, pages: int
) -> None:
    fake.on("ListTransactions", pages_of(count))
    found = ledger.transactions(ACCOUNT, page_size=100)
    assert [t.amount for t in found] == list(range(1, count + 1))
    requests = fake.requests("ListTransactions")
    assert len(requests) == pages
    assert [r.page_token for r in requests] == ["", *[f"after-{100 * n}" for n in range(1, pages)]]
    assert all(r.page_size == 100 for r in requests)


def test_the_default_page_is_the_largest(fake: FakeLedger, ledger: Ledger) -> None:
    fake.on("ListTransactions", pages_of(2500))
    assert len(ledger.transactions(ACCOUNT, page_size=limits.page_size_max)) == 2500
    assert [r.page_size for r in fake.requests("ListTransactions")] == [1000] * 3


def test_a_failed_page_is_retried_and_iteration_goes_on(fake: FakeLedger, ledger: Ledger) -> None:
    pages = pages_of(30)
    fake.on("ListTransactions", pages, unavailable(reason=None), pages)
    assert len(ledger.transactions(ACCOUNT, page_size=10)) == 30
    tokens = [r.page_token for r in fake.requests("ListTransactions")]
    assert tokens == ["", "after-10", "after-10", "after-20"]


def test_errors_surface_from_the_iterator(fake: FakeLedger, ledger: Ledger) -> None:
    fake.on("ListTransactions", Fail(grpc.StatusCode.NOT_FOUND, "no", "ACCOUNT_NOT_FOUND"))
    with pytest.raises(NotFound):
        ledger.transactions(ACCOUNT, page_size=10)


def test_a_server_repeating_a_token_does_not_loop_forever(fake: FakeLedger, ledger: Ledger) -> None:
    page = api.ListTransactionsResponse(
        transactions=[api.Transaction(id=ACCOUNT + "0" * 16)], next_page_token="same"
    )
    fake.on("ListTransactions", page)
    with pytest.raises(Exception, match="twice"):
        ledger.transactions(ACCOUNT, page_size=10)


@pytest.mark.parametrize("page_size", [0, -1, limits.page_size_max + 1])
def test_page_sizes_out_of_range_are_refused(ledger: Ledger, page_size: int) -> None:
    with pytest.raises(ValueError, match="page_size"):
        ledger.transactions(ACCOUNT, page_size=page_size)
