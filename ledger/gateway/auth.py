"""Who may call the public API: TLS material, bearer tokens with scopes, and the check itself.

Decisions:

* **Tokens** are ``ledger_`` + 43 url-safe base64 characters (32 random bytes), made by
  ``ledger-dev gen-token`` and shown once. Servers keep only their SHA-256: a plain hash is
  enough for 256 random bits (there is no dictionary to try), and it costs ~1 µs per call.
* **Token file** (``--tokens-file``): UTF-8 text, one token per line,
  ``sha256:<64 hex> <scope> <name>``; blank lines and lines starting with ``#`` are ignored.
  Names are 1-64 characters of ``A-Z a-z 0-9 . _ @ -`` and unique, so a token is revoked by
  deleting its line (and restarting the server: the file is read once, at start).
* **Scopes.** ``read``: the ``Get*`` and ``List*`` rpcs of LedgerServiceApi and server
  reflection. ``write``: everything (it includes ``read``). ``grpc.health.v1`` needs no token.
* **The check** runs in a ``grpc.aio`` server interceptor, before any handler: the servicer is
  never reached, so a refused call applies nothing. Clients send ``authorization: Bearer
  <token>``. No or an unknown token: ``UNAUTHENTICATED`` (reasons ``TOKEN_MISSING``,
  ``TOKEN_UNKNOWN``); a known token without the scope: ``PERMISSION_DENIED``
  (``INSUFFICIENT_SCOPE``, metadata ``required_scope``, ``token_scope``). Both are rich statuses
  like every other error (``ledger.gateway.errors``), and counted in the call metrics. The
  token's hash is compared with every known hash by ``hmac.compare_digest``, without stopping
  at a match, so the time a check takes does not depend on which hash matched or how much of it did.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os
import pathlib
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import grpc

from ledger.gateway.errors import ApiError, to_grpc_status
from ledger.gateway.metrics import observe_call
from ledger.pb import ledger_api_pb2 as api
from ledger.reasons import Reason

__all__ = [
    "SCOPES",
    "AuthInterceptor",
    "ServerSecurity",
    "TokenEntry",
    "TokenFileError",
    "TokenTable",
    "append_token",
    "bearer_token",
    "hash_token",
    "load_server_security",
    "new_token",
    "parse_tokens",
    "required_scope",
]

SCOPES = ("read", "write")  # in order: a scope includes every scope before it
TOKEN_PREFIX = "ledger_"
HASH_PREFIX = "sha256:"
token_random_bytes = 32
token_chars_max = 512  # a longer authorization value is refused unhashed
AUTH_HEADER = "authorization"

_NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
_OPEN_PREFIXES = ("/grpc.health.v1.Health/",)
_READ_PREFIXES = (
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)
SERVICE_NAME = api.DESCRIPTOR.services_by_name["LedgerServiceApi"].full_name
_API_PREFIX = f"/{SERVICE_NAME}/"
READ_METHODS = frozenset(
    f"{_API_PREFIX}{method.name}"
    for method in api.DESCRIPTOR.services_by_name["LedgerServiceApi"].methods
    if method.name.startswith(("Get", "List"))
)


class TokenFileError(ValueError):
    """A token file that cannot be used; the message names the file and line."""


@dataclasses.dataclass(frozen=True)
class TokenEntry:
    digest: bytes  # SHA-256 of the token
    scope: str
    name: str


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(token_random_bytes)


def allows(token_scope: str, required: str) -> bool:
    return SCOPES.index(token_scope) >= SCOPES.index(required)


def required_scope(method: str) -> str | None:
    """The scope a call of ``method`` (``/package.Service/Method``) needs; None: no token."""
    if method.startswith(_OPEN_PREFIXES):
        return None
    if method in READ_METHODS or method.startswith(_READ_PREFIXES):
        return "read"
    return "write"  # every other rpc, including ones this server does not implement


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"token name {name!r}: 1-64 characters of A-Z a-z 0-9 . _ @ -")
    return name


def token_line(token: str, scope: str, name: str) -> str:
    if scope not in SCOPES:
        raise ValueError(f"scope {scope!r}: one of {', '.join(SCOPES)}")
    return f"{HASH_PREFIX}{hash_token(token).hex()} {scope} {check_name(name)}"


def parse_tokens(text: str, source: str) -> list[TokenEntry]:
    """Every entry of a token file; TokenFileError on the first bad line or duplicate."""
    entries: list[TokenEntry] = []
    names: set[str] = set()
    digests: set[bytes] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{source}:{number}"
        fields = line.split()
        if len(fields) != 3:
            raise TokenFileError(f"{where}: expected 'sha256:<64 hex> <scope> <name>'")
        hashed, scope, name = fields
        if not hashed.startswith(HASH_PREFIX) or not _HEX_DIGEST.fullmatch(
            hashed[len(HASH_PREFIX) :]
        ):
            raise TokenFileError(
                f"{where}: expected 'sha256:' and 64 lowercase hex digits "
                "(the file holds hashes, never tokens)"
            )
        if scope not in SCOPES:
            raise TokenFileError(f"{where}: scope {scope!r} is not one of {', '.join(SCOPES)}")
        try:
            check_name(name)
        except ValueError as error:
            raise TokenFileError(f"{where}: {error}") from None
        digest = bytes.fromhex(hashed[len(HASH_PREFIX) :])
        if name in names:
            raise TokenFileError(f"{where}: token name {name!r} appears twice")
        if digest in digests:
            raise TokenFileError(f"{where}: the same token hash appears twice")
        names.add(name)
        digests.add(digest)
        entries.append(TokenEntry(digest, scope, name))
    return entries


def read_token_file(path: pathlib.Path) -> list[TokenEntry]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise TokenFileError(f"cannot read tokens file {path}: {error}") from None
    return parse_tokens(text, str(path))


def append_token(path: pathlib.Path, token: str, scope: str, name: str) -> None:
    """Append the token's line to ``path`` (created 0600 if missing) after checking that the
    file stays valid: a known name or hash is refused with TokenFileError."""
    line = token_line(token, scope, name)
    existing = path.read_text(encoding="utf-8") if path.exists() else ""
    entries = parse_tokens(existing, str(path))
    if any(entry.name == name for entry in entries):
        raise TokenFileError(f"{path} already holds a token named {name!r}")
    if any(hmac.compare_digest(entry.digest, hash_token(token)) for entry in entries):
        raise TokenFileError(f"{path} already holds this token")
    separator = "" if not existing or existing.endswith("\n") else "\n"
    header = "" if existing else "# ledger API tokens, one a line: sha256:<hex> <scope> <name>\n"
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(descriptor, "a", encoding="utf-8") as handle:
        handle.write(f"{separator}{header}{line}\n")


class TokenTable:
    """The known tokens (their hashes), looked up in constant time per table."""

    def __init__(self, entries: Iterable[TokenEntry]) -> None:
        self.entries = tuple(entries)

    def __len__(self) -> int:
        return len(self.entries)

    def lookup(self, token: str) -> TokenEntry | None:
        digest = hash_token(token)
        found: TokenEntry | None = None
        for entry in self.entries:  # no early exit: every hash is compared
            if hmac.compare_digest(digest, entry.digest):
                found = entry
        return found

    def counts(self) -> dict[str, int]:
        return {scope: sum(e.scope == scope for e in self.entries) for scope in SCOPES}


def bearer_token(metadata: Sequence[tuple[str, Any]] | None) -> str | None:
    """The token of the one ``authorization: Bearer <token>`` entry; None if there is none,
    more than one, or another scheme."""
    values = [value for key, value in metadata or () if key == AUTH_HEADER]
    if len(values) != 1:
        return None
    value: str | bytes = values[0]
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def check_call(
    tokens: TokenTable, method: str, metadata: Sequence[tuple[str, Any]] | None
) -> ApiError | None:
    """None when the call may proceed, else the error to answer with."""
    required = required_scope(method)
    if required is None:
        return None
    token = bearer_token(metadata)
    if token is None:
        return ApiError(
            Reason.TOKEN_MISSING,
            "missing bearer token: send metadata 'authorization: Bearer <token>'",
        )
    entry = tokens.lookup(token) if len(token) <= token_chars_max else None
    if entry is None:
        return ApiError(Reason.TOKEN_UNKNOWN, "unknown bearer token")
    if not allows(entry.scope, required):
        return ApiError(
            Reason.INSUFFICIENT_SCOPE,
            f"this token's scope is {entry.scope!r}; the call needs {required!r}",
            {"required_scope": required, "token_scope": entry.scope},
        )
    return None


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Answers a call that lacks the scope it needs with a rich status, before any handler."""

    def __init__(self, tokens: TokenTable) -> None:
        self.tokens = tokens

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        method = handler_call_details.method or ""
        failure = check_call(self.tokens, method, handler_call_details.invocation_metadata)
        handler = await continuation(handler_call_details)
        if failure is None:
            return handler
        return _refusal(handler, method, failure)


