"""How every client of ours reaches the public API: channels, TLS, tokens, one-line errors.

``ledger-dev`` commands, ``ledger-dev bench`` and ``python -m ledger.tools.probe_load`` build
their channels here, so they all speak to a server the same way:

* ``--tls-ca FILE``: TLS, verifying the server's certificate against this PEM CA (the address's
  host must be in the certificate's names). Without it the channel is plaintext, exactly as
  the reference client: a server started without TLS and tokens works as before.
* ``--tls-cert FILE --tls-key FILE``: a client certificate, for a server started with
  ``--client-ca`` (mTLS).
* ``--token TOKEN`` or ``$LEDGER_TOKEN``: sent on every call as ``authorization: Bearer
  <token>``. It is bound to the stub's calls as per-call metadata (``api_stub``), not through
  gRPC call credentials: no interceptor or plugin thread per call, and the same path with or
  without TLS.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import pathlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import click
import grpc
import grpc.aio

from ledger.pb import ledger_api_pb2_grpc

__all__ = [
    "TOKEN_ENV",
    "ClientSecurity",
    "api_stub",
    "call_timeout_s",
    "client_security_options",
    "gateway_stub",
    "open_aio_channel",
    "open_channel",
    "rpc_errors_as_click",
    "unreachable_error",
]

TOKEN_ENV = "LEDGER_TOKEN"
call_timeout_s = 10.0
connect_timeout_s = 5.0


def _read(path: pathlib.Path | None, flag: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as error:
        raise ValueError(f"{flag} {path}: {error.strerror or error}") from None


@dataclasses.dataclass(frozen=True)
class ClientSecurity:
    """TLS and token settings of a client; the default is plaintext without a token."""

    tls_ca: pathlib.Path | None = None
    token: str | None = dataclasses.field(default=None, repr=False)
    tls_cert: pathlib.Path | None = None
    tls_key: pathlib.Path | None = None
    _pem: tuple[bytes | None, bytes | None, bytes | None] = dataclasses.field(
        default=(None, None, None), repr=False, compare=False
    )

    @classmethod
    def load(
        cls,
        tls_ca: pathlib.Path | None = None,
        token: str | None = None,
        tls_cert: pathlib.Path | None = None,
        tls_key: pathlib.Path | None = None,
    ) -> ClientSecurity:
        """Read the PEM files now; ValueError with a one-line reason."""
        if (tls_cert is None) != (tls_key is None):
            raise ValueError("--tls-cert and --tls-key go together")
        if tls_cert is not None and tls_ca is None:
            raise ValueError(
                "a client certificate (--tls-cert) needs --tls-ca: it is only sent over TLS"
            )
        token = token.strip() if token else None
        pem = (
            _read(tls_ca, "--tls-ca"),
            _read(tls_cert, "--tls-cert"),
            _read(tls_key, "--tls-key"),
        )
        return cls(tls_ca, token or None, tls_cert, tls_key, pem)

    @property
    def tls(self) -> bool:
        return self.tls_ca is not None

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return () if self.token is None else (("authorization", f"Bearer {self.token}"),)

    def credentials(self) -> grpc.ChannelCredentials | None:
        if not self.tls:
            return None
        ca, cert, key = self._pem
        if ca is None:  # built directly rather than through load()
            ca, cert, key = (
                _read(self.tls_ca, "--tls-ca"),
                _read(self.tls_cert, "--tls-cert"),
                _read(self.tls_key, "--tls-key"),
            )
        return grpc.ssl_channel_credentials(
            root_certificates=ca, private_key=key, certificate_chain=cert
        )

    def child_args(self) -> list[str]:
        """Options that give a child ``ledger-dev`` process the same TLS (the token goes
        through ``child_env``, never on a command line other users can read)."""
        args: list[str] = []
        for flag, path in (
            ("--tls-ca", self.tls_ca),
            ("--tls-cert", self.tls_cert),
            ("--tls-key", self.tls_key),
        ):
            if path is not None:
                args += [flag, str(path)]
        return args

    def child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop(TOKEN_ENV, None)
        if self.token is not None:
            env[TOKEN_ENV] = self.token
        return env


def open_channel(
    target: str, security: ClientSecurity | None = None, options: Sequence[tuple[str, Any]] = ()
) -> grpc.Channel:
    credentials = (security or ClientSecurity()).credentials()
    if credentials is None:
        return grpc.insecure_channel(target, options=list(options))
    return grpc.secure_channel(target, credentials, options=list(options))


def open_aio_channel(
    target: str, security: ClientSecurity | None = None, options: Sequence[tuple[str, Any]] = ()
) -> grpc.aio.Channel:
    credentials = (security or ClientSecurity()).credentials()
    if credentials is None:
        return grpc.aio.insecure_channel(target, options=list(options))
    return grpc.aio.secure_channel(target, credentials, options=list(options))


class _WithMetadata:
    """A stub method that adds the token's metadata to every call (sync or aio)."""

    __slots__ = ("_call", "_metadata")

    def __init__(self, call: Any, metadata: tuple[tuple[str, str], ...]) -> None:
        self._call = call
        self._metadata = metadata

    def _merged(self, metadata: Sequence[tuple[str, str]] | None) -> tuple[tuple[str, str], ...]:
        return self._metadata if not metadata else (*self._metadata, *metadata)

    def __call__(self, request: Any, *, metadata: Any = None, **kwargs: Any) -> Any:
        return self._call(request, metadata=self._merged(metadata), **kwargs)

    def future(self, request: Any, *, metadata: Any = None, **kwargs: Any) -> Any:
        return self._call.future(request, metadata=self._merged(metadata), **kwargs)

    def with_call(self, request: Any, *, metadata: Any = None, **kwargs: Any) -> Any:
        return self._call.with_call(request, metadata=self._merged(metadata), **kwargs)


def api_stub(
    channel: grpc.Channel | grpc.aio.Channel, security: ClientSecurity | None = None
) -> ledger_api_pb2_grpc.LedgerServiceApiStub:
    """A LedgerServiceApi stub whose calls carry the token, if there is one."""
    stub = ledger_api_pb2_grpc.LedgerServiceApiStub(channel)
    metadata = (security or ClientSecurity()).metadata
    if metadata:
        for name, call in list(vars(stub).items()):
            setattr(stub, name, _WithMetadata(call, metadata))
    return stub


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
def gateway_stub(
    address: str,
    security: ClientSecurity | None = None,
) -> Iterator[ledger_api_pb2_grpc.LedgerServiceApiStub]:
    """A stub on a channel that is known to be connected, or a one-line ClickException."""
    channel = open_channel(address, security)
    try:
        try:
            grpc.channel_ready_future(channel).result(timeout=connect_timeout_s)
        except grpc.FutureTimeoutError:
            raise unreachable_error(address, security) from None
        with rpc_errors_as_click():
            yield api_stub(channel, security)
    finally:
        channel.close()


@contextlib.contextmanager
def rpc_errors_as_click() -> Iterator[None]:
    try:
        yield
    except grpc.RpcError as error:
        code = error.code().name if hasattr(error, "code") else "UNKNOWN"
        details = error.details() if hasattr(error, "details") else str(error)
        raise click.ClickException(f"{code}: {details}") from None


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
