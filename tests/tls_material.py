"""Throwaway PKI for TLS tests: a CA, a server certificate for localhost/127.0.0.1 and client
certificates, written as PEM files. Made fresh by each test module that needs them; nothing
here is ever used outside tests."""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import pathlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["Pki", "make_pki"]

validity = datetime.timedelta(days=1)


@dataclasses.dataclass(frozen=True)
class Pki:
    ca: pathlib.Path  # CA certificate
    server_cert: pathlib.Path  # for localhost and 127.0.0.1, signed by ca
    server_key: pathlib.Path
    client_cert: pathlib.Path  # signed by ca
    client_key: pathlib.Path
    other_ca: pathlib.Path  # an unrelated CA
    other_client_cert: pathlib.Path  # signed by other_ca
    other_client_key: pathlib.Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_cert(path: pathlib.Path, certificate: x509.Certificate) -> pathlib.Path:
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return path


def _write_key(path: pathlib.Path, key: ec.EllipticCurvePrivateKey) -> pathlib.Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def _ca(common_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    now = datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate, key


def _leaf(
    common_name: str,
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    names: list[x509.GeneralName],
    usage: x509.ObjectIdentifier,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    now = datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + validity)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return certificate, key


def make_pki(directory: pathlib.Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = _ca("ledger test CA")
    server, server_key = _leaf(
        "ledger test server",
        ca,
        ca_key,
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
        ExtendedKeyUsageOID.SERVER_AUTH,
    )
    client, client_key = _leaf(
        "ledger test client", ca, ca_key, [x509.DNSName("client")], ExtendedKeyUsageOID.CLIENT_AUTH
    )
    other_ca, other_ca_key = _ca("unrelated CA")
    other_client, other_client_key = _leaf(
        "stranger",
        other_ca,
        other_ca_key,
        [x509.DNSName("stranger")],
        ExtendedKeyUsageOID.CLIENT_AUTH,
    )
    return Pki(
        ca=_write_cert(directory / "ca.pem", ca),
        server_cert=_write_cert(directory / "server.pem", server),
        server_key=_write_key(directory / "server.key", server_key),
        client_cert=_write_cert(directory / "client.pem", client),
        client_key=_write_key(directory / "client.key", client_key),
        other_ca=_write_cert(directory / "other-ca.pem", other_ca),
        other_client_cert=_write_cert(directory / "other-client.pem", other_client),
        other_client_key=_write_key(directory / "other-client.key", other_client_key),
    )
