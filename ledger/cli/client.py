"""Client helpers for the dev CLI: a channel to the gateway and one-line error reporting."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import click
import grpc

from ledger.pb import ledger_api_pb2_grpc

__all__ = ["call_timeout_s", "gateway_stub", "rpc_errors_as_click"]

call_timeout_s = 10.0
connect_timeout_s = 5.0


@contextlib.contextmanager
def gateway_stub(address: str) -> Iterator[ledger_api_pb2_grpc.LedgerServiceApiStub]:
    """A stub on a channel that is known to be connected, or a one-line ClickException."""
    channel = grpc.insecure_channel(address)
    try:
        try:
            grpc.channel_ready_future(channel).result(timeout=connect_timeout_s)
        except grpc.FutureTimeoutError:
            raise click.ClickException(f"gateway {address} is not reachable") from None
        with rpc_errors_as_click():
            yield ledger_api_pb2_grpc.LedgerServiceApiStub(channel)
    finally:
        channel.close()


@contextlib.contextmanager
def rpc_errors_as_click() -> Iterator[None]:
    try:
        yield
    except grpc.RpcError as error:
        code = error.code().name if hasattr(error, "code") else "UNKNOWN"
        details = error.details() if hasattr(error, "details") else str(error)
        raise click.ClickException(f"{code}: {details}") from None
