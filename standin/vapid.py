"""VAPID (RFC 8292) as a push service checks it: the one verifier both stand-ins use."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from core.base64url import b64url_decode

# RFC 8292 §2: exp MUST NOT be more than 24 hours after the request.
MAX_LIFETIME_S = 24 * 3600

_P256 = ec.SECP256R1()
_ES256 = ec.ECDSA(hashes.SHA256())
_DRAFT_SCHEME = re.compile(r"^webpush\s+(?P<token>\S+)$", re.IGNORECASE)


class VapidRefused(Exception):
    """A push whose VAPID credentials a push service refuses: 401 (bad token)."""

    def __init__(self, reason: str, status: int = 401) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Vapid:
    """Credentials that passed every check: the claims and the raw 65-byte public key."""

    claims: dict[str, Any]
    key: bytes


def verify(
    authorization: str | None,
    audience: str,
    *,
    crypto_key: str | None = None,
    now: float | None = None,
    max_lifetime_s: int = MAX_LIFETIME_S,
) -> Vapid:
    """Every check at once: header form, ES256 signature by k, then aud, exp and sub."""
    token, key = read_authorization(authorization, crypto_key)
    claims = verify_signature(token, key)
    check_claims(claims, audience, now=now, max_lifetime_s=max_lifetime_s)
    return Vapid(claims, key)


def read_authorization(
    authorization: str | None, crypto_key: str | None = None
) -> tuple[str, bytes]:
    """(t, k) from `vapid t=..., k=...`; k as an uncompressed P-256 point.

    With crypto_key (the Crypto-Key header) the pre-RFC form `WebPush <token>` with
    `p256ecdsa=<key>` is read too, as autopush still accepts it for aesgcm senders.
    """
    if not authorization or not authorization.strip():
        raise VapidRefused("missing Authorization header")
    scheme, _, rest = authorization.strip().partition(" ")
    if scheme.lower() == "vapid":
        fields = _parameters(rest, ",")
        token, key_text = fields.get("t"), fields.get("k")
    elif crypto_key is not None and (draft := _DRAFT_SCHEME.match(authorization.strip())):
        token, key_text = draft.group("token"), _parameters(crypto_key, ";,").get("p256ecdsa")
    else:
        raise VapidRefused(f"Authorization scheme {scheme!r} is not 'vapid t=..., k=...'")
    if not token or not key_text:
        raise VapidRefused("vapid Authorization needs both t= and k=")
    try:
        key = b64url_decode(key_text)
    except ValueError as exc:
        raise VapidRefused("k is not base64url") from exc
    if len(key) != 65 or key[0] != 4:
        raise VapidRefused("k is not an uncompressed P-256 public key")
    return token, key


def verify_signature(token: str, key: bytes) -> dict[str, Any]:
    """The claims of a compact JWS signed ES256 by key; a pure function, so callers may cache it."""
    parts = token.split(".")
    if len(parts) != 3:
        raise VapidRefused("t is not a compact JWS (header.payload.signature)")
    try:
        header = json.loads(b64url_decode(parts[0]))
        signature = b64url_decode(parts[2])
    except ValueError as exc:
        raise VapidRefused("JWT header or signature is not decodable") from exc
    alg = header.get("alg") if isinstance(header, dict) else None
    if alg != "ES256":
        raise VapidRefused(f"JWT alg must be ES256, got {alg!r}")
    # JWS ES256 signatures are raw r||s (RFC 7518 §3.4), not the DER cryptography expects.
    if len(signature) != 64:
        raise VapidRefused("JWT signature is not a 64-byte raw r||s ES256 signature")
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    try:
        public_key = ec.EllipticCurvePublicKey.from_encoded_point(_P256, key)
        public_key.verify(der, f"{parts[0]}.{parts[1]}".encode(), _ES256)
    except (InvalidSignature, ValueError) as exc:
        raise VapidRefused("JWT signature does not verify against k") from exc
    try:
        claims = json.loads(b64url_decode(parts[1]))
    except ValueError as exc:
        raise VapidRefused("JWT claims are not JSON") from exc
    if not isinstance(claims, dict):
        raise VapidRefused("JWT claims are not a JSON object")
    return claims


def check_claims(
    claims: dict[str, Any],
    audience: str,
    *,
    now: float | None = None,
    max_lifetime_s: int = MAX_LIFETIME_S,
) -> None:
    """aud is this push service's origin, exp an integer in the future and at most
    max_lifetime_s ahead, sub a mailto: or https: contact (Apple refuses a token without)."""
    aud = claims.get("aud")
    if aud != audience:
        raise VapidRefused(f"JWT aud {aud!r} is not this push service's {audience!r}")
    exp = claims.get("exp")
    if not isinstance(exp, int) or isinstance(exp, bool):
        raise VapidRefused("JWT exp missing or not an integer")
    current = time.time() if now is None else now
    if exp <= current:
        raise VapidRefused(f"JWT expired {current - exp:.0f} s ago")
    if exp > current + max_lifetime_s:
        raise VapidRefused(
            f"JWT exp is {exp - current:.0f} s ahead; at most {max_lifetime_s} s allowed"
        )
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject.startswith(("mailto:", "https:")):
        raise VapidRefused(f"JWT sub {subject!r} is not a mailto: or https: contact")


def _parameters(text: str, separators: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in re.split(f"[{separators}]", text):
        if not part.strip():
            continue
        name, eq, value = part.strip().partition("=")
        if not eq:
            raise VapidRefused("malformed vapid Authorization parameters")
        fields[name.strip().lower()] = value.strip()
    return fields
