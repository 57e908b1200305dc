"""The ``ledger-dev bench`` click command: options, validation, run, print."""

from __future__ import annotations

import asyncio
import json

import click

from ledger.cli.bench.config import (
    GATEWAY_DEFAULT,
    MIX_DEFAULT,
    OP_KINDS,
    BenchConfig,
    accounts_max,
    batch_max,
    channels_max,
    concurrency_max,
    duration_max_s,
    parse_mix,
    rate_max,
)
from ledger.cli.bench.report import format_table
from ledger.cli.bench.runner import run_bench
from ledger.cli.client import ClientSecurity, client_security_options

__all__ = ["bench_command"]


def _mix_option(_ctx: click.Context, _param: click.Parameter, value: str) -> dict[str, int]:
    try:
        return parse_mix(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


@click.command("bench", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--gateway", default=GATEWAY_DEFAULT, show_default=True)
@click.option(
    "--concurrency",
    type=click.IntRange(1, concurrency_max),
    default=64,
    show_default=True,
    help="Calls in flight.",
)
@click.option(
    "--duration",
    type=click.FloatRange(0, duration_max_s, min_open=True),
    default=10.0,
    show_default=True,
    help="Measured seconds.",
)
@click.option(
    "--warmup",
    type=click.FloatRange(0, duration_max_s),
    default=2.0,
    show_default=True,
    help="Seconds of load before measuring (not recorded).",
)
@click.option(
    "--accounts",
    type=click.IntRange(1, accounts_max),
    default=64,
    show_default=True,
    help="Accounts created and seeded at start.",
)
@click.option(
    "--mix",
    default=MIX_DEFAULT,
    show_default=True,
    callback=_mix_option,
    help=f"Weights, name=int comma list; names: {', '.join(OP_KINDS)}.",
)
@click.option(
    "--channels",
    type=click.IntRange(1, channels_max),
    default=1,
    show_default=True,
    help="grpc.aio channels (connections); calls go round-robin.",
)
@click.option(
    "--batch",
    type=click.IntRange(0, batch_max),
    default=0,
    show_default=True,
    help="Purchases per CreateTransactions call for the create ops; 0 = single "
    "CreateTransaction calls.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the table.")
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the op choice RNG.")
@click.option(
    "--rate",
    type=click.FloatRange(0, rate_max),
    default=0.0,
    show_default=True,
    help="Offered calls/s (open loop, latency from the scheduled start); 0 = closed loop.",
)
@client_security_options
def bench_command(
    gateway: str,
    concurrency: int,
    duration: float,
    warmup: float,
    accounts: int,
    mix: dict[str, int],
    channels: int,
    batch: int,
    as_json: bool,
    seed: int,
    rate: float,
    security: ClientSecurity,
) -> None:
    """Load the gateway with a mix of calls and print throughput and latency percentiles."""
    if mix.get("transfer", 0) > 0 and accounts < 2:
        raise click.BadParameter(
            "a mix with transfer needs 2 accounts or more", param_hint="--accounts"
        )
    config = BenchConfig(
        gateway=gateway,
        concurrency=concurrency,
        duration_s=duration,
        warmup_s=warmup,
        accounts=accounts,
        mix=mix,
        channels=channels,
        batch=batch,
        seed=seed,
        rate=rate,
        tls=security.tls,
        token=security.token is not None,
    )
    result = asyncio.run(run_bench(config, security))
    document = result.as_json()
    if as_json:
        click.echo(json.dumps(document))
    else:
        click.echo(format_table(document))
