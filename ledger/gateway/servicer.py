"""LedgerServiceApi handlers: parse -> stamp -> call -> map.

The gateway is the only place that reads the clock and draws randomness: it stamps
``now_ns``, mints account ids and one ``request_id`` per client call, and puts them into the
command, so replicas stay deterministic and a retried command is recognised as the same call.

Requests arrive as raw bytes and are parsed here, so a malformed message gets INVALID_ARGUMENT
instead of grpc's generic deserialization failure. Shapes (ids, amounts, sizes) are validated
before anything is routed; the core validates again, because it must never trust its input.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf.message import DecodeError, Message

from ledger import ids, limits
from ledger.gateway.convert import account_to_api, transaction_to_api, transfer_to_api
from ledger.gateway.errors import ApiError, to_grpc_status
from ledger.gateway.metrics import observe_call
from ledger.gateway.transfers import StepFailed, TransferDriver, stamped_command
from ledger.pb import ledger_api_pb2 as api
from ledger.pb import ledger_internal_pb2 as pb
from ledger.reasons import Code, Reason
from ledger.stubs import DeadlineExceeded, LedgerCore, LedgerError

__all__ = ["SERVICE_NAME", "LedgerApi"]

log = logging.getLogger(__name__)

SERVICE_NAME = api.DESCRIPTOR.services_by_name["LedgerServiceApi"].full_name

ItemT = TypeVar("ItemT")
Handler = Callable[[Any, float], Awaitable[Message]]


def _invalid(message: str, reason: Reason, **metadata: str) -> ApiError:
    assert reason.code is Code.INVALID_ARGUMENT, reason
    return ApiError(reason, message, metadata)


def _parse_account_id(text: str) -> int:
    try:
        return ids.parse_account_id(text)
    except ids.InvalidId:
        raise _invalid(
            "invalid account id", Reason.INVALID_ACCOUNT_ID, account_id=text[:64]
        ) from None


def _parse_transaction_id(text: str) -> tuple[int, int]:
    try:
        return ids.parse_transaction_id(text)
    except ids.InvalidId:
        raise _invalid(
            "invalid transaction id", Reason.INVALID_TRANSACTION_ID, transaction_id=text[:64]
        ) from None


def _idempotency_key(text: str) -> bytes:
    key = text.encode("utf-8")
    if len(key) > limits.idempotency_key_bytes_max:
        raise _invalid(
            f"idempotency_key is longer than {limits.idempotency_key_bytes_max} bytes",
            Reason.IDEMPOTENCY_KEY_TOO_LONG,
        )
    return key


def _check_description(text: str) -> None:
    if len(text.encode("utf-8")) > limits.description_bytes_max:
        raise _invalid(
            f"description is longer than {limits.description_bytes_max} UTF-8 bytes",
            Reason.DESCRIPTION_TOO_LONG,
        )


def _unwrap(result: pb.Result, kind: str) -> Any:
    """The ``kind`` payload of a result, or the ApiError its failure maps to."""
    actual = result.WhichOneof("kind")
    if actual == "error":
        error = result.error
        raise ApiError.from_wire(error.reason, error.message, error.metadata)
    if actual != kind:
        raise AssertionError(f"expected a {kind} result, got {actual}")
    return getattr(result, kind)


def derived_account_id(key: bytes, attempt: int) -> int:
    """The account id for a CreateAccount idempotency key: a repeat lands on the same id."""
    digest = hashlib.sha256(b"ledger/create-account/v1\x00" + bytes([attempt]) + key).digest()
    return int.from_bytes(digest[:8], "big")


class LedgerApi:
    """Business handlers; ``handlers()`` wraps them for a grpc.aio server."""

    def __init__(self, stub: LedgerCore, *, clock_ns: Callable[[], int] = time.time_ns) -> None:
        self._stub = stub
        self._clock_ns = clock_ns
        self.transfers = TransferDriver(stub, clock_ns)
        # Accounts seen to exist; never deleted, so a hit needs no read (LRU, bounded).
        self._known_accounts: OrderedDict[int, None] = OrderedDict()

    def _command(self, **kind: Message) -> pb.Command:
        return stamped_command(self._clock_ns, **kind)

    # -- reads ------------------------------------------------------------------------------

    async def get_account(self, request: api.GetAccountRequest, timeout_s: float) -> Message:
        account_id = _parse_account_id(request.account_id)
        query = pb.Query(get_account=pb.GetAccount(account_id=account_id))
        result = await self._stub.read(ids.shard_index(account_id), query, timeout_s)
        return api.GetAccountResponse(account=account_to_api(_unwrap(result, "account")))

    async def get_transaction(
        self, request: api.GetTransactionRequest, timeout_s: float
    ) -> Message:
        account_id, number = _parse_transaction_id(request.transaction_id)
        query = pb.Query(
            get_transaction=pb.GetTransaction(account_id=account_id, transaction_number=number)
        )
        result = await self._stub.read(ids.shard_index(account_id), query, timeout_s)
        return api.GetTransactionResponse(
            transaction=transaction_to_api(_unwrap(result, "transaction"))
        )

    async def list_transactions(
        self, request: api.ListTransactionsRequest, timeout_s: float
    ) -> Message:
        account_id = _parse_account_id(request.account_id)
        if request.page_size < 0:
            raise _invalid("page_size must not be negative", Reason.INVALID_PAGE_SIZE)
        if len(request.page_token) > limits.page_token_chars_max:
            raise _invalid("malformed page token", Reason.INVALID_PAGE_TOKEN)
        query = pb.Query(
            list_transactions=pb.ListTransactions(
                account_id=account_id, page_size=request.page_size, page_token=request.page_token
            )
        )
        result = await self._stub.read(ids.shard_index(account_id), query, timeout_s)
        page = _unwrap(result, "page")
        return api.ListTransactionsResponse(
            transactions=[transaction_to_api(record) for record in page.transactions],
            next_page_token=page.next_page_token,
        )

    # -- writes -----------------------------------------------------------------------------

    async def create_account(self, request: api.CreateAccountRequest, timeout_s: float) -> Message:
        return api.CreateAccountResponse(account=await self._create_account(request, timeout_s))

    async def _create_account(
        self, request: api.CreateAccountRequest, timeout_s: float
    ) -> api.Account:
        key = _idempotency_key(request.idempotency_key)
        deadline_s = time.monotonic() + timeout_s
        for attempt in range(limits.account_id_attempts_max):
            # A taken id (a random collision, or a derived id owned by another key) has no
            # effect, so trying the next id never turns this call into two effects.
            account_id = derived_account_id(key, attempt) if key else secrets.randbits(64)
            command = self._command(
                create_account=pb.CreateAccount(account_id=account_id, idempotency_key=key)
            )
            remaining_s = max(deadline_s - time.monotonic(), 0.001)
            result = await self._stub.submit(ids.shard_index(account_id), command, remaining_s)
            taken = result.WhichOneof("kind") == "error" and (
                result.error.reason == Reason.ACCOUNT_ALREADY_EXISTS.value
            )
            if taken:
                continue
            return account_to_api(_unwrap(result, "account"))
        raise ApiError(Reason.ACCOUNT_ID_EXHAUSTED, "could not find a free account id")

    async def create_transaction(
        self, request: api.CreateTransactionRequest, timeout_s: float
    ) -> Message:
        transaction = await self._create_transaction(request, timeout_s)
        return api.CreateTransactionResponse(transaction=transaction)

    async def _create_transaction(
        self, request: api.CreateTransactionRequest, timeout_s: float
    ) -> api.Transaction:
        shard, command = self._transaction_command(request)
        result = await self._stub.submit(shard, command, timeout_s)
        return transaction_to_api(_unwrap(result, "transaction"))

    def _transaction_command(self, request: api.CreateTransactionRequest) -> tuple[int, pb.Command]:
        """Validate the shape and build the command; returns it with its shard."""
        account_id = _parse_account_id(request.account_id)
        if request.amount == 0:
            raise _invalid("amount must not be zero", Reason.INVALID_AMOUNT)
        _check_description(request.description)
        command = self._command(
            create_transaction=pb.CreateTransaction(
                account_id=account_id,
                amount=request.amount,
                description=request.description,
                settled=request.settled,
                idempotency_key=_idempotency_key(request.idempotency_key),
            )
        )
        timeout_ms = request.hold_timeout_ms
        if timeout_ms:
            if request.settled or not 0 < timeout_ms <= limits.hold_timeout_ms_max:
                raise _invalid(
                    f"hold_timeout_ms needs settled = false and 1..{limits.hold_timeout_ms_max}",
                    Reason.INVALID_HOLD_TIMEOUT,
                )
            # On the gateway's clock, like now_ns; the shard cancels it on its own clock.
            command.create_transaction.expires_at_ns = command.now_ns + timeout_ms * 1_000_000
        return ids.shard_index(account_id), command

    # -- batches: every item succeeds or fails on its own ------------------------------------

    async def create_transactions(
        self, request: api.CreateTransactionsRequest, timeout_s: float
    ) -> Message:
        """Items are grouped by shard and each group travels as one call (one Raft entry, when
        it fits), so a 1,000-item batch costs 16 shard calls, not 1,000."""
        _check_batch_size(len(request.transactions))
        results = [api.CreateTransactionResult() for _ in request.transactions]
        by_shard: dict[int, list[tuple[int, pb.Command]]] = {}
        for position, item in enumerate(request.transactions):
            try:
                shard, command = self._transaction_command(item)
            except ApiError as error:
                results[position].status.CopyFrom(_item_status(error))
                continue
            by_shard.setdefault(shard, []).append((position, command))

        async def submit_shard(shard: int, entries: list[tuple[int, pb.Command]]) -> None:
            try:
                outcomes = await self._stub.submit_many(
                    shard, [command for _, command in entries], timeout_s
                )
            except Exception as error:  # noqa: BLE001 - every item of the shard shares it
                status = _item_status(as_api_error(error, "CreateTransactions"))
                for position, _ in entries:
                    results[position].status.CopyFrom(status)
                return
            for (position, _), outcome in zip(entries, outcomes, strict=True):
                try:
                    transaction = transaction_to_api(_unwrap(outcome, "transaction"))
                except ApiError as error:
                    results[position].status.CopyFrom(_item_status(error))
                else:
                    results[position].transaction.CopyFrom(transaction)

        await asyncio.gather(*(submit_shard(s, e) for s, e in sorted(by_shard.items())))
        return api.CreateTransactionsResponse(results=results)

    async def create_accounts(
        self, request: api.CreateAccountsRequest, timeout_s: float
    ) -> Message:
        _check_batch_size(len(request.accounts))
        outcomes = await asyncio.gather(
            *(_item(self._create_account(item, timeout_s)) for item in request.accounts)
        )
        return api.CreateAccountsResponse(
            results=[
                api.CreateAccountResult(status=status, account=value) for status, value in outcomes
            ]
        )

    async def settle_transaction(
        self, request: api.SettleTransactionRequest, timeout_s: float
    ) -> Message:
        transaction = await self._finish_pending(request.transaction_id, "settle", timeout_s)
        return api.SettleTransactionResponse(transaction=transaction)

    async def cancel_transaction(
        self, request: api.CancelTransactionRequest, timeout_s: float
    ) -> Message:
        transaction = await self._finish_pending(request.transaction_id, "cancel", timeout_s)
        return api.CancelTransactionResponse(transaction=transaction)

    async def _finish_pending(
        self, transaction_id: str, action: str, timeout_s: float
    ) -> api.Transaction:
        account_id, number = _parse_transaction_id(transaction_id)
        body = {"account_id": account_id, "transaction_number": number}
        if action == "settle":
            command = self._command(settle_transaction=pb.SettleTransaction(**body))
        else:
            assert action == "cancel"
            command = self._command(cancel_transaction=pb.CancelTransaction(**body))
        result = await self._stub.submit(ids.shard_index(account_id), command, timeout_s)
        return transaction_to_api(_unwrap(result, "transaction"))

    # -- transfers --------------------------------------------------------------------------

    async def create_transfer(
        self, request: api.CreateTransferRequest, timeout_s: float
    ) -> Message:
        """Begin, credit, finish (ledger.gateway.transfers) within the caller's deadline; past
        it the transfer finishes on its own and a retry with the same key returns it."""
        from_id = _parse_account_id(request.from_account_id)
        to_id = _parse_account_id(request.to_account_id)
        if request.amount <= 0:
            raise _invalid("a transfer amount must be positive", Reason.INVALID_AMOUNT)
        if from_id == to_id:
            raise _invalid("a transfer needs two different accounts", Reason.SAME_ACCOUNT)
        _check_description(request.description)
        key = _idempotency_key(request.idempotency_key)
        deadline_s = time.monotonic() + timeout_s
        await self._check_account_exists(to_id, timeout_s)
        begin = pb.BeginTransfer(
            from_account_id=from_id,
            to_account_id=to_id,
            amount=request.amount,
            description=request.description,
            idempotency_key=key,
        )
        try:
            transfer = await self.transfers.begin(begin, max(deadline_s - time.monotonic(), 0.001))
            transfer = await self.transfers.resume(
                transfer, max(deadline_s - time.monotonic(), 0.001)
            )
        except StepFailed as failed:
            error = failed.error
            raise ApiError.from_wire(error.reason, error.message, error.metadata) from None
        except TimeoutError:
            raise ApiError(
                Reason.TRANSFER_IN_FLIGHT,
                "the transfer is in flight and finishes on its own; retry with the "
                "same idempotency key for its final state",
            ) from None
        return api.CreateTransferResponse(transfer=transfer_to_api(transfer))

    async def _check_account_exists(self, account_id: int, timeout_s: float) -> None:
        """NOT_FOUND before anything is held. Accounts are never deleted, so one that was seen
        stays known: a hit costs no read (a read is a ReadIndex round in the cluster)."""
        if account_id in self._known_accounts:
            self._known_accounts.move_to_end(account_id)
            return
        found = await self._stub.read(
            ids.shard_index(account_id),
            pb.Query(get_account=pb.GetAccount(account_id=account_id)),
            timeout_s,
        )
        _unwrap(found, "account")
        self._known_accounts[account_id] = None
        if len(self._known_accounts) > limits.known_accounts_cache_max:
            self._known_accounts.popitem(last=False)

    async def get_transfer(self, request: api.GetTransferRequest, timeout_s: float) -> Message:
        account_id, number = _parse_transaction_id(request.transfer_id)
        query = pb.Query(
            get_transfer=pb.GetTransfer(from_account_id=account_id, debit_number=number)
        )
        result = await self._stub.read(ids.shard_index(account_id), query, timeout_s)
        return api.GetTransferResponse(transfer=transfer_to_api(_unwrap(result, "transfer")))

    # -- grpc plumbing ----------------------------------------------------------------------

    def handlers(self) -> grpc.GenericRpcHandler:
        table: dict[str, tuple[type[Message], Handler]] = {
            "GetAccount": (api.GetAccountRequest, self.get_account),
            "CreateAccount": (api.CreateAccountRequest, self.create_account),
            "GetTransaction": (api.GetTransactionRequest, self.get_transaction),
            "CreateTransaction": (api.CreateTransactionRequest, self.create_transaction),
            "SettleTransaction": (api.SettleTransactionRequest, self.settle_transaction),
            "CancelTransaction": (api.CancelTransactionRequest, self.cancel_transaction),
            "ListTransactions": (api.ListTransactionsRequest, self.list_transactions),
            "CreateTransactions": (api.CreateTransactionsRequest, self.create_transactions),
            "CreateAccounts": (api.CreateAccountsRequest, self.create_accounts),
            "CreateTransfer": (api.CreateTransferRequest, self.create_transfer),
            "GetTransfer": (api.GetTransferRequest, self.get_transfer),
        }
        service = api.DESCRIPTOR.services_by_name["LedgerServiceApi"]
        assert set(table) == {method.name for method in service.methods}
        return grpc.method_handlers_generic_handler(
            SERVICE_NAME,
            {
                name: grpc.unary_unary_rpc_method_handler(
                    _boundary(name, request_type, handler),
                    request_deserializer=None,  # raw bytes: parsed in _boundary
                    response_serializer=_serialize,
                )
                for name, (request_type, handler) in table.items()
            },
        )


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def timeout_s_for(context: grpc.aio.ServicerContext) -> float:
    remaining_s: float | None = context.time_remaining()
    if remaining_s is None:
        return limits.deadline_ms_default / 1000
    return min(remaining_s, limits.deadline_ms_max / 1000)


def _map_ledger_error(error: LedgerError) -> ApiError:
    """The stub failure's own reason; an unknown outcome gets a message that says what to do."""
    if isinstance(error, DeadlineExceeded):
        return ApiError(
            error.reason,
            "deadline exceeded; the outcome is unknown, retry with an idempotency key",
        )
    return ApiError(error.reason, str(error))


