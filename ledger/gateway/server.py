"""Build and run the public grpc.aio server: LedgerServiceApi, grpc.health.v1, reflection.

Shared by ``ledger-standalone`` and ``ledger-gateway``; they differ only in the stub. Prints one
line saying how it serves (plaintext or TLS, tokens or none, who can connect), then one
``listening on HOST:PORT`` line once serving (tests and scripts wait for it; ``--port 0`` picks a
free port), and stops gracefully on SIGINT/SIGTERM: health turns NOT_SERVING, in-flight calls get
``limits.shutdown_grace_s``, then the stub closes its stores or channels. TLS and bearer tokens
come from ``ServerSecurity`` (``ledger.gateway.auth``); without it the server is plaintext and
open, as the reference.
"""

from __future__ import annotations

import asyncio
import logging
import sys

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from ledger import limits
from ledger.gateway.auth import ServerSecurity
from ledger.gateway.metrics import start_metrics_server
from ledger.gateway.servicer import SERVICE_NAME, LedgerApi
from ledger.gateway.status_page import StatusPage
from ledger.gateway.transfers import TransferResolver
from ledger.serving import bind_port, is_loopback, wait_for_stop_signal
from ledger.stubs import LedgerCore

__all__ = ["run_server", "serve"]

log = logging.getLogger(__name__)

# Every bound of the public server is explicit; why each value: ledger/limits.py. The bound on
# calls running at once is grpc.aio's maximum_concurrent_rpcs (not a channel option), in serve().
SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", limits.grpc_message_bytes_max),
    ("grpc.max_send_message_length", limits.grpc_message_bytes_max),
    ("grpc.max_concurrent_streams", limits.grpc_streams_per_connection_max),
    ("grpc.http.overload_protection", 0),  # count open HTTP/2 streams, as the client does
    ("grpc.server.max_pending_requests", limits.grpc_pending_calls_max),
    ("grpc.server.max_pending_requests_hard_limit", limits.grpc_pending_calls_max),
    ("grpc.so_reuseport", 0),  # a second server on the same port must fail, not share it
]


async def serve(
    stub: LedgerCore,
    host: str,
    port: int,
    name: str,
    metrics_port: int,
    security: ServerSecurity | None = None,
    status_page: StatusPage | None = None,
) -> None:
    security = security or ServerSecurity()
    if metrics_port:
        start_metrics_server(host, metrics_port)
    if status_page is not None:
        await status_page.start()  # bound before 'listening on', so it is there once that shows
    server = grpc.aio.server(
        options=SERVER_OPTIONS,
        interceptors=security.interceptors(),
        maximum_concurrent_rpcs=limits.grpc_concurrent_calls_max,
    )
    api = LedgerApi(stub)
    server.add_generic_rpc_handlers((api.handlers(),))
    resolver = TransferResolver(stub, api.transfers)  # finishes transfers whose driver died
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    bound_port = bind_port(server, host, port, security.credentials)
    await server.start()
    for service in ("", SERVICE_NAME):
        await health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    print(f"{name}: {security.describe(host, bound_port, is_loopback(host))}", flush=True)
    if status_page is not None:
        print(f"{name}: {status_page.describe()}", flush=True)
    print(f"{name} listening on {host}:{bound_port}", flush=True)
    resolver.start()

    await wait_for_stop_signal()
    log.info("shutting down")
    await resolver.stop()
    if status_page is not None:
        await status_page.stop()
    await health_servicer.enter_graceful_shutdown()
    await server.stop(limits.shutdown_grace_s)
    await stub.close()
    print(f"{name} stopped", flush=True)


def run_server(
    stub: LedgerCore,
    host: str,
    port: int,
    name: str,
    metrics_port: int = 0,
    security: ServerSecurity | None = None,
    status_page: StatusPage | None = None,
) -> None:
    """Run ``serve`` to completion; a bind failure is one line on stderr and exit code 1."""
    try:
        asyncio.run(serve(stub, host, port, name, metrics_port, security, status_page))
    except OSError as error:
        print(f"{name}: {error}", file=sys.stderr)
        sys.exit(1)
