"""Integration tests for the RFC 8030 push-service stand-in, driven over real HTTP."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from py_vapid import Vapid02
from py_vapid.jwt import sign as jwt_sign
from py_vapid.utils import b64urlencode
from pywebpush import WebPusher

from standin.server import MAX_BODY_BYTES, NO_ANSWER, PushStandin

pytestmark = pytest.mark.timeout(60)

CONTACT = "mailto:newsroom@example.org"


# ---------------------------------------------------------------------- helpers


def new_vapid() -> Vapid02:
    vapid = Vapid02()
    vapid.generate_keys()
    return vapid


def public_key_b64(vapid: Vapid02) -> str:
    raw = vapid.public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return str(b64urlencode(raw))


def vapid_headers(vapid: Vapid02, aud: str, **claims: Any) -> dict[str, str]:
    """What a well-behaved sender sends (py_vapid validates aud and sub itself)."""
    return dict(vapid.sign({"aud": aud, "sub": CONTACT, **claims}))


def raw_vapid_headers(vapid: Vapid02, claims: dict[str, Any]) -> dict[str, str]:
    """Sign arbitrary claims, bypassing py_vapid's checks, to build bad tokens."""
    token = jwt_sign(claims, vapid.private_key)
    return {"Authorization": f"vapid t={token}, k={public_key_b64(vapid)}"}


def encrypt(subscription: dict[str, Any], payload: dict[str, Any] | bytes) -> bytes:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    body: bytes = WebPusher(subscription).encode(data)["body"]
    return body


def push_headers(vapid: Vapid02, aud: str, **extra: str) -> dict[str, str]:
    return {**vapid_headers(vapid, aud), "TTL": "60", "Content-Encoding": "aes128gcm", **extra}


def push(
    standin: PushStandin,
    subscription: dict[str, Any],
    vapid: Vapid02,
    payload: dict[str, Any] | None = None,
    *,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    **kwargs: Any,
) -> requests.Response:
    if body is None:
        body = encrypt(subscription, payload or {"title": "Breaking", "body": "News"})
    if headers is None:
        headers = push_headers(vapid, standin.origin)
    kwargs.setdefault("timeout", 10)
    kwargs.setdefault("allow_redirects", False)
    return requests.post(subscription["endpoint"], data=body, headers=headers, **kwargs)


@pytest.fixture
def standin() -> Iterator[PushStandin]:
    with PushStandin() as server:
        yield server


@pytest.fixture(scope="module")
def vapid() -> Vapid02:
    return new_vapid()


# ---------------------------------------------------------------------- delivery


def test_delivers_and_decrypts(standin: PushStandin, vapid: Vapid02) -> None:
    sub = standin.create_subscription()
    assert sub["endpoint"].startswith(f"{standin.origin}/push/")
    assert sub["expirationTime"] is None
    assert set(sub["keys"]) == {"p256dh", "auth"}

    payload = {"title": "Election called", "body": "Results at 10", "url": "https://e.org/1"}
    resp = push(
        standin,
        sub,
        vapid,
        payload,
        headers=push_headers(vapid, standin.origin, TTL="3600", Urgency="high", Topic="election"),
    )

    assert resp.status_code == 201
    assert resp.headers["Location"].startswith(standin.origin)
    assert resp.headers["TTL"] == "3600"
    (got,) = standin.wait_for(1, timeout_s=5)
    assert got.payload == payload
    assert got.ttl == 3600
    assert got.status == 201
    assert got.headers["urgency"] == "high"
    assert got.vapid_sub == CONTACT
    assert got.vapid_key == public_key_b64(vapid)
    assert got.endpoint == sub["endpoint"]
    assert standin.deliveries_for(sub["endpoint"]) == [got]
    assert standin.rejected == []