def as_api_error(error: Exception, where: str) -> ApiError:
    """The one mapping from any exception to what the client sees; never a traceback."""
    if isinstance(error, ApiError):
        return error
    if isinstance(error, LedgerError):
        return _map_ledger_error(error)
    log.error("internal error in %s", where, exc_info=error)
    return ApiError(Reason.INTERNAL, "internal error")


def _check_batch_size(count: int) -> None:
    if not 0 < count <= limits.batch_items_max:
        raise _invalid(
            f"a batch holds 1 to {limits.batch_items_max} items, got {count}",
            Reason.INVALID_BATCH_SIZE,
        )


def _item_status(failure: ApiError) -> api.ItemStatus:
    """A batch item's failure, with the same code and reason a single call would get."""
    return api.ItemStatus(
        code=failure.code.value[0],
        message=failure.message,
        reason=failure.reason,
        metadata=failure.metadata,
    )


async def _item(work: Awaitable[ItemT]) -> tuple[api.ItemStatus, ItemT | None]:
    try:
        return api.ItemStatus(code=0), await work
    except Exception as error:  # noqa: BLE001 - mapped like the single-item boundary
        return _item_status(as_api_error(error, "batch item")), None


def _boundary(
    name: str, request_type: type[Message], handler: Handler
) -> Callable[[bytes, grpc.aio.ServicerContext], Awaitable[Message]]:
    """Parse the request and turn every failure into exactly one rich status."""

    async def call(request_bytes: bytes, context: grpc.aio.ServicerContext) -> Message:
        started_s = time.perf_counter()
        try:
            try:
                request = request_type.FromString(request_bytes)
            except (DecodeError, ValueError, TypeError):
                raise _invalid("malformed request message", Reason.MALFORMED_REQUEST) from None
            timeout_s = timeout_s_for(context)
            if timeout_s <= 0:
                raise DeadlineExceeded("deadline exceeded")
            response = await handler(request, timeout_s)
        except Exception as error:  # noqa: BLE001 - the boundary: every failure becomes a status
            failure = as_api_error(error, name)
        else:
            observe_call(name, "OK", time.perf_counter() - started_s)
            return response
        observe_call(name, failure.code.name, time.perf_counter() - started_s)
        await context.abort_with_status(to_grpc_status(failure))
        raise AssertionError("abort_with_status returned")

    return call
