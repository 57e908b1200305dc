"""Rich error statuses: a reason from ``ledger.reasons`` (the single table of reasons and their
status codes) becomes a gRPC status.

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

from ledger.reasons import Code, Reason

__all__ = ["ERROR_DOMAIN", "ApiError", "grpc_code", "to_grpc_status"]

ERROR_DOMAIN = "ledger.evrblk.com"

_GRPC_CODES = {code: grpc.StatusCode[code.name] for code in Code}
assert all(_GRPC_CODES[code].value[0] == code.value for code in Code), "Code numbers are gRPC's"


def grpc_code(reason: Reason) -> grpc.StatusCode:
    return _GRPC_CODES[reason.code]


class ApiError(Exception):
    """Raised inside a handler; turned into one rich gRPC status at the boundary. The status
    code is the reason's, from the table (INTERNAL for a wire reason it does not hold)."""

    def __init__(
        self, reason: Reason, message: str, metadata: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.code = grpc_code(reason)
        self.message = message
        self.reason = reason.value  # the wire string
        self.metadata = dict(metadata or {})

    @classmethod
    def from_wire(
        cls, reason: str, message: str, metadata: Mapping[str, str] | None = None
    ) -> ApiError:
        """A failure a shard answered with, by its reason's wire string. A reason this gateway
        does not know (a newer node) is passed on as it is, with INTERNAL: not guessed."""
        known = Reason.from_wire(reason)
        error = cls(Reason.INTERNAL if known is None else known, message, metadata)
        error.reason = reason
        return error


def to_grpc_status(error: ApiError) -> grpc.Status:
    info = error_details_pb2.ErrorInfo(
        reason=error.reason, domain=ERROR_DOMAIN, metadata=error.metadata
    )
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(code=error.code.value[0], message=error.message, details=[detail])
    return rpc_status.to_status(status)
