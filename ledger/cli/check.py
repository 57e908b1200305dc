"""``ledger-dev check``: audit a running cluster through every node's status API.

Checks, per shard: exactly one leader that has quorum, every replica reachable, and the same
applied index and data digest on all replicas. Replicas may differ for a moment while writes
are in flight, so a mismatch is re-checked up to ``check_attempts_max`` times before it counts.
Exit code 0 when everything holds, 1 otherwise, with one line per problem.
"""

from __future__ import annotations

import pathlib
import time

import click
import grpc

from ledger.config import ClusterConfig, ConfigError, load_config
from ledger.node.status_audit import digests_agree, quorum_leaders
from ledger.pb import ledger_node_pb2 as node_pb
from ledger.pb import ledger_node_pb2_grpc

__all__ = ["check_command", "cluster_problems"]

status_timeout_s = 30.0  # digests hash every key of every shard
check_attempts_max = 3
check_retry_pause_s = 1.0


def _statuses(config: ClusterConfig) -> dict[str, node_pb.StatusResponse | None]:
    statuses: dict[str, node_pb.StatusResponse | None] = {}
    for node in config.nodes:
        with config.node_channel(node.address) as channel:
            stub = ledger_node_pb2_grpc.LedgerNodeStub(channel)
            try:
                statuses[node.node_id] = stub.Status(
                    node_pb.StatusRequest(include_digest=True), timeout=status_timeout_s
                )
            except grpc.RpcError:
                statuses[node.node_id] = None
    return statuses


def cluster_problems(
    config: ClusterConfig, statuses: dict[str, node_pb.StatusResponse | None]
) -> list[str]:
    problems = [f"node {node_id} is unreachable" for node_id, s in statuses.items() if s is None]
    for shard in config.shards:
        replicas: list[node_pb.ShardStatus] = []
        for node_id in shard.replica_node_ids:
            status = statuses.get(node_id)
            if status is not None:
                replicas.extend(s for s in status.shards if s.shard == shard.index)
        leaders = quorum_leaders(replicas)
        if len(leaders) != 1:
            problems.append(f"shard {shard.index} has {len(leaders)} leaders with quorum")
        samples = [(s.store_applied_index, s.digest) for s in replicas]
        if len({index for index, _ in samples}) > 1 or digests_agree(samples) is False:
            problems.append(f"shard {shard.index} replicas differ (applied index or digest)")
    return problems


def _print_table(config: ClusterConfig, statuses: dict[str, node_pb.StatusResponse | None]) -> None:
    header = "shard " + " ".join(f"{node.node_id:>28}" for node in config.nodes)
    click.echo(header)
    for shard in config.shards:
        cells = []
        for node in config.nodes:
            status = statuses.get(node.node_id)
            found = [s for s in status.shards if s.shard == shard.index] if status else []
            if not found:
                cells.append(f"{'-':>28}")
                continue
            s = found[0]
            cells.append(f"{s.role[:6]:>6} t{s.term:<4} i{s.store_applied_index:<8} {s.digest[:6]}")
        click.echo(f"{shard.index:>5} " + " ".join(cells))


@click.command("check")
@click.option(
    "--cluster-config",
    type=click.Path(dir_okay=False, path_type=pathlib.Path),
    default=pathlib.Path("cluster_config.json"),
    show_default=True,
)
@click.option("--quiet", is_flag=True, help="Print problems only, no table.")
def check_command(cluster_config: pathlib.Path, quiet: bool) -> None:
    """Check leaders, quorum and replica convergence of every shard."""
    try:
        config = load_config(cluster_config)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    for attempt in range(check_attempts_max):
        statuses = _statuses(config)
        problems = cluster_problems(config, statuses)
        if not problems or attempt == check_attempts_max - 1:
            break
        time.sleep(check_retry_pause_s)
    if not quiet:
        _print_table(config, statuses)
    for problem in problems:
        click.echo(f"problem: {problem}", err=True)
    if problems:
        raise click.ClickException(f"{len(problems)} problem(s) found")
    click.echo(f"ok: {len(config.shards)} shards, each with one leader and identical replicas")
