"""Key material for the push stand-in: subscriber key pairs and a throwaway TLS CA."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from core.base64url import b64url_decode, b64url_encode

_CURVE = ec.SECP256R1()


def public_point(key: ec.EllipticCurvePrivateKey) -> bytes:
    """The 65-byte uncompressed P-256 point, as in PushSubscription.keys.p256dh."""
    return key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


@dataclass(slots=True)
class SubscriberKeys:
    """What a browser keeps secret for one subscription (RFC 8291 user agent side)."""

    private_value: int
    auth_secret: bytes
    p256dh: str
    _key: ec.EllipticCurvePrivateKey | None = None

    @classmethod
    def generate(cls) -> SubscriberKeys:
        key = ec.generate_private_key(_CURVE)
        return cls(
            private_value=key.private_numbers().private_value,
            auth_secret=secrets.token_bytes(16),
            p256dh=b64url_encode(public_point(key)),
            _key=key,
        )

    @property
    def private_key(self) -> ec.EllipticCurvePrivateKey:
        # Keys loaded from a state file are derived lazily: a restarted stand-in with tens
        # of thousands of subscribers should not pay for keys nobody pushes to.
        if self._key is None:
            self._key = ec.derive_private_key(self.private_value, _CURVE)
        return self._key

    @property
    def auth(self) -> str:
        return b64url_encode(self.auth_secret)

    def to_json(self) -> dict[str, str]:
        return {
            "d": b64url_encode(self.private_value.to_bytes(32, "big")),
            "auth": self.auth,
            "p256dh": self.p256dh,
        }

    @classmethod
    def from_json(cls, data: dict[str, str]) -> SubscriberKeys:
        return cls(
            private_value=int.from_bytes(b64url_decode(data["d"]), "big"),
            auth_secret=b64url_decode(data["auth"]),
            p256dh=data["p256dh"],
        )


@dataclass(frozen=True, slots=True)
class TlsFiles:
    ca_file: Path
    cert_file: Path
    key_file: Path


def write_tls_files(directory: Path, host: str) -> TlsFiles:
    """Create a one-off CA and a server certificate for `host` signed by it.

    A separate CA (rather than one self-signed leaf) keeps strict verifiers happy, e.g.
    Python 3.13's default VERIFY_X509_STRICT rejects a leaf that doubles as its own CA.
    """
    now = dt.datetime.now(dt.UTC)
    not_before, not_after = now - dt.timedelta(hours=1), now + dt.timedelta(days=30)

    ca_key = ec.generate_private_key(_CURVE)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Newsflash push stand-in CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )

    names: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    try:
        extra: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        extra = x509.DNSName(host)
    if extra not in names:
        names.append(extra)

    key = ec.generate_private_key(_CURVE)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )

    files = TlsFiles(
        ca_file=directory / "ca.pem",
        cert_file=directory / "server.pem",
        key_file=directory / "server.key",
    )
    files.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(files.key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return files