def test_payloadless_push_and_non_json_payload(standin: PushStandin, vapid: Vapid02) -> None:
    sub = standin.create_subscription()
    empty = {**vapid_headers(vapid, standin.origin), "TTL": "0"}
    assert push(standin, sub, vapid, headers=empty, body=b"").status_code == 201
    assert push(standin, sub, vapid, body=encrypt(sub, b"plain text")).status_code == 201
    first, second = standin.wait_for(2, timeout_s=5)
    assert (first.payload, first.raw_len) == (None, 0)
    assert (second.payload, second.plaintext) == (None, b"plain text")


def test_unknown_token_is_404_and_rejected(standin: PushStandin, vapid: Vapid02) -> None:
    sub = standin.create_subscription()
    bogus = {**sub, "endpoint": f"{standin.origin}/push/nope"}
    resp = push(standin, bogus, vapid, body=encrypt(sub, {"x": 1}))
    assert resp.status_code == 404
    assert [(r.token, r.status) for r in standin.rejected] == [("nope", 404)]


# ---------------------------------------------------------------------- VAPID checks


def _claims(standin: PushStandin, **overrides: Any) -> dict[str, Any]:
    return {"aud": standin.origin, "exp": int(time.time()) + 3600, "sub": CONTACT, **overrides}


def _refused(standin: PushStandin, vapid: Vapid02, auth: dict[str, str]) -> tuple[int, str]:
    sub = standin.create_subscription()
    headers = {**auth, "TTL": "60", "Content-Encoding": "aes128gcm"}
    resp = push(standin, sub, vapid, headers=headers)
    assert resp.headers["Content-Type"].startswith("application/json")
    assert standin.received == []
    last = standin.rejected[-1]
    assert last.status == resp.status_code
    assert resp.json()["reason"] == last.reason
    return resp.status_code, last.reason


def test_good_hand_made_token_is_accepted(standin: PushStandin, vapid: Vapid02) -> None:
    sub = standin.create_subscription()
    headers = {
        **raw_vapid_headers(vapid, _claims(standin)),
        "TTL": "5",
        "Content-Encoding": "aes128gcm",
    }
    assert push(standin, sub, vapid, headers=headers).status_code == 201


def test_bad_signature_is_401(standin: PushStandin, vapid: Vapid02) -> None:
    other = new_vapid()
    token = jwt_sign(_claims(standin), other.private_key)
    auth = {"Authorization": f"vapid t={token}, k={public_key_b64(vapid)}"}
    status, reason = _refused(standin, vapid, auth)
    assert status == 401
    assert "signature" in reason


def test_tampered_claims_are_401(standin: PushStandin, vapid: Vapid02) -> None:
    token = jwt_sign(_claims(standin), vapid.private_key)
    header, _, signature = token.split(".")
    forged = b64urlencode(json.dumps(_claims(standin, sub="mailto:evil@x.org")).encode())
    auth = {"Authorization": f"vapid t={header}.{forged}.{signature}, k={public_key_b64(vapid)}"}
    assert _refused(standin, vapid, auth)[0] == 401


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"aud": "http://127.0.0.1:1"}, "aud"),
        ({"exp": int(time.time()) + 25 * 3600}, "exp"),
        ({"exp": int(time.time()) - 10}, "expired"),
        ({"exp": "tomorrow"}, "exp"),
        ({"sub": "newsroom@example.org"}, "sub"),
        ({"sub": "http://example.org"}, "sub"),
    ],
)
def test_bad_claims_are_401(
    standin: PushStandin, vapid: Vapid02, overrides: dict[str, Any], needle: str
) -> None:
    status, reason = _refused(
        standin, vapid, raw_vapid_headers(vapid, _claims(standin, **overrides))
    )
    assert status == 401
    assert needle in reason


def test_aud_must_match_exactly(standin: PushStandin, vapid: Vapid02) -> None:
    aud = standin.origin.replace("127.0.0.1", "localhost")
    status, reason = _refused(standin, vapid, vapid_headers(vapid, aud))
    assert (status, "aud" in reason) == (401, True)


