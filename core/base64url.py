"""base64url (RFC 4648 §5) as web push writes it: unpadded out, padding optional in."""

from __future__ import annotations

import binascii

# binascii with a translate table, not base64.urlsafe_b64*: the same result without the
# Python layers, and decoding sits on the push hot path (two keys per push).
_URL_TO_STD = bytes.maketrans(b"-_", b"+/")
_STD_TO_URL = bytes.maketrans(b"+/", b"-_")


def b64url_encode(raw: bytes) -> str:
    """Unpadded base64url, as browsers write subscription keys and VAPID tokens."""
    return binascii.b2a_base64(raw, newline=False).translate(_STD_TO_URL).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    """Decode base64url, padded or not; raises ValueError when it does not decode.

    Like base64.urlsafe_b64decode it also takes the standard alphabet's + and / and skips
    characters outside the alphabet; callers that must refuse those check the alphabet first.
    """
    raw = text.encode("ascii").translate(_URL_TO_STD)
    return binascii.a2b_base64(raw + b"=" * (-len(raw) % 4))
