"""``ledger-gateway``: the stateless public API in front of a cluster of ledger nodes."""

from __future__ import annotations

import pathlib

import click

from ledger.cli.logs import configure_logging
from ledger.cli.options import (
    host_option,
    log_level_option,
    metrics_port_option,
    port_option,
    server_security_options,
)
from ledger.config import ConfigError, load_config
from ledger.gateway.auth import ServerSecurity
from ledger.gateway.server import run_server

__all__ = ["main"]


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@port_option(8000, "gRPC port; 0 picks a free one (printed on the 'listening on' line).")
@host_option
@click.option(
    "--cluster-config",
    type=click.Path(dir_okay=False, path_type=pathlib.Path),
    default=pathlib.Path("cluster_config.json"),
    show_default=True,
)
@metrics_port_option
@server_security_options
@log_level_option
def main(
    port: int,
    host: str,
    cluster_config: pathlib.Path,
    metrics_port: int,
    log_level: str,
    security: ServerSecurity,
) -> None:
    """Route LedgerServiceApi calls to the shard leaders of a cluster."""
    from ledger.stubs.cluster import ClusterStub

    configure_logging(log_level)
    try:
        config = load_config(cluster_config)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    run_server(ClusterStub(config), host, port, "ledger-gateway", metrics_port, security)


if __name__ == "__main__":
    main()