def test_missing_or_foreign_authorization_is_401(standin: PushStandin, vapid: Vapid02) -> None:
    assert _refused(standin, vapid, {})[0] == 401
    token = jwt_sign(_claims(standin), vapid.private_key)
    assert _refused(standin, vapid, {"Authorization": f"WebPush {token}"})[0] == 401
    assert _refused(standin, vapid, {"Authorization": f"vapid t={token}"})[0] == 401
    assert _refused(standin, vapid, {"Authorization": f"vapid t={token}, k=AAAA"})[0] == 401


def test_non_es256_header_is_401(standin: PushStandin, vapid: Vapid02) -> None:
    token = jwt_sign(_claims(standin), vapid.private_key)
    _, claims, signature = token.split(".")
    header = b64urlencode(b'{"typ":"JWT","alg":"none"}')
    auth = {"Authorization": f"vapid t={header}.{claims}.{signature}, k={public_key_b64(vapid)}"}
    status, reason = _refused(standin, vapid, auth)
    assert (status, "ES256" in reason) == (401, True)


def test_key_other_than_application_server_key_is_403(standin: PushStandin, vapid: Vapid02) -> None:
    sub = standin.create_subscription(application_server_key=public_key_b64(vapid))
    assert push(standin, sub, vapid).status_code == 201
    intruder = new_vapid()
    resp = push(standin, sub, intruder, headers=push_headers(intruder, standin.origin))
    assert resp.status_code == 403
    assert standin.rejected[-1].status == 403


def test_exp_limit_follows_max_age(vapid: Vapid02) -> None:
    with PushStandin(max_age_s=600) as short:
        sub = short.create_subscription()
        headers = {
            **raw_vapid_headers(vapid, _claims(short, exp=int(time.time()) + 3600)),
            "TTL": "60",
            "Content-Encoding": "aes128gcm",
        }
        assert push(short, sub, vapid, headers=headers).status_code == 401


# ---------------------------------------------------------------------- RFC 8030 header checks


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"TTL": None}, 400),
        ({"TTL": "-1"}, 400),
        ({"TTL": "soon"}, 400),
        ({"Content-Encoding": None}, 400),
        ({"Content-Encoding": "aesgcm"}, 415),
        ({"Urgency": "urgent"}, 400),
        ({"Topic": "not a valid topic!"}, 400),
        ({"Topic": "t" * 33}, 400),
    ],
)
def test_header_violations(
    standin: PushStandin, vapid: Vapid02, change: dict[str, str | None], status: int
) -> None:
    sub = standin.create_subscription()
    headers = push_headers(vapid, standin.origin)
    for name, value in change.items():
        headers.pop(name, None)
        if value is not None:
            headers[name] = value
    assert push(standin, sub, vapid, headers=headers).status_code == status
    assert standin.received == []
    assert standin.rejected[-1].status == status


def test_oversize_body_is_413(standin: PushStandin, vapid: Vapid02) -> None:
    sub = standin.create_subscription()
    body = encrypt(sub, {"body": "x" * MAX_BODY_BYTES})
    assert len(body) > MAX_BODY_BYTES
    assert push(standin, sub, vapid, body=body).status_code == 413

    # Chunked upload, so there is no Content-Length to go by.
    chunks = iter([body[:2000], body[2000:]])
    assert push(standin, sub, vapid, body=chunks).status_code == 413  # type: ignore[arg-type]
    assert [r.status for r in standin.rejected] == [413, 413]


def test_largest_allowed_body_is_delivered(standin: PushStandin, vapid: Vapid02) -> None:
    sub = standin.create_subscription()
    # aes128gcm adds 86 header + 16 tag + 1 delimiter bytes around the plaintext.
    body = encrypt(sub, b"y" * (MAX_BODY_BYTES - 103))
    assert len(body) == MAX_BODY_BYTES
    assert push(standin, sub, vapid, body=body).status_code == 201


def test_undecryptable_body_is_400(standin: PushStandin, vapid: Vapid02) -> None:
    sub = standin.create_subscription()
    someone_else = standin.create_subscription()
    resp = push(standin, sub, vapid, body=encrypt(someone_else, {"x": 1}))
    assert resp.status_code == 400
    assert "decrypt" in standin.rejected[-1].reason
    assert push(standin, sub, vapid, body=b"\x00" * 10).status_code == 400
    assert standin.attempts == []


