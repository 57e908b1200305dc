"""``ledger-node``: one cluster node hosting its replicas of the 16 shard Raft groups."""

from __future__ import annotations

import asyncio
import pathlib
import sys

import click

from ledger.cli.logs import configure_logging
from ledger.cli.options import (
    log_level_option,
    port_option,
    unsafe_no_fsync_option,
)
from ledger.config import ConfigError, load_config
from ledger.replication.raft_group import log_compaction_entries
from ledger.serving import is_loopback

__all__ = ["main"]


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--node-id", required=True, help="This node's id in the cluster config.")
@port_option(None, "Node API port (default: the port of this node's address in the config).")
@click.option(
    "--host",
    default=None,
    help="Address to bind the node API to (default: the host of this node's address "
    "in the config; its Raft ports always bind to its raftHost).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=pathlib.Path),
    required=True,
    help="Directory for this node's shard stores and Raft files.",
)
@click.option(
    "--cluster-config",
    type=click.Path(dir_okay=False, path_type=pathlib.Path),
    default=pathlib.Path("cluster_config.json"),
    show_default=True,
)
@click.option(
    "--compaction-entries",
    type=click.IntRange(10, 10_000_000),
    default=log_compaction_entries,
    show_default=True,
    help="Raft log entries kept before a snapshot truncates the log.",
)
@unsafe_no_fsync_option
@click.option(
    "--insecure-dev-credentials",
    is_flag=True,
    default=False,
    help="Serve a non-loopback address with the committed development secret and "
    "certificates (anyone with the repository could join or call the cluster).",
)
@log_level_option
def main(
    node_id: str,
    port: int | None,
    host: str | None,
    data_dir: pathlib.Path,
    cluster_config: pathlib.Path,
    compaction_entries: int,
    unsafe_no_fsync: bool,
    insecure_dev_credentials: bool,
    log_level: str,
) -> None:
    """Serve this node's shard replicas."""
    from ledger.node.process import run_node

    configure_logging(log_level)
    try:
        config = load_config(cluster_config)
        node = config.node(node_id)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    host = node.grpc_host if host is None else host
    exposed = [address for address in (host, node.raft_host) if not is_loopback(address)]
    if config.uses_development_secret and exposed and not insecure_dev_credentials:
        raise click.ClickException(
            f"refusing to serve {', '.join(exposed)} with the committed development secret and "
            "certificates: generate your own with `ledger-dev gen-config` (or pass "
            "--insecure-dev-credentials)"
        )
    if unsafe_no_fsync:
        click.echo(
            f"ledger-node {node_id}: --unsafe-no-fsync: acknowledged writes can be lost "
            "on power loss (benchmarks only)",
            err=True,
        )
    try:
        asyncio.run(
            run_node(
                config,
                node_id,
                host,
                node.grpc_port if port is None else port,
                data_dir,
                compaction_entries,
                fsync=not unsafe_no_fsync,
            )
        )
    except OSError as error:
        print(f"ledger-node: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
