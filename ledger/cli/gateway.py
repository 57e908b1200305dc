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
@click.option(
    "--http-port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="Serve the operators' status page (/ and /status.json: nodes, shard leaders, lag, "
    "digests, call rates) over plain HTTP on this port (0: off). It has NO AUTHENTICATION "
    "and shows cluster internals.",
)
@click.option(
    "--http-host",
    default="127.0.0.1",
    show_default=True,
    help="Address the status page binds: loopback by default (this machine only), whatever "
    "--host is; anyone who can reach it can read the page.",
)
@server_security_options
@log_level_option
def main(
    port: int,
    host: str,
    cluster_config: pathlib.Path,
    metrics_port: int,
    http_port: int,
    http_host: str,
    log_level: str,
    security: ServerSecurity,
) -> None:
    """Route LedgerServiceApi calls to the shard leaders of a cluster."""
    from ledger.gateway.cluster_status import StatusPoller
    from ledger.gateway.status_page import StatusPage
    from ledger.stubs.cluster import ClusterStub

    configure_logging(log_level)
    try:
        config = load_config(cluster_config)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    page = StatusPage(StatusPoller(config), http_host, http_port) if http_port else None
    run_server(ClusterStub(config), host, port, "ledger-gateway", metrics_port, security, page)


if __name__ == "__main__":
    main()