# ---------------------------------------------------------------------- modes


def test_gone_forbidden_and_not_acceptable(standin: PushStandin, vapid: Vapid02) -> None:
    expected = {"gone404": 404, "gone410": 410, "forbidden": 403, "notacceptable": 406}
    for mode, status in expected.items():
        sub = standin.create_subscription(mode)
        resp = push(standin, sub, vapid)
        assert resp.status_code == status, mode
    assert (
        push(standin, standin.create_subscription("notacceptable", retry_after=9), vapid).headers[
            "Retry-After"
        ]
        == "9"
    )
    assert standin.received == []
    assert [a.status for a in standin.attempts] == [404, 410, 403, 406, 406]


def test_throttle_then_ok(standin: PushStandin, vapid: Vapid02) -> None:
    sub = standin.create_subscription("throttle", retry_after=7, times=2)
    responses = [push(standin, sub, vapid) for _ in range(3)]
    assert [r.status_code for r in responses] == [429, 429, 201]
    assert responses[0].headers["Retry-After"] == "7"
    assert len(standin.received) == 1
    assert [a.status for a in standin.attempts] == [429, 429, 201]


def test_throttle_defaults_to_30s_forever(standin: PushStandin, vapid: Vapid02) -> None:
    sub = standin.create_subscription("throttle")
    for _ in range(3):
        resp = push(standin, sub, vapid)
        assert (resp.status_code, resp.headers["Retry-After"]) == (429, "30")


def test_error_mode(standin: PushStandin, vapid: Vapid02) -> None:
    sub = standin.create_subscription("error")
    assert push(standin, sub, vapid).status_code == 503
    standin.set_mode(sub["endpoint"], "error", status=500, times=1)
    assert [push(standin, sub, vapid).status_code for _ in range(2)] == [500, 201]


def test_slow_mode(standin: PushStandin, vapid: Vapid02) -> None:
    sub = standin.create_subscription("slow", delay_s=0.4)
    started = time.monotonic()
    assert push(standin, sub, vapid).status_code == 201
    assert time.monotonic() - started >= 0.4
    assert len(standin.received) == 1


def test_hang_mode_never_answers_and_stop_is_prompt(vapid: Vapid02) -> None:
    server = PushStandin().start()
    try:
        sub = server.create_subscription("hang")
        started = time.monotonic()
        with pytest.raises(requests.exceptions.ReadTimeout):
            push(server, sub, vapid, timeout=(5, 0.5))
        assert time.monotonic() - started < 3
        assert [a.status for a in server.attempts] == [NO_ANSWER]
        assert server.received == []
    finally:
        started = time.monotonic()
        server.stop()
    assert time.monotonic() - started < 3


def test_trickle_mode_drips_a_huge_body(standin: PushStandin, vapid: Vapid02) -> None:
    sub = standin.create_subscription("trickle", chunk_size=256, interval_s=0.05)
    started = time.monotonic()
    with push(standin, sub, vapid, stream=True) as resp:
        assert resp.status_code == 200
        assert int(resp.headers["Content-Length"]) >= 50 * 1024 * 1024
        got = 0
        for chunk in resp.iter_content(256):
            got += len(chunk)
            if got >= 2048:
                break
    elapsed = time.monotonic() - started
    assert 2048 <= got < 10_000
    assert elapsed >= 0.3  # 8 chunks, 50 ms apart
    assert standin.received[0].status == 200


def test_redirect_mode(standin: PushStandin, vapid: Vapid02) -> None:
    sub = standin.create_subscription("redirect", location="https://elsewhere.example/push")
    resp = push(standin, sub, vapid)
    assert (resp.status_code, resp.headers["Location"]) == (307, "https://elsewhere.example/push")

    standin.set_mode(sub["endpoint"], "redirect")
    assert standin.redirects_followed == 0
    followed = push(standin, sub, vapid, allow_redirects=True)
    assert followed.status_code == 201
    assert standin.redirects_followed == 1
    assert standin.received == []