def _refusal(
    handler: grpc.RpcMethodHandler | None, method: str, failure: ApiError
) -> grpc.RpcMethodHandler:
    """A handler of the refused rpc's own shape that answers ``failure`` and reads nothing
    (no deserializer: the request is never parsed for a caller we did not admit)."""
    status = to_grpc_status(failure)
    metric = method[len(_API_PREFIX) :] if method.startswith(_API_PREFIX) else None

    async def refuse(_request: Any, context: grpc.aio.ServicerContext) -> None:
        if metric is not None:
            observe_call(metric, failure.code.name, 0.0)
        await context.abort_with_status(status)

    request_streaming = handler is not None and handler.request_streaming
    response_streaming = handler is not None and handler.response_streaming
    if request_streaming and response_streaming:
        return grpc.stream_stream_rpc_method_handler(refuse)
    if request_streaming:
        return grpc.stream_unary_rpc_method_handler(refuse)
    if response_streaming:
        return grpc.unary_stream_rpc_method_handler(refuse)
    return grpc.unary_unary_rpc_method_handler(refuse)


# -- what a server runs with: TLS material, tokens, and the line that says so ---------------------


@dataclasses.dataclass(frozen=True)
class ServerSecurity:
    """TLS (``credentials``), client-certificate requirement and tokens of one server."""

    credentials: grpc.ServerCredentials | None = None
    client_ca: pathlib.Path | None = None
    tokens: TokenTable | None = None
    tokens_file: pathlib.Path | None = None

    def interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        return [] if self.tokens is None else [AuthInterceptor(self.tokens)]

    def describe(self, host: str, port: int, loopback: bool) -> str:
        """One line: what the server serves, and who can reach it and do what."""
        if loopback:
            reach = f"only processes on this machine can connect ({host} is loopback)"
        elif host.strip("[]") in ("0.0.0.0", "::", ""):
            reach = f"anyone who can reach any address of this machine on port {port} can connect"
        else:
            reach = f"anyone who can reach {host}:{port} can connect"
        if self.credentials is None:
            transport = "plaintext"
        elif self.client_ca is None:
            transport = "TLS"
        else:
            transport = f"TLS with client certificates signed by {self.client_ca} (mTLS)"
        if self.tokens is None:
            if self.client_ca is not None:
                access = "no tokens: every client with such a certificate can read and write"
            else:
                access = "WITHOUT AUTHENTICATION: everyone who connects can read and write"
        else:
            counts = ", ".join(f"{n} {scope}" for scope, n in self.tokens.counts().items())
            access = f"bearer tokens required ({counts}; from {self.tokens_file})"
            if self.credentials is None:
                access += "; tokens cross the network unencrypted"
        return f"serving {transport} on {host}:{port}, {access}; {reach}"


