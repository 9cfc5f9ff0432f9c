"""End-to-end web push into a real headless Firefox through the Mozilla push stand-in.

A minimal page with the product's service worker is served from 127.0.0.1; Firefox
subscribes for real, the test sends an RFC 8291/8292 push of a Declarative Web Push message
with pywebpush, and the notification Firefox shows is found and clicked, which must open the
article's URL.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from cryptography.hazmat.primitives import serialization
from py_vapid import Vapid
from pywebpush import WebPushException, webpush

from core.base64url import b64url_decode, b64url_encode
from core.payload import payload_dict
from standin.declarative import declarative_problems
from standin.mozilla import ACK_DELIVERED, MozillaPushServer
from tests.support.firefox import Firefox, find_firefox, launch_firefox

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]


@pytest.fixture
def firefox_binary() -> str:
    binary = find_firefox()
    if binary is None:
        if os.environ.get("CI", "").lower() == "true":
            # In CI a missing browser is a broken setup, not a reason to skip.
            pytest.fail("firefox-esr is not installed but CI=true (apt-get install firefox-esr)")
        pytest.skip("firefox-esr is not installed (apt-get install firefox-esr)")
    return binary


PAGE_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>push harness</title></head>
<body>
<button id="subscribe">Subscribe</button>
<pre id="out"></pre>
<script>
const key = new URLSearchParams(location.search).get("key");

function keyBytes(b64url) {
  const b64 = b64url.replace(/-/g, "+").replace(/_/g, "/");
  const raw = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(raw, c => c.charCodeAt(0));
}

async function subscribe() {
  const reg = await navigator.serviceWorker.register("/sw.js");
  await navigator.serviceWorker.ready;
  const sub = await reg.pushManager.subscribe({
    userVisibleOnly: true,
    applicationServerKey: keyBytes(key),
  });
  const json = JSON.stringify(sub.toJSON());
  document.getElementById("out").textContent = json;
  return json;
}

document.getElementById("subscribe").addEventListener("click", () => {
  window.subscription = subscribe().catch(err => {
    document.getElementById("out").textContent = "ERROR " + err;
    throw err;
  });
});
</script>
</body></html>
"""

# The product's service worker: it reads the Declarative Web Push message the fan-out sends.
# Its calls to the API (config, reports) get this page server's 404/501 and change nothing.
SW_JS = (Path(__file__).resolve().parents[2] / "service" / "static" / "sw.js").read_text()


def _message(alert_id: int, title: str, body: str, url: str, tag: str) -> dict[str, Any]:
    """What the fan-out encrypts: a declarative push message with our fields beside it."""
    message = payload_dict(alert_id, title, body, url, tag, int(time.time()), lang="sw")
    assert declarative_problems(message) == []
    return message


class _PageHandler(BaseHTTPRequestHandler):
    server: _PageServer

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        self.server.record(path)
        if path == "/":
            self._send(200, "text/html; charset=utf-8", PAGE_HTML)
        elif path == "/sw.js":
            self._send(200, "text/javascript; charset=utf-8", SW_JS)
        elif path.startswith("/article/"):
            slug = path.rsplit("/", 1)[-1]
            self._send(200, "text/html; charset=utf-8", f"<!doctype html><title>{slug}</title>")
        else:
            self._send(404, "text/plain", "not found")

    def _send(self, status: int, content_type: str, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _PageServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _PageHandler)
        self.paths: list[str] = []
        self._lock = threading.Lock()

    def record(self, path: str) -> None:
        with self._lock:
            self.paths.append(path)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def page_server() -> Iterator[_PageServer]:
    server = _PageServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def push_server(firefox_binary: str) -> Iterator[MozillaPushServer]:
    with MozillaPushServer() as server:
        yield server


@pytest.fixture
def firefox(push_server: MozillaPushServer, firefox_binary: str) -> Iterator[Firefox]:
    with launch_firefox(push_server.ws_url, binary=firefox_binary) as ff:
        yield ff


def _vapid_keys() -> tuple[str, str]:
    """A fresh VAPID key pair: (private key for pywebpush, applicationServerKey)."""
    vapid = Vapid()
    vapid.generate_keys()
    private = b64url_encode(vapid.private_key.private_numbers().private_value.to_bytes(32, "big"))
    public = vapid.public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return private, b64url_encode(public)