def test_host_mode_overrides_every_endpoint(standin: PushStandin, vapid: Vapid02) -> None:
    subs = standin.create_subscriptions(3)
    standin.set_host_mode("forbidden")
    assert [push(standin, s, vapid).status_code for s in subs] == [403, 403, 403]
    standin.set_host_mode(None)
    assert [push(standin, s, vapid).status_code for s in subs] == [201, 201, 201]


def test_set_mode_validates(standin: PushStandin) -> None:
    sub = standin.create_subscription()
    with pytest.raises(ValueError, match="unknown mode"):
        standin.set_mode(sub["endpoint"], "explode")
    with pytest.raises(ValueError, match="unknown mode parameter"):
        standin.set_mode(sub["endpoint"], "throttle", retry_afer=3)
    with pytest.raises(KeyError):
        standin.set_mode("no-such-token", "ok")


def test_wait_for_timeout_explains(standin: PushStandin, vapid: Vapid02) -> None:
    sub = standin.create_subscription("throttle")
    push(standin, sub, vapid)
    with pytest.raises(TimeoutError, match=r"expected 1 deliveries .* got 0.*'429': 1"):
        standin.wait_for(1, timeout_s=0.2)


def test_reset(standin: PushStandin, vapid: Vapid02) -> None:
    sub = standin.create_subscription("throttle")
    push(standin, sub, vapid)
    standin.set_host_mode("gone410")
    standin.reset()
    assert (standin.attempts, standin.received, standin.rejected) == ([], [], [])
    assert push(standin, sub, vapid).status_code == 201  # modes back to ok, keys kept
    standin.reset(subscriptions=True)
    assert push(standin, sub, vapid).status_code == 404


# ---------------------------------------------------------------------- control API


def test_control_api(standin: PushStandin, vapid: Vapid02) -> None:
    api = f"{standin.origin}/_standin"
    created = requests.post(f"{api}/subscriptions", json={"count": 3}, timeout=10).json()
    subs = created["subscriptions"]
    assert len(subs) == 3

    resp = requests.post(
        f"{api}/mode",
        json={"endpoint": subs[1]["endpoint"], "mode": "throttle", "params": {"retry_after": 5}},
        timeout=10,
    )
    assert resp.status_code == 200
    statuses = [
        push(standin, s, vapid, {"title": f"n{i}", "body": "b", "url": "https://e.org"}).status_code
        for i, s in enumerate(subs)
    ]
    assert statuses == [201, 429, 201]

    received = requests.get(f"{api}/received", timeout=10).json()
    assert received["count"] == 2
    assert [r["payload"]["title"] for r in received["received"]] == ["n0", "n2"]
    assert received["received"][0]["headers"]["ttl"] == "60"
    assert {"token", "headers", "payload", "at"} <= set(received["received"][0])
    later = requests.get(f"{api}/received", params={"since": 1}, timeout=10).json()
    assert [r["payload"]["title"] for r in later["received"]] == ["n2"]

    stats = requests.get(f"{api}/stats", timeout=10).json()
    assert stats["by_status"] == {"201": 2, "429": 1}
    assert (stats["delivered"], stats["subscriptions"]) == (2, 3)

    page = requests.get(f"{standin.origin}/", timeout=10)
    assert page.headers["Content-Type"].startswith("text/html")
    assert "n2" in page.text and "https://e.org" in page.text

    requests.post(f"{api}/host-mode", json={"mode": "gone410"}, timeout=10)
    assert push(standin, subs[0], vapid).status_code == 410
    requests.post(f"{api}/host-mode", json={"mode": None}, timeout=10)

    assert requests.post(f"{api}/reset", timeout=10).status_code == 200
    assert requests.get(f"{api}/stats", timeout=10).json()["attempts"] == 0
    assert push(standin, subs[1], vapid).status_code == 201


