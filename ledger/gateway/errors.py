"""The single table from outcome reasons to gRPC status codes, and rich error statuses.

Every error a client sees is a gRPC status with a plain message (no code prefix) and one
``google.rpc.ErrorInfo`` detail (reason, domain, metadata with the ids involved). Unexpected
exceptions become INTERNAL with no detail of the failure: tracebacks go to the log only.
"""

from __future__ import annotations

from collections.abc import Mapping

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from ledger.core import Reason

__all__ = ["ERROR_DOMAIN", "ApiError", "code_for_reason", "to_grpc_status"]

ERROR_DOMAIN = "ledger.evrblk.com"

_CODES: dict[str, grpc.StatusCode] = {
    Reason.INVALID_AMOUNT.value: grpc.StatusCode.INVALID_ARGUMENT,
    Reason.DESCRIPTION_TOO_LONG.value: grpc.StatusCode.INVALID_ARGUMENT,
    Reason.IDEMPOTENCY_KEY_TOO_LONG.value: grpc.StatusCode.INVALID_ARGUMENT,
    Reason.INVALID_PAGE_SIZE.value: grpc.StatusCode.INVALID_ARGUMENT,
    Reason.INVALID_PAGE_TOKEN.value: grpc.StatusCode.INVALID_ARGUMENT,
    Reason.INVALID_COMMAND.value: grpc.StatusCode.INVALID_ARGUMENT,
    Reason.SAME_ACCOUNT.value: grpc.StatusCode.INVALID_ARGUMENT,
    Reason.INVALID_HOLD_TIMEOUT.value: grpc.StatusCode.INVALID_ARGUMENT,
    Reason.ACCOUNT_NOT_FOUND.value: grpc.StatusCode.NOT_FOUND,
    Reason.TRANSACTION_NOT_FOUND.value: grpc.StatusCode.NOT_FOUND,
    Reason.TRANSFER_NOT_FOUND.value: grpc.StatusCode.NOT_FOUND,
    Reason.ACCOUNT_ALREADY_EXISTS.value: grpc.StatusCode.ALREADY_EXISTS,
    Reason.IDEMPOTENCY_KEY_REUSED.value: grpc.StatusCode.ALREADY_EXISTS,
    Reason.TRANSACTION_NOT_PENDING.value: grpc.StatusCode.FAILED_PRECONDITION,
    Reason.BALANCE_OVERFLOW.value: grpc.StatusCode.FAILED_PRECONDITION,
    Reason.TRANSACTION_LIMIT_REACHED.value: grpc.StatusCode.FAILED_PRECONDITION,
}
assert set(_CODES) == {reason.value for reason in Reason}, "every reason needs a status code"


def code_for_reason(reason: str) -> grpc.StatusCode:
    """Unknown reasons (a newer node than this gateway) are INTERNAL, not guessed."""
    return _CODES.get(reason, grpc.StatusCode.INTERNAL)


class ApiError(Exception):
    """Raised inside a handler; turned into one rich gRPC status at the boundary."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        reason: str,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason
        self.metadata = dict(metadata or {})


def to_grpc_status(error: ApiError) -> grpc.Status:
    info = error_details_pb2.ErrorInfo(
        reason=error.reason, domain=ERROR_DOMAIN, metadata=error.metadata
    )
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(code=error.code.value[0], message=error.message, details=[detail])
    return rpc_status.to_status(status)
