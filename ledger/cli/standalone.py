"""``ledger-standalone``: the public API over all 16 shard cores in one process, no Raft."""

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
    unsafe_no_fsync_option,
)
from ledger.gateway.auth import ServerSecurity
from ledger.gateway.server import run_server

__all__ = ["main"]


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@port_option(8000, "gRPC port; 0 picks a free one (printed on the 'listening on' line).")
@host_option
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=pathlib.Path),
    required=True,
    help="Directory for the 16 shard LevelDBs (created if missing).",
)
@metrics_port_option
@unsafe_no_fsync_option
@server_security_options
@log_level_option
def main(
    port: int,
    host: str,
    data_dir: pathlib.Path,
    metrics_port: int,
    unsafe_no_fsync: bool,
    log_level: str,
    security: ServerSecurity,
) -> None:
    """Serve LedgerServiceApi from one process over LevelDB."""
    from ledger.stubs.standalone import StandaloneStub

    configure_logging(log_level)
    try:
        stub = StandaloneStub(data_dir, fsync=not unsafe_no_fsync)
    except Exception as error:  # noqa: BLE001 - e.g. the DB is locked by another process
        raise click.ClickException(f"cannot open data dir {data_dir}: {error}") from None
    if unsafe_no_fsync:
        click.echo(
            "ledger-standalone: --unsafe-no-fsync: acknowledged writes can be lost on "
            "power loss (benchmarks only)",
            err=True,
        )
    run_server(stub, host, port, "ledger-standalone", metrics_port, security)


if __name__ == "__main__":
    main()
