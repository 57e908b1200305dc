"""When a failed node call may still have been applied (ledger.stubs.cluster).

Goal: the gateway answers UNAVAILABLE ("nothing was applied") only if no attempt can have
reached a node. A refused connection proves that; an UNAVAILABLE from a node that died while
it handled the call does not (it may have proposed the entry, and a new leader can commit it).
Method: real gRPC failures: a port nobody listens on, and a server process that SIGKILLs itself
inside the handler.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys

import grpc
import pytest

from ledger.stubs.cluster import _AttemptFailed, _rpc

call_timeout_s = 10.0

_DYING_SERVER = """
import os, signal, sys
from concurrent import futures
import grpc

def die(request, context):
    os.kill(os.getpid(), signal.SIGKILL)

server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
handlers = {"Die": grpc.unary_unary_rpc_method_handler(die)}
server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("test.Dying", handlers)])
port = server.add_insecure_port("127.0.0.1:0")
server.start()
print(port, flush=True)
server.wait_for_termination()
"""


async def _call(address: str, outcome_unknown: bool) -> _AttemptFailed:
    async with grpc.aio.insecure_channel(address) as channel:
        method = channel.unary_unary("/test.Dying/Die")
        with pytest.raises(_AttemptFailed) as failed:
            await _rpc(method, b"", timeout=call_timeout_s, outcome_unknown=outcome_unknown)
    return failed.value


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again when the block ends


def test_a_refused_connection_proves_nothing_was_sent() -> None:
    failure = asyncio.run(_call(f"127.0.0.1:{_closed_port()}", outcome_unknown=True))
    assert failure.outcome_unknown is False


def test_a_node_dying_inside_the_call_leaves_the_outcome_unknown() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", _DYING_SERVER], stdout=subprocess.PIPE, text=True
    ) as server:
        try:
            assert server.stdout is not None
            port = int(server.stdout.readline())
            failure = asyncio.run(_call(f"127.0.0.1:{port}", outcome_unknown=True))
            assert "UNAVAILABLE" in str(failure)  # the code alone cannot tell the two apart
            assert failure.outcome_unknown is True
            assert server.wait(timeout=call_timeout_s) == -9
        finally:
            server.kill()


def test_reads_are_never_unknown() -> None:
    """A read changes nothing, so its failures never taint the answer."""
    failure = asyncio.run(_call(f"127.0.0.1:{_closed_port()}", outcome_unknown=False))
    assert failure.outcome_unknown is False
