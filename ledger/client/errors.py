"""Typed exceptions of the client: one class per kind of failure, all ``LedgerError``.

The server answers every failure with a gRPC status and one ``google.rpc.ErrorInfo`` detail
(``reason``, ``metadata`` with the ids involved); a batch item fails with an ``ItemStatus``
carrying the same three. Both become the same exception here, chosen by the status code::

    LedgerError                     code, reason, metadata, message, attempts, idempotency_key
     ├── InvalidArgument            INVALID_ARGUMENT      bad id, amount 0, too long… (and
     │                                                    OUT_OF_RANGE)
     ├── NotFound                   NOT_FOUND             ACCOUNT_/TRANSACTION_/TRANSFER_NOT_FOUND
     ├── AlreadyExists              ALREADY_EXISTS        IDEMPOTENCY_KEY_REUSED (other payload)
     ├── FailedPrecondition         FAILED_PRECONDITION   TRANSACTION_NOT_PENDING, BALANCE_OVERFLOW
     ├── Unauthenticated            UNAUTHENTICATED       TOKEN_MISSING, TOKEN_UNKNOWN
     ├── PermissionDenied           PERMISSION_DENIED     INSUFFICIENT_SCOPE
     ├── ResourceExhausted          RESOURCE_EXHAUSTED    OVERLOADED, or gRPC's call limit
     │                                                    (refused at once: nothing applied)
     ├── Unavailable                UNAVAILABLE           SHARD_UNAVAILABLE (nothing applied), or
     │                                                    no connection (outcome unknown)
     ├── DeadlineExceeded           DEADLINE_EXCEEDED     OUTCOME_UNKNOWN, TRANSFER_IN_FLIGHT, or
     │                                                    this client's own attempt timeout
     ├── Cancelled                  CANCELLED             the call was cancelled (channel closed)
     ├── Unimplemented              UNIMPLEMENTED         a server without this rpc
     └── Internal                   INTERNAL, UNKNOWN (also codes unknown to this client),
                                    DATA_LOSS, ABORTED

``ResourceExhausted``, ``Unavailable`` and ``DeadlineExceeded`` are the transient failures the
client retries (``ledger.client.retry`` says when); one of them reaching the caller means the
retries ran out or were not safe. Insufficient funds is not an
error: the transaction is stored with ``TRANSACTION_STATUS_INSUFFICIENT_FUNDS`` and returned.

``reason`` is the stable, machine-readable part (match on it, not on ``message``); it is ``""``
when the failure came from gRPC itself (no connection, a client-side timeout) rather than from
the ledger. ``attempts`` counts the calls the client made before giving up, and
``idempotency_key`` is the key a failed write was sent with (``None`` for reads and keyless
writes): sending the same write again with that key applies it at most once in all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import grpc
from google.rpc import error_details_pb2, status_pb2

from ledger.pb import ledger_api_pb2 as api

__all__ = [
    "AlreadyExists",
    "Cancelled",
    "DeadlineExceeded",
    "FailedPrecondition",
    "Internal",
    "InvalidArgument",
    "LedgerError",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "error_for",
    "error_from_item",
    "error_from_rpc",
]

_STATUS_DETAILS_KEY = "grpc-status-details-bin"  # where gRPC carries a rich google.rpc.Status


class LedgerError(Exception):
    """A call (or one batch item) failed; see the module docstring for the subclasses."""

    default_code: ClassVar[grpc.StatusCode] = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        reason: str = "",
        metadata: Mapping[str, str] | None = None,
        attempts: int = 1,
        idempotency_key: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code: grpc.StatusCode = code if code is not None else self.default_code
        self.reason = reason
        self.metadata: dict[str, str] = dict(metadata or {})
        self.attempts = attempts
        self.idempotency_key = idempotency_key

    def __str__(self) -> str:
        text = f"{self.code.name}: {self.message}"
        if self.reason:
            text += f" (reason {self.reason})"
        if self.attempts > 1:
            text += f" after {self.attempts} attempts"
        return text

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled with every field (to cross process boundaries), not just the message."""
        fields = {
            "code": self.code,
            "reason": self.reason,
            "metadata": self.metadata,
            "attempts": self.attempts,
            "idempotency_key": self.idempotency_key,
        }
        return (_rebuild, (type(self), self.message, fields))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code.name}, reason={self.reason!r}, "
            f"message={self.message!r}, metadata={self.metadata!r}, attempts={self.attempts})"
        )


def _rebuild(cls: type[LedgerError], message: str, fields: dict[str, Any]) -> LedgerError:
    return cls(message, **fields)


