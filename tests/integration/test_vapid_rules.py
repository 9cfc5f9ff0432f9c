"""Both push stand-ins judge a VAPID token by the same rules, over real HTTP on loopback."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from py_vapid import Vapid02
from py_vapid.jwt import sign as jwt_sign
from pywebpush import WebPusher
from websockets.sync.client import connect

from core.base64url import b64url_encode
from standin.mozilla import SUBPROTOCOL, MozillaPushServer
from standin.server import PushStandin

pytestmark = pytest.mark.timeout(60)

# A push target: its origin (the aud a token must name) and a function sending one push.
Target = tuple[str, Callable[[str], int]]


@pytest.fixture(scope="module")
def vapid() -> Vapid02:
    key = Vapid02()
    key.generate_keys()
    return key


def _public_key(vapid: Vapid02) -> str:
    raw = vapid.public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return b64url_encode(raw)


@pytest.fixture(scope="module")
def generic(vapid: Vapid02) -> Iterator[Target]:
    with PushStandin() as standin:
        sub = standin.create_subscription(application_server_key=_public_key(vapid))
        body: bytes = WebPusher(sub).encode(b'{"title":"t"}')["body"]

        def send(authorization: str) -> int:
            headers = {"Authorization": authorization, "TTL": "60", "Content-Encoding": "aes128gcm"}
            return requests.post(
                sub["endpoint"], data=body, headers=headers, timeout=10
            ).status_code

        yield standin.origin, send


@pytest.fixture(scope="module")
def mozilla(vapid: Vapid02) -> Iterator[Target]:
    with MozillaPushServer() as server, connect(server.ws_url, subprotocols=[SUBPROTOCOL]) as ws:
        ws.send(json.dumps({"messageType": "hello", "use_webpush": True}))
        assert json.loads(ws.recv(timeout=10))["status"] == 200
        channel = str(uuid.uuid4())
        ws.send(
            json.dumps({"messageType": "register", "channelID": channel, "key": _public_key(vapid)})
        )
        endpoint = json.loads(ws.recv(timeout=10))["pushEndpoint"]

        def send(authorization: str) -> int:
            # TTL 0 and no body: the VAPID check is all that stands between it and a 201.
            headers = {"Authorization": authorization, "TTL": "0"}
            return requests.post(endpoint, headers=headers, timeout=10).status_code

        yield server.origin, send


@pytest.fixture(params=["generic", "mozilla"])
def target(request: pytest.FixtureRequest) -> Target:
    found: Target = request.getfixturevalue(request.param)
    return found


def _authorization(vapid: Vapid02, claims: dict[str, Any]) -> str:
    return f"vapid t={jwt_sign(claims, vapid.private_key)}, k={_public_key(vapid)}"


def test_a_good_token_is_accepted_by_both(target: Target, vapid: Vapid02) -> None:
    origin, send = target
    claims = {"aud": origin, "exp": int(time.time()) + 12 * 3600, "sub": "mailto:desk@example.org"}
    assert send(_authorization(vapid, claims)) == 201


@pytest.mark.parametrize(
    "change",
    [
        # The Mozilla stand-in took a token without sub, and 60 s over 24 h.
        pytest.param(lambda now: {"sub": None}, id="no sub"),
        pytest.param(lambda now: {"sub": "desk@example.org"}, id="sub not a URL"),
        pytest.param(lambda now: {"sub": "http://example.org/contact"}, id="sub http"),
        pytest.param(lambda now: {"aud": "http://127.0.0.1:1"}, id="aud another origin"),
        pytest.param(lambda now: {"exp": None}, id="no exp"),
        pytest.param(lambda now: {"exp": "tomorrow"}, id="exp a string"),
        pytest.param(lambda now: {"exp": int(now) + 24 * 3600 + 30}, id="exp 24 h 30 s ahead"),
        pytest.param(lambda now: {"exp": int(now) - 5}, id="exp past"),
        # The generic stand-in took a fractional exp; NumericDate senders write integers.
        pytest.param(lambda now: {"exp": now + 3600.5}, id="exp fractional"),
    ],
)
def test_a_bad_claim_is_refused_by_both(
    target: Target, vapid: Vapid02, change: Callable[[float], dict[str, Any]]
) -> None:
    origin, send = target
    now = time.time()
    claims = {
        "aud": origin,
        "exp": int(now) + 3600,
        "sub": "https://example.org/desk",
        **change(now),
    }
    claims = {key: value for key, value in claims.items() if value is not None}
    assert send(_authorization(vapid, claims)) == 401
