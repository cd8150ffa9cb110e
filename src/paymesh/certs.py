"""Development certificates for mutual TLS (``paymesh certs``).

A local CA (ECDSA P-256) and one certificate per service, signed by it. Each
service certificate works as a server AND a client certificate (extended key
usage serverAuth + clientAuth) and names the service, ``localhost`` and
``127.0.0.1`` (plus any extra hosts). Files in the directory::

    ca.pem  ca-key.pem (0600)  <service>.pem  <service>-key.pem (0600)

Not for production: use your own PKI (cert-manager, Vault, ...) there.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["CA_DAYS", "CERT_DAYS", "IssuedCerts", "make_certs"]

CA_DAYS = 3650
CERT_DAYS = 825


@dataclass(frozen=True)
class IssuedCerts:
    """What :func:`make_certs` wrote: the CA, whether it is new, and each service's files."""

    ca_file: Path
    ca_created: bool
    certs: dict[str, tuple[Path, Path]]  # service -> (cert, key)


def _write_private(path: Path, data: bytes) -> None:
    """Write `data` readable by the owner only (0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    path.chmod(0o600)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "paymesh development"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _certificate(
    subject: x509.Name,
    issuer: x509.Name,
    key: ec.EllipticCurvePublicKey,
    *,
    days: int,
    ca: bool,
) -> x509.CertificateBuilder:
    """A certificate of `key`, valid from five minutes ago for `days`: a CA's (it signs
    certificates) or a service's (its key signs and agrees keys)."""
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=not ca,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )


def _new_ca(ca_file: Path, ca_key_file: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name("paymesh development CA")
    cert = (
        _certificate(name, name, key.public_key(), days=CA_DAYS, ca=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(ca_key_file, _key_pem(key))
    ca_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _san(names: Sequence[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in dict.fromkeys(names):
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _issue(
    service: str,
    hosts: Sequence[str],
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _certificate(_name(service), ca_cert.subject, key.public_key(), days=CERT_DAYS, ca=False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(_san([service, "localhost", "127.0.0.1", *hosts]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def make_certs(
    directory: Path,
    services: Sequence[str],
    *,
    hosts: Sequence[str] = (),
    force: bool = False,
) -> IssuedCerts:
    """Write a development CA (kept if present, unless `force`) and a certificate per service."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_file, ca_key_file = directory / "ca.pem", directory / "ca-key.pem"
    created = force or not (ca_file.is_file() and ca_key_file.is_file())
    if created:
        _new_ca(ca_file, ca_key_file)
    ca_cert = x509.load_pem_x509_certificate(ca_file.read_bytes())
    ca_key = serialization.load_pem_private_key(ca_key_file.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{ca_key_file}: not an ECDSA key")
    issued: dict[str, tuple[Path, Path]] = {}
    for service in services:
        cert_pem, key_pem = _issue(service, hosts, ca_cert, ca_key)
        cert_file, key_file = directory / f"{service}.pem", directory / f"{service}-key.pem"
        _write_private(key_file, key_pem)
        cert_file.write_bytes(cert_pem)
        issued[service] = (cert_file, key_file)
    return IssuedCerts(ca_file=ca_file, ca_created=created, certs=issued)
