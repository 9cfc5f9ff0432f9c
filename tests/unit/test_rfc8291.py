"""The lean RFC 8291 encryption: the RFC's Appendix A example, and pywebpush's decryptor agrees."""

from __future__ import annotations

import os

import http_ece
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pywebpush import WebPusher

from core.adapters.webpush import encrypt, encrypt_aes128gcm
from core.base64url import b64url_decode, b64url_encode
from core.ports import PushMessage

# RFC 8291, Appendix A (the values the RFC prints, base64url).
PLAINTEXT = b"When I grow up, I want to be a watermelon"
AS_PRIVATE = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"
AS_PUBLIC = (
    "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8"
)
UA_PRIVATE = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"
UA_PUBLIC = (
    "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
)
AUTH = "BTBZMqHH6r4Tts7J_aSIgg"
SALT = "DGv6ra1nlYgDCS1FRnbzlw"
MESSAGE = (
    "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS"
    "6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qu"
    "lcy4a-fN"
)


def test_rfc8291_appendix_a_example_is_reproduced_byte_for_byte() -> None:
    as_key = ec.derive_private_key(int.from_bytes(b64url_decode(AS_PRIVATE), "big"), ec.SECP256R1())
    assert as_key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    ) == b64url_decode(AS_PUBLIC)
    body = encrypt_aes128gcm(
        PLAINTEXT,
        b64url_decode(UA_PUBLIC),
        b64url_decode(AUTH),
        as_private=as_key,
        salt=b64url_decode(SALT),
    )
    assert b64url_encode(body) == MESSAGE


def _receiver() -> tuple[ec.EllipticCurvePrivateKey, bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return key, public, os.urandom(16)


def test_what_we_send_decrypts_with_http_ece_like_pywebpush_output() -> None:
    for size in (1, 41, 300, 3993):
        key, public, auth = _receiver()
        payload = os.urandom(size)
        message = PushMessage(
            1,
            "https://push.example/x",
            b64url_encode(public),
            b64url_encode(auth),
            payload,
            60,
            "high",
            "t",
        )
        ours = encrypt(message)
        theirs = encrypt_pywebpush(message)
        for body in (ours, theirs):
            clear = http_ece.decrypt(body, private_key=key, auth_secret=auth, version="aes128gcm")
            assert clear == payload
        # Same framing as pywebpush: salt, record size 4096, key id = our 65-byte public key.
        assert len(ours) == len(theirs) == size + 86 + 17
        assert ours[16:21] == theirs[16:21] == b"\x00\x00\x10\x00\x41"
        # A fresh ephemeral key and salt for every message.
        again = encrypt(message)
        assert again[:16] != ours[:16] and again[21:86] != ours[21:86]


def test_malformed_keys_are_refused() -> None:
    _key, public, auth = _receiver()
    for bad_public, bad_auth in ((public[:64], auth), (b"\x02" + public[1:], auth), (public, b"x")):
        try:
            encrypt_aes128gcm(b"hi", bad_public, bad_auth)
        except ValueError:
            continue
        raise AssertionError("a malformed key was accepted")


def encrypt_pywebpush(message: PushMessage) -> bytes:
    """The same through pywebpush, the reference the lean path is tested against."""
    pusher = WebPusher(
        {"endpoint": message.endpoint, "keys": {"p256dh": message.p256dh, "auth": message.auth}}
    )
    return bytes(pusher.encode(message.payload, content_encoding="aes128gcm")["body"])
