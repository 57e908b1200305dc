"""Who may call the node API, and how the call is kept private.

The node API (``LedgerNode.Submit/Read/Status``) bypasses every check the gateway makes: a raw
``CommandBatch`` can mint money or move a shard's clock. So:

* **Encryption and node identity: TLS with a cluster CA.** ``ledger-dev gen-config`` makes a CA
  and one certificate per node (its config address in the subject alternative names, plus
  loopback) and embeds them, PEM, in the config's ``nodeTls`` section; each node serves with its
  own key, every caller verifies the node against the CA.
* **Caller authentication: a per-call credential derived from the cluster secret.** Every call
  carries ``authorization: Bearer <token>`` where the token is HKDF-SHA256 of ``raftSecret``
  (which already authenticates Raft traffic). A call without it, or with another, is answered
  ``UNAUTHENTICATED`` before any handler runs. We chose this over client certificates because a
  TLS handshake failure reaches the caller as a connection error, not as a status that says what
  was wrong, and because whoever holds the config (the secret) is a cluster member anyway: a
  second credential to distribute would protect nothing more. Health checks stay open.
"""

from __future__ import annotations

import base64
import datetime
import hmac
import ipaddress
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.x509.oid import NameOID

__all__ = [
    "NodeAuthInterceptor",
    "generate_node_tls",
    "node_api_token",
    "node_call_metadata",
    "node_channel",
    "node_channel_credentials",
    "node_server_credentials",
]

_TOKEN_INFO = b"ledger node api v1"
_AUTH_HEADER = "authorization"
_OPEN_SERVICES = ("/grpc.health.v1.Health/",)
certificate_validity_days = 5 * 365
_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def node_api_token(secret: str) -> str:
    """The bearer token of the node API, derived from the cluster secret (never the secret)."""
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_TOKEN_INFO).derive(
        secret.encode()
    )
    return base64.urlsafe_b64encode(key).decode().rstrip("=")


# -- certificates --------------------------------------------------------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ledger cluster"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _pem_key(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _pem_cert(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def _subject_names(hosts: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys([*hosts, *_LOOPBACK_NAMES]):  # ordered, no duplicates
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def generate_node_tls(nodes: Sequence[tuple[str, Sequence[str]]]) -> dict[str, Any]:
    """A fresh cluster CA and, per ``(node_id, hosts)``, a certificate for those hosts: the
    config's ``nodeTls`` section. The CA's key is not kept: to add a node, generate anew."""
    now = datetime.datetime.now(datetime.UTC)
    not_after = now + datetime.timedelta(days=certificate_validity_days)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("ledger cluster CA")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    section: dict[str, Any] = {"caCert": _pem_cert(ca), "nodes": {}}
    for node_id, hosts in nodes:
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(node_id))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName(_subject_names(hosts)), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        section["nodes"][node_id] = {"cert": _pem_cert(certificate), "key": _pem_key(key)}
    return section


# -- server side ---------------------------------------------------------------------------------


def node_server_credentials(ca_cert: str, cert: str, key: str) -> grpc.ServerCredentials:
    del ca_cert  # callers authenticate with the token, not with a certificate (see above)
    return grpc.ssl_server_credentials([(key.encode(), cert.encode())])


class NodeAuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Refuses every node-API call without the cluster's bearer token: ``UNAUTHENTICATED``."""

    def __init__(self, secret: str) -> None:
        self._expected = _bearer(secret).encode()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        method = handler_call_details.method or ""
        if method.startswith(_OPEN_SERVICES) or self._authorized(handler_call_details):
            return await continuation(handler_call_details)
        return _refusal(method)

    def _authorized(self, details: grpc.HandlerCallDetails) -> bool:
        for name, value in details.invocation_metadata or ():
            if name == _AUTH_HEADER:
                given = value.encode() if isinstance(value, str) else bytes(value)
                return hmac.compare_digest(given, self._expected)
        return False


def _refusal(method: str) -> grpc.RpcMethodHandler:
    async def refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(
            grpc.StatusCode.UNAUTHENTICATED, "the node API needs the cluster's credential"
        )

    # Raw bytes in and out: nothing of the request is parsed for a caller we do not know.
    return grpc.unary_unary_rpc_method_handler(refuse)


# -- client side ---------------------------------------------------------------------------------


def node_channel_credentials(ca_cert: str, secret: str) -> grpc.ChannelCredentials:
    """TLS verifying the node against the cluster CA, and the bearer token on every call."""
    return grpc.composite_channel_credentials(
        grpc.ssl_channel_credentials(root_certificates=ca_cert.encode()),
        grpc.access_token_call_credentials(node_api_token(secret)),
    )


def node_call_metadata(secret: str) -> tuple[tuple[str, str], ...]:
    """The credential as call metadata, for a channel opened with ``attach_token=False``.

    The hot path (the gateway's Submit and Read calls) sends it this way: gRPC runs call
    credentials through a Python plugin on a new thread for every call of a ``grpc.aio``
    channel, which cost the gateway about a tenth of its CPU. On a TLS channel the metadata is
    as protected as the plugin's.
    """
    return (("authorization", _bearer(secret)),)


def _bearer(secret: str) -> str:
    """The ``authorization`` value every node-API call carries, and the only one accepted."""
    return f"Bearer {node_api_token(secret)}"


def node_channel(
    address: str,
    ca_cert: str,
    secret: str,
    *,
    aio: bool = False,
    options: Sequence[tuple[str, Any]] = (),
    attach_token: bool = True,
) -> Any:
    """A channel to a node's API (``grpc.aio`` when ``aio``), encrypted and authenticated.

    Without ``attach_token`` the channel is TLS only, and every call must carry
    ``node_call_metadata`` itself (a call without it is refused UNAUTHENTICATED).
    """
    credentials = (
        node_channel_credentials(ca_cert, secret)
        if attach_token
        else grpc.ssl_channel_credentials(root_certificates=ca_cert.encode())
    )
    if aio:
        return grpc.aio.secure_channel(address, credentials, options=list(options))
    return grpc.secure_channel(address, credentials, options=list(options))