def test_control_api_creates_with_mode_and_rejects_garbage(standin: PushStandin) -> None:
    api = f"{standin.origin}/_standin"
    made = requests.post(
        f"{api}/subscriptions",
        json={"count": 2, "mode": "error", "params": {"status": 502}},
        timeout=10,
    ).json()["subscriptions"]
    assert len(made) == 2
    bad = requests.post(f"{api}/subscriptions", json={"count": 1, "mode": "nope"}, timeout=10)
    assert bad.status_code == 400 and "unknown mode" in bad.json()["reason"]
    assert requests.post(f"{api}/subscriptions", data=b"{", timeout=10).status_code == 400
    missing = requests.post(
        f"{api}/mode", json={"endpoint": "http://x/push/none", "mode": "ok"}, timeout=10
    )
    assert missing.status_code == 404
    assert requests.get(f"{api}/received?since=-1", timeout=10).status_code == 400


def test_page_escapes_payloads(standin: PushStandin, vapid: Vapid02) -> None:
    sub = standin.create_subscription()
    push(standin, sub, vapid, {"notification": {"title": "<script>x</script>", "url": "js:1"}})
    page = requests.get(f"{standin.origin}/", timeout=10).text
    assert "<script>x" not in page and "&lt;script&gt;x" in page


# ---------------------------------------------------------------------- TLS and persistence


def test_tls_mode(vapid: Vapid02) -> None:
    with PushStandin(tls=True) as secure:
        assert secure.origin.startswith("https://127.0.0.1:")
        assert secure.ca_file is not None and Path(secure.ca_file).is_file()
        sub = secure.create_subscription()
        resp = push(secure, sub, vapid, verify=secure.ca_file)
        assert resp.status_code == 201
        assert secure.wait_for(1, timeout_s=5)[0].payload == {"title": "Breaking", "body": "News"}
        with pytest.raises(requests.exceptions.SSLError):
            push(secure, sub, vapid, verify=True)
        ca_file = secure.ca_file
    assert not Path(ca_file).exists()


def test_state_file_survives_restart(tmp_path: Path, vapid: Vapid02) -> None:
    state = tmp_path / "standin.json"
    with PushStandin(state_file=state) as first:
        sub = first.create_subscription()
        throttled = first.create_subscription("throttle")
        port = first.port
    assert state.stat().st_mode & 0o077 == 0
    with PushStandin(port=port, state_file=state) as second:
        assert push(second, sub, vapid).status_code == 201
        assert push(second, throttled, vapid).status_code == 429
        assert second.received[0].payload == {"title": "Breaking", "body": "News"}


def test_start_fails_loudly_on_busy_port() -> None:
    with PushStandin() as first, pytest.raises(OSError):
        PushStandin(port=first.port).start()


# ---------------------------------------------------------------------- speed


def test_bulk_subscription_creation_makes_distinct_subscribers(standin: PushStandin) -> None:
    # Speed is a benchmark's business (bench/); here only correctness at volume.
    subs = standin.create_subscriptions(5_000)
    assert len({s["endpoint"] for s in subs}) == 5_000
    assert len({s["keys"]["auth"] for s in subs}) == 5_000


def test_many_concurrent_pushes_all_decrypt(standin: PushStandin, vapid: Vapid02) -> None:
    count = 600
    subs = standin.create_subscriptions(50)
    headers = push_headers(vapid, standin.origin)
    jobs = [(subs[i % 50], encrypt(subs[i % 50], {"n": i})) for i in range(count)]

    async def fire() -> list[int]:
        limit = aiohttp.TCPConnector(limit=32)
        async with aiohttp.ClientSession(connector=limit) as session:

            async def one(sub: dict[str, Any], body: bytes) -> int:
                async with session.post(sub["endpoint"], data=body, headers=headers) as resp:
                    return resp.status

            return await asyncio.gather(*(one(s, b) for s, b in jobs))

    statuses = asyncio.run(fire())
    assert statuses == [201] * count
    assert sorted(r.payload["n"] for r in standin.wait_for(count, 30) if r.payload) == list(
        range(count)
    )
