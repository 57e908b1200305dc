"""Assertions on the API's rich error statuses, shared by the integration tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

__all__ = ["error_info", "error_infos", "expect_error"]


def error_info(error: grpc.RpcError) -> error_details_pb2.ErrorInfo:
    """The single ErrorInfo detail of a rich error status."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, f"no rich status on {error.code()} {error.details()!r}"
    assert status.message == error.details()
    infos = error_infos(status)
    assert len(infos) == 1, f"expected one ErrorInfo, got {status.details}"
    return infos[0]


def error_infos(status: Any) -> list[error_details_pb2.ErrorInfo]:
    """Every ErrorInfo among a rich status's details (a ``google.rpc.Status``)."""
    infos = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            infos.append(info)
    return infos


def expect_error(
    call: Callable[[], Any], code: grpc.StatusCode, reasons: str | set[str]
) -> grpc.RpcError:
    """Run ``call``; it must fail with ``code`` and an ErrorInfo reason in ``reasons``."""
    with pytest.raises(grpc.RpcError) as caught:
        call()
    error = caught.value
    assert error.code() == code, (error.code(), error.details())
    details = error.details()
    assert details, "an error has a message"
    assert not details.startswith(code.name), f"message has a code prefix: {details!r}"
    assert "Traceback" not in details
    info = error_info(error)
    allowed = {reasons} if isinstance(reasons, str) else reasons
    assert info.reason in allowed, (info.reason, details)
    assert info.domain
    return error
