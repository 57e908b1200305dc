"""10,000 calls at once from one client: every call is answered OK or RESOURCE_EXHAUSTED, the
server's memory stays bounded, and it keeps serving.

Goal: the public server's bounds (``ledger.limits``: HTTP/2 streams per connection, calls waiting
in gRPC core, calls in handlers; ``SERVER_OPTIONS`` and ``serve`` in ``ledger.gateway.server``)
turn a flood into answers a client can act on. Without them gRPC cancels most of such a flood
(CANCELLED) or refuses streams (UNAVAILABLE).

Method: the module-scoped ``service`` fixture (standalone, and a cluster's gateway). One grpc.aio
client opens one channel, then four, each on its own connection (local subchannel pools), and
starts 10,000 calls at once over them: settled top-ups of 1 to a few fresh accounts and
GetAccount reads, alternating, each with a deadline long enough for the calls that wait in the
client's own queue (a connection carries at most ``grpc_streams_per_connection_max``). Checks:
every answer is OK or RESOURCE_EXHAUSTED; every process is alive; the server's peak RSS
(``VmHWM`` in /proc/PID/status) is less than ``RSS_GROWTH_MAX`` above its RSS before; each
account's balance equals the number of its top-ups answered OK (a refused call applied nothing,
an accepted one once); a new call is answered afterwards. Nothing about time is asserted. Run
with ``-s`` to see the counts and the RSS figures.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

import grpc
import pytest

from ledger import limits
from ledger.pb import ledger_api_pb2 as api
from ledger.pb import ledger_api_pb2_grpc

CALLS = 10_000
CONNECTIONS = (1, 4)  # one connection, and "a few" (4 x 256 open calls at most)
ACCOUNTS = 16
CALL_TIMEOUT_S = 120.0  # most of it is spent queued in the client, not the server
RSS_GROWTH_MAX = 500 * 1024 * 1024  # bytes; generous: measured +20 to +40 MiB
Code = grpc.StatusCode


def server_pid(service: Any) -> int:
    process = getattr(service, "process", None) or service.gateway  # standalone or gateway
    assert process.pid is not None
    return int(process.pid)


def memory_bytes(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak since start) of a process, in bytes."""
    found = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                found[name] = int(value.split()[0]) * 1024  # kB
    return found


def processes(service: Any) -> list[Any]:
    found = [
        p
        for p in (getattr(service, "process", None), getattr(service, "gateway", None))
        if p is not None
    ]
    return found + list(getattr(service, "nodes", ()))


async def flood(
    address: str, connections: int
) -> tuple[collections.Counter[str], dict[str, int], list[str]]:
    """Start CALLS calls at once; (status counts, OK top-ups per account, account ids)."""
    options = [("grpc.use_local_subchannel_pool", 1)]  # one connection per channel
    channels = [grpc.aio.insecure_channel(address, options=options) for _ in range(connections)]
    try:
        stubs = [ledger_api_pb2_grpc.LedgerServiceApiStub(channel) for channel in channels]
        accounts = [
            (await stubs[0].CreateAccount(api.CreateAccountRequest(), timeout=30)).account.id
            for _ in range(ACCOUNTS)
        ]
        for channel in channels:
            await asyncio.wait_for(channel.channel_ready(), 30)
        codes: collections.Counter[str] = collections.Counter()
        credited: dict[str, int] = dict.fromkeys(accounts, 0)

        async def one(n: int) -> None:
            stub = stubs[n % connections]
            account_id = accounts[(n // 2) % ACCOUNTS]
            try:
                if n % 2:
                    await stub.GetAccount(
                        api.GetAccountRequest(account_id=account_id), timeout=CALL_TIMEOUT_S
                    )
                else:
                    await stub.CreateTransaction(
                        api.CreateTransactionRequest(
                            account_id=account_id, amount=1, settled=True, description=f"flood {n}"
                        ),
                        timeout=CALL_TIMEOUT_S,
                    )
                    credited[account_id] += 1
                codes["OK"] += 1
            except grpc.aio.AioRpcError as error:
                codes[f"{error.code().name}: {error.details()}"] += 1

        await asyncio.gather(*(one(n) for n in range(CALLS)))
        return codes, credited, accounts
    finally:
        for channel in channels:
            await channel.close()


@pytest.mark.parametrize("connections", CONNECTIONS)
def test_ten_thousand_calls_at_once(service: Any, connections: int) -> None:
    pid = server_pid(service)
    before = memory_bytes(pid)
    codes, credited, accounts = asyncio.run(flood(service.address, connections))
    after = memory_bytes(pid)
    mib = 1024 * 1024
    print(
        f"\n{service.kind}: {CALLS} calls over {connections} connections: {dict(codes)}; "
        f"server RSS {before['VmRSS'] // mib} MiB before, peak {after['VmHWM'] // mib} MiB, "
        f"{after['VmRSS'] // mib} MiB after"
    )

    dead = [p.name for p in processes(service) if not p.alive()]
    assert not dead, f"{dead} died under the flood"
    unexpected = {
        k: n
        for k, n in codes.items()
        if k != "OK" and not k.startswith(f"{Code.RESOURCE_EXHAUSTED.name}:")
    }
    assert not unexpected, f"answers other than OK or RESOURCE_EXHAUSTED: {unexpected}"
    assert sum(codes.values()) == CALLS
    assert codes["OK"] > 0
    assert after["VmHWM"] - before["VmRSS"] < RSS_GROWTH_MAX, (before, after)

    # Still serving, and every answer told the truth: balances are the OK top-ups exactly.
    with grpc.insecure_channel(service.address) as channel:
        stub = ledger_api_pb2_grpc.LedgerServiceApiStub(channel)
        for account_id in accounts:
            account = stub.GetAccount(
                api.GetAccountRequest(account_id=account_id), timeout=30
            ).account
            assert account.settled_balance == account.available_balance == credited[account_id]


def test_limits_are_consistent() -> None:
    """The flood above relies on these relations (see ledger/limits.py)."""
    most_open = max(CONNECTIONS) * limits.grpc_streams_per_connection_max
    assert most_open <= limits.grpc_pending_calls_max
