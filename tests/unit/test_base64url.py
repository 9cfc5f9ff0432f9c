"""The one base64url helper agrees with the standard library on every length and form."""

from __future__ import annotations

import base64
import os

import pytest

from core.base64url import b64url_decode, b64url_encode


@pytest.mark.parametrize("length", range(70))
def test_round_trip_matches_the_standard_library(length: int) -> None:
    raw = os.urandom(length)
    unpadded = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    assert b64url_encode(raw) == unpadded
    assert b64url_decode(unpadded) == raw
    assert b64url_decode(base64.urlsafe_b64encode(raw).decode()) == raw  # padded, as Firefox sends
    assert b64url_decode(base64.b64encode(raw).decode()) == raw  # + and /, as some senders do


@pytest.mark.parametrize("text", ["A", "AAAAA", "AB=C", "A===", "clé"])
def test_what_does_not_decode_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        b64url_decode(text)
