"""Click options shared by the server commands, so their flags read and behave the same."""

from __future__ import annotations

import functools
import pathlib
from collections.abc import Callable
from typing import Any

import click

__all__ = [
    "host_option",
    "log_level_option",
    "metrics_port_option",
    "port_option",
    "server_security_options",
    "unsafe_no_fsync_option",
]

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def port_option(default: int | None, help_text: str) -> Decorator:
    return click.option(
        "--port",
        type=click.IntRange(0, 65535),
        default=default,
        show_default=default is not None,
        help=help_text,
    )


host_option: Decorator = click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind; the default is loopback (this machine only), 0.0.0.0 is every "
    "interface.",
)
metrics_port_option: Decorator = click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="Serve Prometheus metrics on this port (0: off).",
)
log_level_option: Decorator = click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
unsafe_no_fsync_option: Decorator = click.option(
    "--unsafe-no-fsync",
    is_flag=True,
    default=False,
    help="BENCHMARKS ONLY: acknowledge writes before they are on stable storage. A process "
    "crash still loses nothing; a power loss or kernel crash can lose acknowledged writes.",
)


def _file_option(name: str, help_text: str) -> Decorator:
    return click.option(
        name, type=click.Path(dir_okay=False, path_type=pathlib.Path), default=None, help=help_text
    )


def server_security_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--tls-cert/--tls-key/--client-ca/--tokens-file``, handed to the command as one
    ``security`` argument (a ``ledger.gateway.auth.ServerSecurity``, files read and checked)."""

    @functools.wraps(command)
    def wrapper(
        *args: Any,
        tls_cert: pathlib.Path | None,
        tls_key: pathlib.Path | None,
        client_ca: pathlib.Path | None,
        tokens_file: pathlib.Path | None,
        **kwargs: Any,
    ) -> Any:
        from ledger.gateway.auth import load_server_security

        try:
            security = load_server_security(tls_cert, tls_key, client_ca, tokens_file)
        except ValueError as error:
            raise click.ClickException(str(error)) from None
        return command(*args, security=security, **kwargs)

    decorated: Callable[..., Any] = wrapper
    for option in reversed(
        [
            _file_option(
                "--tls-cert", "Serve TLS with this PEM certificate (chain); needs --tls-key."
            ),
            _file_option("--tls-key", "The PEM private key of --tls-cert (unencrypted)."),
            _file_option(
                "--client-ca", "Require client certificates signed by this PEM CA (mTLS)."
            ),
            _file_option(
                "--tokens-file",
                "Require bearer tokens: lines 'sha256:<hex> <scope> <name>' "
                "(ledger-dev gen-token); read at start.",
            ),
        ]
    ):
        decorated = option(decorated)
    return decorated
