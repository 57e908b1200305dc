"""An independent load client: a cross-check of ``ledger-dev bench`` figures.

Shares no load or counting code with ``ledger-dev bench``: only the generated API stubs and
grpc.aio, about as small as a load generator can be, so a bug or a flattering choice in the
bench (how it counts, where it starts the clock) would show up as a disagreement between the
two. Only the channel is built by the shared client module (``ledger.cli.client``), so that
``--tls-ca`` and ``--token`` (or ``$LEDGER_TOKEN``) mean the same as for every other client.

    python -m ledger.tools.probe_load --target localhost:8000 --kind single --in-flight 64
    python -m ledger.tools.probe_load --kind batch --items 100 --in-flight 32
    python -m ledger.tools.probe_load --kind get --in-flight 64

It creates ``--accounts`` accounts (CreateAccounts) and funds them, runs ``--warmup`` seconds
unmeasured, then ``--seconds`` measured: ``--in-flight`` coroutines on one channel, each with
one call outstanding. Prints one JSON line: calls/s, items/s, p50/p99 ms, errors by code.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import pathlib
import random
import time
from typing import Any

import grpc

from ledger.cli.client import TOKEN_ENV, ClientSecurity, api_stub, open_aio_channel
from ledger.pb import ledger_api_pb2 as api

call_timeout_s = 10.0
funding = 10**15


async def _setup(stub: Any, accounts: int) -> list[str]:
    ids: list[str] = []
    for start in range(0, accounts, 1000):
        count = min(1000, accounts - start)
        reply = await stub.CreateAccounts(
            api.CreateAccountsRequest(accounts=[api.CreateAccountRequest() for _ in range(count)]),
            timeout=call_timeout_s,
        )
        ids.extend(result.account.id for result in reply.results)
        await stub.CreateTransactions(
            api.CreateTransactionsRequest(
                transactions=[
                    api.CreateTransactionRequest(
                        account_id=account_id, amount=funding, settled=True
                    )
                    for account_id in ids[start:]
                ]
            ),
            timeout=call_timeout_s,
        )
    return ids


async def _run(args: argparse.Namespace, security: ClientSecurity) -> dict[str, Any]:
    async with open_aio_channel(args.target, security) as channel:
        stub = api_stub(channel, security)
        accounts = await _setup(stub, args.accounts)
        rng = random.Random(7)
        latencies: list[float] = []
        errors: collections.Counter[str] = collections.Counter()
        items = 0
        measuring = False

        def purchase() -> api.CreateTransactionRequest:
            return api.CreateTransactionRequest(
                account_id=rng.choice(accounts), amount=-rng.randint(1, 9), settled=True
            )

        async def one_call() -> int:
            if args.kind == "single":
                await stub.CreateTransaction(purchase(), timeout=call_timeout_s)
                return 1
            if args.kind == "batch":
                reply = await stub.CreateTransactions(
                    api.CreateTransactionsRequest(
                        transactions=[purchase() for _ in range(args.items)]
                    ),
                    timeout=call_timeout_s,
                )
                return sum(1 for result in reply.results if result.status.code == 0)
            await stub.GetAccount(
                api.GetAccountRequest(account_id=rng.choice(accounts)), timeout=call_timeout_s
            )
            return 1

        async def worker(stop_at: float) -> None:
            nonlocal items
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                try:
                    done = await one_call()
                except grpc.aio.AioRpcError as error:
                    if measuring:
                        errors[error.code().name] += 1
                    continue
                if measuring:
                    latencies.append(time.perf_counter() - started)
                    items += done

        warm_until = time.perf_counter() + args.warmup
        await asyncio.gather(*(worker(warm_until) for _ in range(args.in_flight)))
        measuring = True
        started = time.perf_counter()
        await asyncio.gather(*(worker(started + args.seconds) for _ in range(args.in_flight)))
        elapsed = time.perf_counter() - started
    latencies.sort()

    def percentile_ms(fraction: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(fraction * len(latencies)))] * 1000, 1)

    return {
        "kind": args.kind,
        "in_flight": args.in_flight,
        "calls_per_s": round(len(latencies) / elapsed),
        "items_per_s": round(items / elapsed),
        "p50_ms": percentile_ms(0.5),
        "p99_ms": percentile_ms(0.99),
        "errors": dict(errors),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="localhost:8000")
    parser.add_argument("--kind", choices=["single", "batch", "get"], default="single")
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--items", type=int, default=100, help="items per batch call")
    parser.add_argument("--accounts", type=int, default=64)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--tls-ca",
        type=pathlib.Path,
        default=None,
        help="use TLS, verify the server against this PEM CA",
    )
    parser.add_argument(
        "--tls-cert",
        type=pathlib.Path,
        default=None,
        help="client certificate (PEM), for a server with --client-ca",
    )
    parser.add_argument(
        "--tls-key", type=pathlib.Path, default=None, help="the private key (PEM) of --tls-cert"
    )
    parser.add_argument(
        "--token",
        default=os.environ.get(TOKEN_ENV),
        help=f"bearer token sent on every call (default: ${TOKEN_ENV})",
    )
    args = parser.parse_args()
    if not (1 <= args.in_flight <= 10_000 and 1 <= args.items <= 1000 and args.accounts >= 1):
        parser.error("--in-flight 1..10000, --items 1..1000, --accounts >= 1")
    try:
        security = ClientSecurity.load(args.tls_ca, args.token, args.tls_cert, args.tls_key)
    except ValueError as error:
        parser.error(str(error))
    print(json.dumps(asyncio.run(_run(args, security))))


if __name__ == "__main__":
    main()
