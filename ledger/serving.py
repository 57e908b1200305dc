"""What every server process of ours does the same way: bind a port, wait for SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import ipaddress
import signal

import grpc

__all__ = ["bind_insecure_port", "bind_port", "is_loopback", "wait_for_stop_signal"]


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (who else can reach a port bound there)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind_insecure_port(server: grpc.aio.Server, host: str, port: int) -> int:
    """The bound port (``port`` 0 picks one); OSError, not grpc's RuntimeError, when taken."""
    return bind_port(server, host, port, None)


def bind_port(
    server: grpc.aio.Server, host: str, port: int, credentials: grpc.ServerCredentials | None
) -> int:
    """Plaintext without ``credentials``, TLS with them; the bound port, OSError if taken."""
    try:
        bound_port: int
        if credentials is None:
            bound_port = server.add_insecure_port(f"{host}:{port}")
        else:
            bound_port = server.add_secure_port(f"{host}:{port}", credentials)
    except RuntimeError:  # grpc reports a taken port this way
        bound_port = 0
    if bound_port == 0:
        raise OSError(f"could not bind {host}:{port} (address in use?)")
    return bound_port


async def wait_for_stop_signal() -> None:
    """Return once SIGINT or SIGTERM arrives; the caller then shuts down gracefully."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