class InvalidArgument(LedgerError):
    """The request is malformed (bad id, zero amount, too long, bad page token); never retried."""

    default_code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(LedgerError):
    """The account, transaction or transfer does not exist."""

    default_code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(LedgerError):
    """The idempotency key was used before for a different payload on this account."""

    default_code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(LedgerError):
    """The state forbids it: the transaction is no longer pending, a balance would overflow."""

    default_code = grpc.StatusCode.FAILED_PRECONDITION


class Unauthenticated(LedgerError):
    """No token, or one the server does not know; nothing was applied."""

    default_code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(LedgerError):
    """The token's scope does not allow this rpc (a read token writing); nothing was applied."""

    default_code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(LedgerError):
    """The server refused the call at once (a queue or its call limit is full): not applied."""

    default_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(LedgerError):
    """No answer: reason SHARD_UNAVAILABLE says nothing was applied; a lost connection (reason
    ``""``) leaves the outcome unknown."""

    default_code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(LedgerError):
    """Time ran out; a write's outcome is unknown (resend it with ``idempotency_key``)."""

    default_code = grpc.StatusCode.DEADLINE_EXCEEDED


class Cancelled(LedgerError):
    """The call was cancelled on this side (for example the client was closed)."""

    default_code = grpc.StatusCode.CANCELLED


class Unimplemented(LedgerError):
    """The server does not offer this rpc (an older or a reference server)."""

    default_code = grpc.StatusCode.UNIMPLEMENTED


class Internal(LedgerError):
    """The server failed unexpectedly; its log has the details."""

    default_code = grpc.StatusCode.INTERNAL


_CLASSES: dict[grpc.StatusCode, type[LedgerError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.CANCELLED: Cancelled,
    grpc.StatusCode.UNIMPLEMENTED: Unimplemented,
    grpc.StatusCode.INTERNAL: Internal,
    grpc.StatusCode.UNKNOWN: Internal,
    grpc.StatusCode.DATA_LOSS: Internal,
    grpc.StatusCode.ABORTED: Internal,
}
_CODES_BY_NUMBER: dict[int, grpc.StatusCode] = {code.value[0]: code for code in grpc.StatusCode}


def error_for(
    code: grpc.StatusCode,
    message: str,
    reason: str = "",
    metadata: Mapping[str, str] | None = None,
    *,
    attempts: int = 1,
    idempotency_key: str | None = None,
) -> LedgerError:
    """The exception for a status code (any code: unlisted ones give a ``LedgerError``)."""
    cls = _CLASSES.get(code, LedgerError)
    return cls(
        message,
        code=code,
        reason=reason,
        metadata=metadata,
        attempts=attempts,
        idempotency_key=idempotency_key,
    )


def _error_info(trailing_metadata: Any) -> tuple[str, dict[str, str], str | None]:
    """(reason, metadata, status message) from a rich status in trailing metadata, if any."""
    for key, value in trailing_metadata or ():
        if key != _STATUS_DETAILS_KEY or not isinstance(value, bytes):
            continue
        try:
            status = status_pb2.Status.FromString(value)
        except Exception:  # noqa: BLE001 - a garbled detail must not hide the status itself
            return "", {}, None
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                return str(info.reason), dict(info.metadata), str(status.message)
        return "", {}, str(status.message)
    return "", {}, None


def error_from_rpc(
    error: grpc.RpcError, *, attempts: int = 1, idempotency_key: str | None = None
) -> LedgerError:
    """The exception for a failed call (sync ``grpc.RpcError`` or ``grpc.aio.AioRpcError``)."""
    code_of = getattr(error, "code", None)
    code = code_of() if callable(code_of) else grpc.StatusCode.UNKNOWN
    if not isinstance(code, grpc.StatusCode):
        code = grpc.StatusCode.UNKNOWN
    details_of = getattr(error, "details", None)
    details = details_of() if callable(details_of) else None
    trailing_of = getattr(error, "trailing_metadata", None)
    reason, metadata, status_message = _error_info(trailing_of() if callable(trailing_of) else ())
    message = details or status_message or str(error) or code.name
    return error_for(
        code,
        message,
        reason,
        metadata,
        attempts=attempts,
        idempotency_key=idempotency_key,
    )


def error_from_item(
    status: api.ItemStatus, *, attempts: int = 1, idempotency_key: str | None = None
) -> LedgerError:
    """The exception for a failed batch item: the same one the single-item call would raise."""
    code = _CODES_BY_NUMBER.get(status.code, grpc.StatusCode.UNKNOWN)
    return error_for(
        code,
        status.message or code.name,
        status.reason,
        dict(status.metadata),
        attempts=attempts,
        idempotency_key=idempotency_key,
    )
