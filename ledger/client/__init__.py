"""The Python client of the ledger's public API: typed calls, retries, exactly-once writes.

::

    from ledger.client import ClientSecurity, LedgerClient, NewTransaction, NotFound

    with LedgerClient("localhost:8000") as ledger:
        account = ledger.create_account()
        top_up = ledger.create_transaction(account.id, 100, description="Top-up", settled=True)
        pending = ledger.create_transaction(account.id, -10, description="Purchase")
        ledger.settle_transaction(pending.id)
        print(ledger.get_account(account.id).available_balance)  # 90
        results = ledger.create_transactions(NewTransaction(account.id, 1) for _ in range(2500))
        history = list(ledger.iter_transactions(account.id))  # every page

``AsyncLedgerClient`` has the same methods for asyncio (``await ledger.get_account(...)``,
``async for t in ledger.iter_transactions(...)``).

* **One method per rpc** of ``LedgerServiceApi``: ``get_account``, ``create_account``,
  ``create_accounts``, ``get_transaction``, ``create_transaction``, ``create_transactions``,
  ``settle_transaction``, ``cancel_transaction``, ``list_transactions`` (one page),
  ``create_transfer``, ``get_transfer``; plus ``iter_transactions`` (all pages). They return
  the API's protobuf messages (``ledger.pb.ledger_api_pb2``: ``Account``, ``Transaction``,
  ``Transfer``), the batch calls a list of ``ItemResult`` in input order.
* **Exactly once.** Every write whose rpc has an idempotency key (accounts, transactions,
  transfers, and every batch item) gets a fresh random key unless the caller passes one, and
  keeps it across the client's retries: however often a write is resent, the server applies
  it once. Settle and cancel have no key in the API: they are retried only on failures that
  prove nothing was applied (``ledger.client.retry`` explains why and when).
* **Retries** on ``UNAVAILABLE``, ``DEADLINE_EXCEEDED`` and ``RESOURCE_EXHAUSTED``, with
  exponential backoff and jitter, inside one overall deadline per call (``RetryPolicy``:
  ``deadline_s``, ``attempt_timeout_s``, ``backoff_initial_s``, ``backoff_max_s``,
  ``attempts_max``).
* **Batches** of any size: ``create_transactions`` and ``create_accounts`` split them into
  calls of at most ``limits.batch_items_max`` (1,000) items.
* **Errors** are ``LedgerError`` subclasses by status code (``NotFound``,
  ``InvalidArgument``, ``FailedPrecondition``, ``AlreadyExists``, ``Unavailable``, …) with
  ``code``, ``reason`` (the server's ``ErrorInfo`` reason, e.g. ``ACCOUNT_NOT_FOUND``),
  ``metadata`` and ``message`` (``ledger.client.errors``).
* **Connection**: ``LedgerClient(target, security=ClientSecurity.load(tls_ca=..., token=...))``
  for TLS (a CA file, or ``ClientSecurity.from_pem`` for PEM bytes), a client certificate and a
  bearer token; ``ledger.client.channels`` is the one place channels are built, the
  ``ledger-dev`` tools included.

Both clients run the same I/O-free plans (``ledger.client._operations``): the sync client
with blocking gRPC calls, the async one with grpc.aio, so their behaviour cannot drift apart.
"""

from ledger.client.aio import AsyncLedgerClient
from ledger.client.channels import ClientSecurity
from ledger.client.errors import (
    AlreadyExists,
    Cancelled,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    LedgerError,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    Unimplemented,
)
from ledger.client.models import ItemResult, NewTransaction, new_idempotency_key
from ledger.client.retry import DEFAULT_RETRY, RetryPolicy
from ledger.client.sync import LedgerClient

__all__ = [
    "DEFAULT_RETRY",
    "AlreadyExists",
    "AsyncLedgerClient",
    "Cancelled",
    "ClientSecurity",
    "DeadlineExceeded",
    "FailedPrecondition",
    "Internal",
    "InvalidArgument",
    "ItemResult",
    "LedgerClient",
    "LedgerError",
    "NewTransaction",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "RetryPolicy",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "new_idempotency_key",
]
