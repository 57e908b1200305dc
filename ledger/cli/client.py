"""The command-line side of reaching the public API: options, one-line errors, connected clients.

Channels (TLS, client certificates, the token) are built by the client library,
``ledger.client.channels``, for every client of ours; this module gives the ``ledger-dev``
commands, ``ledger-dev bench`` and ``python -m ledger.tools.probe_load`` their options and
turns failures into one-line ``click`` errors:

* ``--tls-ca FILE``: TLS, verifying the server's certificate against this PEM CA (the address's
  host must be in the certificate's names). Without it the channel is plaintext, exactly as
  the reference client: a server started without TLS and tokens works as before.
* ``--tls-cert FILE --tls-key FILE``: a client certificate, for a server started with
  ``--client-ca`` (mTLS).
* ``--token TOKEN`` or ``$LEDGER_TOKEN``: sent on every call as ``authorization: Bearer
  <token>`` (per-call metadata, see ``ledger.client.channels``).

``gateway_client`` opens a ``LedgerClient`` (retries, idempotency keys, typed errors) that is
known to be connected; load generators keep raw stubs (``api_stub``) to measure the server.
"""

from __future__ import annotations

import contextlib
import functools
import pathlib
from collections.abc import Callable, Iterator
from typing import Any

import click

from ledger.client import LedgerClient, LedgerError, RetryPolicy
from ledger.client.channels import (
    TOKEN_ENV,
    ClientSecurity,
    api_stub,
    open_aio_channel,
    open_channel,
)

__all__ = [
    "TOKEN_ENV",
    "ClientSecurity",
    "api_stub",
    "call_timeout_s",
    "cli_retry",
    "client_security_options",
    "gateway_client",
    "open_aio_channel",
    "open_channel",
    "unreachable_error",
]

call_timeout_s = 10.0  # one attempt of a command's call
connect_timeout_s = 5.0  # a gateway that does not connect within this is reported unreachable
cli_retry = RetryPolicy(attempt_timeout_s=call_timeout_s)


def unreachable_error(address: str, security: ClientSecurity | None) -> click.ClickException:
    if security is not None and security.tls:
        hint = (
            "gateway {} is not reachable over TLS (is it up, does it serve TLS, does "
            "--tls-ca sign its certificate for this host name?)"
        )
    else:
        hint = "gateway {} is not reachable (if it serves TLS, pass --tls-ca)"
    return click.ClickException(hint.format(address))


@contextlib.contextmanager
def gateway_client(
    address: str,
    security: ClientSecurity | None = None,
    retry: RetryPolicy = cli_retry,
) -> Iterator[LedgerClient]:
    """A ``LedgerClient`` known to be connected; an unreachable gateway, and any
    ``LedgerError`` the block raises, become a one-line ``click.ClickException``."""
    client = LedgerClient(address, security=security, retry=retry)
    try:
        try:
            client.wait_for_ready(connect_timeout_s)
        except LedgerError:
            raise unreachable_error(address, security) from None
        try:
            yield client
        except LedgerError as error:
            raise click.ClickException(f"{error.code.name}: {error.message}") from None
    finally:
        client.close()


def _path_option(name: str, help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        name, type=click.Path(dir_okay=False, path_type=pathlib.Path), default=None, help=help_text
    )


def client_security_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--tls-ca/--tls-cert/--tls-key/--token``, handed to the command as one ``security``
    argument (a ``ClientSecurity`` with its files read)."""

    @functools.wraps(command)
    def wrapper(
        *args: Any,
        tls_ca: pathlib.Path | None,
        tls_cert: pathlib.Path | None,
        tls_key: pathlib.Path | None,
        token: str | None,
        **kwargs: Any,
    ) -> Any:
        try:
            security = ClientSecurity.load(tls_ca, token, tls_cert, tls_key)
        except ValueError as error:
            raise click.ClickException(str(error)) from None
        return command(*args, security=security, **kwargs)

    options: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
        _path_option("--tls-ca", "Use TLS and verify the gateway against this PEM CA."),
        _path_option("--tls-cert", "Client certificate (PEM), for a gateway with --client-ca."),
        _path_option("--tls-key", "The private key (PEM) of --tls-cert."),
        click.option(
            "--token",
            envvar=TOKEN_ENV,
            default=None,
            show_envvar=True,
            help="Bearer token sent on every call (better from the environment than "
            "on the command line).",
        ),
    ]
    decorated: Callable[..., Any] = wrapper
    for option in reversed(options):
        decorated = option(decorated)
    return decorated