def _subscribe(
    firefox: Firefox, page_server: _PageServer, push_server: MozillaPushServer, app_key: str
) -> dict[str, Any]:
    """Subscribe for real, by clicking the page's button (a user gesture)."""
    firefox.navigate(f"{page_server.origin}/?key={app_key}")
    firefox.click("#subscribe")
    subscription: dict[str, Any] = json.loads(
        firefox.execute("return window.subscription;", timeout_s=20)
    )
    assert subscription["endpoint"].startswith(f"{push_server.origin}/wpush/")
    assert {"p256dh", "auth"} <= set(subscription["keys"])
    return subscription


def _send(subscription: dict[str, Any], vapid_private: str, message: dict[str, Any]) -> str:
    """POST an aes128gcm, VAPID-signed push; returns the message id (version) it got."""
    response = webpush(
        subscription,
        data=json.dumps(message),
        vapid_private_key=vapid_private,
        vapid_claims={"sub": "mailto:test@example.com"},
        ttl=60,
    )
    assert response.status_code == 201
    return str(response.headers["Location"].rsplit("/", 1)[-1])


def test_push_reaches_firefox_and_click_opens_article(
    push_server: MozillaPushServer, page_server: _PageServer, firefox: Firefox
) -> None:
    started = time.monotonic()
    vapid_private, app_server_key = _vapid_keys()
    subscription = _subscribe(firefox, page_server, push_server, app_server_key)

    registration = push_server.wait_for_registration(timeout_s=5)
    assert registration["pushEndpoint"] == subscription["endpoint"]
    assert b64url_decode(registration["key"]) == b64url_decode(app_server_key)

    article_url = f"{page_server.origin}/article/breaking-42"
    message = _message(
        42, "Breaking: harness works", "Pushed through the Mozilla stand-in", article_url, "nf42"
    )
    # A push signed with some other VAPID key is refused (RFC 8292 4.2) and never delivered.
    intruder_private, _ = _vapid_keys()
    with pytest.raises(WebPushException) as refused:
        _send(subscription, intruder_private, message)
    assert refused.value.response is not None
    assert refused.value.response.status_code == 403

    version = _send(subscription, vapid_private, message)

    # Code 100: Firefox decrypted the message and handed it to the service worker.
    ack = push_server.wait_for_ack(timeout_s=15, version=version)
    assert ack["code"] == ACK_DELIVERED, ack
    assert ack["channelID"] == registration["channelID"]

    shown = firefox.wait_for_notification(message["title"], timeout_s=15)
    assert shown.body == message["body"]
    assert shown.clickable
    assert urlsplit(page_server.origin).netloc in shown.source
    [page_side] = firefox.page_notifications(tag=message["tag"])
    assert page_side["title"] == message["title"]
    assert page_side["data"] == {"url": article_url, "id": "42"}
    assert page_side["lang"] == "sw"

    firefox.click_notification(message["title"])
    assert firefox.wait_for_tab(article_url, timeout_s=15) == article_url
    # The click consumed the alert: it closed, and the worker closed the notification.
    firefox.wait_until(lambda: not firefox.notifications(), 5, "the alert to close")
    assert firefox.page_notifications(tag=message["tag"]) == []
    assert "/article/breaking-42" in page_server.paths

    assert firefox.stray_requests == [], "Firefox tried to leave loopback"
    assert push_server.nacks == []
    assert [a["version"] for a in push_server.acks] == [version]
    assert time.monotonic() - started < 60


def test_push_sent_while_disconnected_arrives_on_reconnect(
    push_server: MozillaPushServer, page_server: _PageServer, firefox: Firefox
) -> None:
    vapid_private, app_server_key = _vapid_keys()
    subscription = _subscribe(firefox, page_server, push_server, app_server_key)
    uaid = push_server.wait_for_registration(timeout_s=5)["uaid"]

    # The push service "restarts": sockets close and reconnects are refused for a while,
    # so the push below is stored, as autopush does for TTL > 0.
    assert push_server.drop_connections(refuse_for_s=2.0) == 1
    message = _message(
        43,
        "Queued while offline",
        "Delivered on reconnect",
        f"{page_server.origin}/article/queued-43",
        "nf43",
    )
    version = _send(subscription, vapid_private, message)
    assert push_server.pushes[-1]["delivered_now"] is False

    ack = push_server.wait_for_ack(timeout_s=20, version=version)
    assert ack["code"] == ACK_DELIVERED, ack
    # Firefox resumed with its uaid and the server kept it, so the subscription survived.
    assert push_server.hellos[-1]["sent_uaid"] == uaid
    assert push_server.hellos[-1]["uaid"] == uaid
    assert firefox.wait_for_notification(message["title"], timeout_s=15).body == message["body"]
    assert firefox.stray_requests == []
