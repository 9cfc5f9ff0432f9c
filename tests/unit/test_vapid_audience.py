"""The VAPID aud is the push service's origin as RFC 6454 writes it, whatever the endpoint's
spelling: a push service compares it as text and refuses anything else (Apple: 403 BadJwtToken)."""

from __future__ import annotations

import pytest
from py_vapid import Vapid02

from core.adapters.http11 import Routes
from core.adapters.push_crypto import VapidSigner
from standin.vapid import verify


@pytest.fixture(scope="module")
def signer() -> VapidSigner:
    key = Vapid02()
    key.generate_keys()
    return VapidSigner(key.private_pem().decode(), "mailto:ops@news.example")


@pytest.mark.parametrize(
    ("endpoint", "origin"),
    [
        ("https://fcm.googleapis.com/fcm/send/abc", "https://fcm.googleapis.com"),
        ("https://fcm.googleapis.com:443/fcm/send/abc", "https://fcm.googleapis.com"),
        ("https://Web.Push.Apple.com:443/QGx1", "https://web.push.apple.com"),
        ("http://127.0.0.1:80/wpush/1", "http://127.0.0.1"),
        ("http://127.0.0.1:8443/wpush/1", "http://127.0.0.1:8443"),
    ],
)
def test_the_token_names_the_push_services_origin(
    signer: VapidSigner, endpoint: str, origin: str
) -> None:
    route, _target = Routes(allow_loopback=True)(endpoint)
    assert route is not None and route.usable
    assert route.origin == origin
    verify(signer.header(route.origin), origin)  # what the push service checks
