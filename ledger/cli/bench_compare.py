"""``ledger-dev bench-compare``: the same bench against standalone and cluster, side by side.

Starts ``ledger-standalone`` and then a 3-node cluster with its gateway (each on free ports in
a temporary directory, stopped afterwards), runs ``ledger-dev bench`` as a separate process
against each with identical options, and prints both figures and the cluster/standalone ratio.
Both runs share this machine with the bench client, as the README's results table says.
``--fsync both`` runs each server durable (the default) and with ``--unsafe-no-fsync``, so the
cost of durability is measured side by side too.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import tempfile
from typing import Any

import click

from ledger.cli.client import ClientSecurity
from ledger.tools.processes import ClusterService, StandaloneService, wait_until

__all__ = ["bench_compare_command", "bench_summary", "run_bench_process", "wait_balanced"]

bench_timeout_margin_s = 120.0
leaders_balanced_timeout_s = 30.0


def run_bench_process(
    address: str, options: list[str], duration_s: float, security: ClientSecurity | None = None
) -> dict[str, Any]:
    """``ledger-dev bench --json`` in its own process (its event loop and CPU are not ours).

    ``duration_s`` is warmup + measured time; setup and drain get ``bench_timeout_margin_s``.
    ``security``: the child's TLS options, and its token through the environment.
    """
    security = security or ClientSecurity()
    command = [
        sys.executable,
        "-m",
        "ledger.cli.dev",
        "bench",
        "--gateway",
        address,
        "--json",
        *security.child_args(),
        *options,
    ]
    completed = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=security.child_env(),
        timeout=duration_s + bench_timeout_margin_s,
        check=False,
    )
    if completed.returncode != 0:
        raise click.ClickException(f"bench failed: {completed.stderr.strip().splitlines()[-1:]}")
    result: dict[str, Any] = json.loads(completed.stdout)
    return result


def wait_balanced(cluster: ClusterService) -> None:
    """Leaders on their preferred nodes (5/5/6), as in a long-running cluster."""
    preferred = {
        shard.index: [node.node_id for node in cluster.config.nodes].index(shard.preferred_leader)
        for shard in cluster.config.shards
    }
    try:
        wait_until(
            lambda: cluster.leaders() == preferred,
            leaders_balanced_timeout_s,
            interval_s=0.5,
            what="balanced leaders",
        )
    except TimeoutError:
        click.echo("warning: leaders are not balanced; measuring anyway", err=True)


def bench_summary(result: dict[str, Any]) -> dict[str, float]:
    """The figures we compare from a bench document: rates, p50/p99 and failed calls/items."""
    total = result["total"]
    return {
        "ops_per_s": total["ops_per_s"],
        "items_per_s": total.get("items_per_s", total["ops_per_s"]),
        "p50_ms": total["p50_ms"],
        "p99_ms": total["p99_ms"],
        "errors": sum(result.get("errors", {}).values()),
        "item_errors": sum(result.get("item_errors", {}).values()),
    }


@click.command("bench-compare")
@click.option("--concurrency", type=click.IntRange(1, 10_000), default=64, show_default=True)
@click.option("--duration", type=click.FloatRange(1, 3600), default=10.0, show_default=True)
@click.option("--warmup", type=click.FloatRange(0, 600), default=2.0, show_default=True)
@click.option("--accounts", type=click.IntRange(1, 1_000_000), default=64, show_default=True)
@click.option("--mix", default="create_settled=100", show_default=True)
@click.option("--batch", type=click.IntRange(0, 1000), default=0, show_default=True)
@click.option(
    "--rate",
    type=click.FloatRange(0, 1_000_000),
    default=0.0,
    show_default=True,
    help="Offered calls/s (open loop); 0 = closed loop.",
)
@click.option(
    "--fsync",
    "fsync_modes",
    type=click.Choice(["on", "off", "both"]),
    default="on",
    show_default=True,
    help="on: durable servers (the default); off: --unsafe-no-fsync; both: each way.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def bench_compare_command(
    concurrency: int,
    duration: float,
    warmup: float,
    accounts: int,
    mix: str,
    batch: int,
    rate: float,
    fsync_modes: str,
    as_json: bool,
) -> None:
    """Run the same bench against standalone and cluster; print both and the ratio."""
    options = [
        "--concurrency",
        str(concurrency),
        "--duration",
        str(duration),
        "--warmup",
        str(warmup),
        "--accounts",
        str(accounts),
        "--mix",
        mix,
        "--batch",
        str(batch),
        "--rate",
        str(rate),
    ]
    fsyncs = {"on": [True], "off": [False], "both": [True, False]}[fsync_modes]
    figures: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="ledger-bench-") as root:
        for fsync in fsyncs:
            for kind in ("standalone", "cluster"):
                name = kind if fsync else f"{kind}-nofsync"
                figures[name] = _bench_one(
                    pathlib.Path(root) / name, kind, fsync, options, duration + warmup
                )
    key = "items_per_s" if batch else "ops_per_s"
    ratios = {
        "cluster / standalone": _ratio(figures, "cluster", "standalone", key),
        "cluster-nofsync / standalone-nofsync": _ratio(
            figures, "cluster-nofsync", "standalone-nofsync", key
        ),
        "cluster / cluster-nofsync": _ratio(figures, "cluster", "cluster-nofsync", key),
        "standalone / standalone-nofsync": _ratio(figures, "standalone", "standalone-nofsync", key),
    }
    ratios = {name: value for name, value in ratios.items() if value is not None}
    if as_json:
        ratio = ratios.get(
            "cluster / standalone", ratios.get("cluster-nofsync / standalone-nofsync")
        )
        click.echo(json.dumps({"options": options, **figures, "ratio": ratio, "ratios": ratios}))
        return
    click.echo(f"options: {' '.join(options)}")
    click.echo(f"{'':20} {key:>12} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for name, figure in figures.items():
        click.echo(
            f"{name:20} {figure[key]:12.0f} {figure['p50_ms']:8.1f} "
            f"{figure['p99_ms']:8.1f} {figure['errors']:7.0f}"
        )
    for name, value in ratios.items():
        click.echo(f"{name} = {value:.2f}")


def _bench_one(
    directory: pathlib.Path, kind: str, fsync: bool, options: list[str], duration_s: float
) -> dict[str, float]:
    directory.mkdir()
    server_args = [] if fsync else ["--unsafe-no-fsync"]
    service = (
        StandaloneService(directory, server_args=server_args)
        if kind == "standalone"
        else ClusterService(directory, node_args=server_args)
    )
    click.echo(f"starting {directory.name} ...", err=True)
    try:
        service.start()
        if isinstance(service, ClusterService):
            wait_balanced(service)
        click.echo(f"benching {directory.name} ...", err=True)
        return bench_summary(run_bench_process(service.address, options, duration_s))
    finally:
        service.stop()


def _ratio(figures: dict[str, dict[str, float]], over: str, under: str, key: str) -> float | None:
    if over not in figures or under not in figures:
        return None
    return figures[over][key] / figures[under][key]
