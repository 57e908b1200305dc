"""The one place that builds channels to the public API: TLS, client certificates, tokens.

Every client of the API builds its channel here: ``LedgerClient`` and ``AsyncLedgerClient``,
the ``ledger-dev`` commands, ``ledger-dev bench`` and ``python -m ledger.tools.probe_load``
(their command-line options, ``--tls-ca/--tls-cert/--tls-key/--token``, are in
``ledger.cli.client`` and produce a ``ClientSecurity``):

* ``tls_ca``: TLS, verifying the server's certificate against this PEM CA (the target's host
  must be in the certificate's names). Without it the channel is plaintext, exactly as the
  reference client: a server started without TLS and tokens works as before.
* ``tls_cert`` + ``tls_key``: a client certificate, for a server started with ``--client-ca``
  (mTLS). ``ClientSecurity.from_pem`` takes the same three as PEM bytes instead of files.
* ``token``: sent on every call as ``authorization: Bearer <token>``, as per-call metadata, not
  through gRPC call credentials: no plugin thread per call, and the same path with or without
  TLS. The library never reads ``$LEDGER_TOKEN`` by itself; the command-line tools do.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from collections.abc import Sequence
from typing import Any

import grpc
import grpc.aio

from ledger.pb import ledger_api_pb2_grpc

__all__ = [
    "CHANNEL_OPTIONS",
    "TOKEN_ENV",
    "ClientSecurity",
    "api_stub",
    "open_aio_channel",
    "open_channel",
]

TOKEN_ENV = "LEDGER_TOKEN"
# gRPC waits up to 2 minutes between reconnection attempts by default; the client libraries'
# channels look for a restarted gateway every second at most, while their calls are still
# retrying inside their deadline.
reconnect_backoff_max_ms = 1_000
CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.max_reconnect_backoff_ms", reconnect_backoff_max_ms),
)


def _read(path: pathlib.Path | None, flag: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as error:
        raise ValueError(f"{flag} {path}: {error.strerror or error}") from None


def _path(value: str | os.PathLike[str] | None) -> pathlib.Path | None:
    return None if value is None else pathlib.Path(value)


@dataclasses.dataclass(frozen=True)
class ClientSecurity:
    """TLS and token settings of a client; the default is plaintext without a token.

    Build it with ``load`` (PEM files, read at once) or ``from_pem`` (PEM bytes).
    """

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
        tls_ca: str | os.PathLike[str] | None = None,
        token: str | None = None,
        tls_cert: str | os.PathLike[str] | None = None,
        tls_key: str | os.PathLike[str] | None = None,
    ) -> ClientSecurity:
        """Read the PEM files now; ValueError with a one-line reason (named after the CLI's
        ``--tls-ca/--tls-cert/--tls-key`` options, which map one to one to these arguments)."""
        ca_path, cert_path, key_path = _path(tls_ca), _path(tls_cert), _path(tls_key)
        _check_pairing(ca_path is not None, cert_path is not None, key_path is not None)
        pem = (
            _read(ca_path, "--tls-ca"),
            _read(cert_path, "--tls-cert"),
            _read(key_path, "--tls-key"),
        )
        return cls(ca_path, _clean(token), cert_path, key_path, pem)

    @classmethod
    def from_pem(
        cls,
        root_certificates: bytes,
        *,
        certificate_chain: bytes | None = None,
        private_key: bytes | None = None,
        token: str | None = None,
    ) -> ClientSecurity:
        """TLS from PEM bytes in memory: the CA, and optionally a client certificate and key."""
        _check_pairing(True, certificate_chain is not None, private_key is not None)
        return cls(token=_clean(token), _pem=(root_certificates, certificate_chain, private_key))

    @property
    def tls(self) -> bool:
        return self.tls_ca is not None or self._pem[0] is not None

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
        if self.tls and self.tls_ca is None:
            raise ValueError("TLS settings given as PEM bytes cannot be passed to a child process")
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


def _check_pairing(ca: bool, cert: bool, key: bool) -> None:
    if cert != key:
        raise ValueError("--tls-cert and --tls-key go together")
    if cert and not ca:
        raise ValueError(
            "a client certificate (--tls-cert) needs --tls-ca: it is only sent over TLS"
        )


def _clean(token: str | None) -> str | None:
    token = token.strip() if token else None
    return token or None


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
    """A raw LedgerServiceApi stub whose calls carry the token, if there is one (for load
    generators that measure the server itself; applications use ``LedgerClient``)."""
    stub = ledger_api_pb2_grpc.LedgerServiceApiStub(channel)
    metadata = (security or ClientSecurity()).metadata
    if metadata:
        for name, call in list(vars(stub).items()):
            setattr(stub, name, _WithMetadata(call, metadata))
    return stub