def load_server_security(
    tls_cert: pathlib.Path | None,
    tls_key: pathlib.Path | None,
    client_ca: pathlib.Path | None,
    tokens_file: pathlib.Path | None,
) -> ServerSecurity:
    """Read and check the files behind the server flags; ValueError with a one-line reason."""
    if (tls_cert is None) != (tls_key is None):
        raise ValueError("--tls-cert and --tls-key go together")
    if client_ca is not None and tls_cert is None:
        raise ValueError(
            "--client-ca needs --tls-cert and --tls-key (client certificates "
            "are checked during the TLS handshake)"
        )
    credentials = None
    if tls_cert is not None and tls_key is not None:
        cert = _read_pem(tls_cert, "--tls-cert", "CERTIFICATE")
        key = _read_pem(tls_key, "--tls-key", "PRIVATE KEY")
        _check_key_pair(cert, key, tls_cert, tls_key)
        roots = None if client_ca is None else _read_pem(client_ca, "--client-ca", "CERTIFICATE")
        credentials = grpc.ssl_server_credentials(
            [(key, cert)], root_certificates=roots, require_client_auth=roots is not None
        )
    tokens = None
    if tokens_file is not None:
        try:
            entries = read_token_file(tokens_file)
        except TokenFileError as error:
            raise ValueError(str(error)) from None
        if not entries:
            raise ValueError(
                f"tokens file {tokens_file} holds no token: every call would be "
                "refused (add one with `ledger-dev gen-token`)"
            )
        tokens = TokenTable(entries)
    return ServerSecurity(credentials, client_ca, tokens, tokens_file)


def _read_pem(path: pathlib.Path, flag: str, kind: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ValueError(f"{flag} {path}: {error.strerror or error}") from None
    if b"-----BEGIN " not in data or kind.encode() not in data:
        raise ValueError(f"{flag} {path}: expected a PEM {kind.lower()}")
    return data


def _check_key_pair(
    cert: bytes, key: bytes, cert_path: pathlib.Path, key_path: pathlib.Path
) -> None:
    """Fail at start, in one line, rather than at the first handshake."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        certificate = x509.load_pem_x509_certificate(cert)
    except ValueError as error:
        raise ValueError(f"--tls-cert {cert_path}: not a PEM certificate ({error})") from None
    try:
        private_key = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"--tls-key {key_path}: not an unencrypted PEM private key ({error})"
        ) from None
    raw = serialization.PublicFormat.SubjectPublicKeyInfo
    if certificate.public_key().public_bytes(
        serialization.Encoding.DER, raw
    ) != private_key.public_key().public_bytes(serialization.Encoding.DER, raw):
        raise ValueError(f"--tls-key {key_path} does not belong to --tls-cert {cert_path}")
