"""Stand-in for Mozilla autopush: Firefox's WebSocket push service plus its HTTP push endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web
from cryptography.hazmat.primitives.asymmetric import ec

from core.base64url import b64url_decode, b64url_encode
from standin import vapid

log = logging.getLogger(__name__)

# Firefox only accepts a push server that speaks this WebSocket subprotocol.
SUBPROTOCOL = "push-notification"
# Autopush's limit on the encrypted body; RFC 8030 lets a push service refuse larger ones (413).
MAX_PAYLOAD_BYTES = 4096
# Ack codes Firefox sends (PushServiceWebSocket.sys.mjs kACK_STATUS_TO_CODE).
ACK_DELIVERED = 100
ACK_DECRYPTION_ERROR = 101
ACK_NOT_DELIVERED = 102


class PushRejected(Exception):
    """An HTTP push request the service refuses; carries the status to answer with."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class _Registration:
    uaid: str
    channel_id: str
    key: bytes | None
    endpoint_id: str
    active: bool = True


@dataclass
class _Message:
    uaid: str
    channel_id: str
    version: str
    data: str | None
    headers: dict[str, str]
    expires_at: float
    sent: bool = False


@dataclass
class _Client:
    uaid: str
    ws: web.WebSocketResponse


class MozillaPushServer:
    """Autopush look-alike on one loopback port: WebSocket at `/`, push endpoints `/wpush/<id>`.

    Runs its own event loop in a background thread so synchronous tests can drive it.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        # The push service must never listen beyond loopback: it is a test double.
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"MozillaPushServer binds to loopback only, not {host!r}")
        self._host = host
        self._requested_port = port
        self._port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._stop_event: asyncio.Event | None = None
        self._startup_error: BaseException | None = None
        self._started = threading.Event()

        # Everything below is shared with the test thread; guard it with one condition.
        self._cond = threading.Condition()
        self._registrations: list[dict[str, Any]] = []
        self._acks: list[dict[str, Any]] = []
        self._nacks: list[dict[str, Any]] = []
        self._hellos: list[dict[str, Any]] = []
        self._pushes: list[dict[str, Any]] = []
        self._consumed_acks: set[int] = set()
        self._consumed_registrations: set[int] = set()

        # Loop-thread-only state.
        self._by_channel: dict[str, _Registration] = {}
        self._by_endpoint: dict[str, _Registration] = {}
        self._pending: dict[str, list[_Message]] = {}
        self._clients: dict[str, _Client] = {}
        self._refuse_until = 0.0

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self, timeout_s: float = 10.0) -> MozillaPushServer:
        """Start serving in a background thread; returns once the port is bound."""
        if self._thread is not None:
            raise RuntimeError("MozillaPushServer already started")
        self._thread = threading.Thread(target=self._run, name="mozilla-push", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout_s):
            raise TimeoutError("MozillaPushServer did not start in time")
        if self._startup_error is not None:
            raise RuntimeError("MozillaPushServer failed to start") from self._startup_error
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Close client sockets, stop the loop and join the thread. Safe to call twice."""
        loop, stop_event, thread = self._loop, self._stop_event, self._thread
        if loop is None or thread is None:
            return
        if stop_event is not None and loop.is_running():
            with contextlib.suppress(RuntimeError):  # the loop closed in the meantime
                loop.call_soon_threadsafe(stop_event.set)
        thread.join(timeout_s)
        if thread.is_alive():
            log.warning("MozillaPushServer thread did not exit within %.1fs", timeout_s)
        self._thread = None

    def __enter__(self) -> MozillaPushServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # surface bind errors etc. to start()
            self._startup_error = exc
            log.exception("MozillaPushServer crashed")
        finally:
            self._started.set()
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self) -> None:
        self._stop_event = asyncio.Event()
        app = web.Application(client_max_size=MAX_PAYLOAD_BYTES * 4)
        app.router.add_get("/", self._handle_ws)
        app.router.add_post("/wpush/{endpoint_id}", self._handle_push)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        self._runner = runner
        site = web.TCPSite(runner, self._host, self._requested_port)
        await site.start()
        # With port 0 the OS picks the port; runner.addresses reports what was bound.
        self._port = int(runner.addresses[0][1])
        self._started.set()
        try:
            await self._stop_event.wait()
        finally:
            for client in list(self._clients.values()):
                with contextlib.suppress(Exception):
                    await client.ws.close()
            await runner.cleanup()

    # ---- public, thread-safe views ---------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("MozillaPushServer is not started")
        return self._port

    @property
    def ws_url(self) -> str:
        """What Firefox's `dom.push.serverURL` pref should be set to."""
        return f"ws://{self._netloc}/"

    @property
    def origin(self) -> str:
        """Origin of the push endpoints; VAPID `aud` must equal this."""
        return f"http://{self._netloc}"

    @property
    def _netloc(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{host}:{self.port}"

    @property
    def registrations(self) -> list[dict[str, Any]]:
        """Each `register` seen: uaid, channelID, key (as sent, or None), pushEndpoint."""
        with self._cond:
            return [dict(r) for r in self._registrations]

    @property
    def acks(self) -> list[dict[str, Any]]:
        """Each ack update from the browser: channelID, version, code (100 = delivered)."""
        with self._cond:
            return [dict(a) for a in self._acks]

    @property
    def nacks(self) -> list[dict[str, Any]]:
        with self._cond:
            return [dict(n) for n in self._nacks]

    @property
    def hellos(self) -> list[dict[str, Any]]:
        """Each completed handshake: the uaid the client sent (or None) and the one it got."""
        with self._cond:
            return [dict(h) for h in self._hellos]

    @property
    def pushes(self) -> list[dict[str, Any]]:
        """Each accepted POST: channelID, version, ttl, bytes, delivered_now."""
        with self._cond:
            return [dict(p) for p in self._pushes]

    def wait_for_ack(
        self,
        timeout_s: float = 10.0,
        *,
        version: str | None = None,
        channel_id: str | None = None,
    ) -> dict[str, Any]:
        """Return the oldest ack (optionally of this version/channel) not yet returned here."""

        def match(a: dict[str, Any]) -> bool:
            return (version is None or a.get("version") == version) and (
                channel_id is None or a.get("channelID") == channel_id
            )

        return self._wait_for(
            self._acks, self._consumed_acks, match, timeout_s, "ack", lambda: self._acks
        )

    def wait_for_registration(self, timeout_s: float = 10.0) -> dict[str, Any]:
        """Return the oldest `register` not yet returned here."""
        return self._wait_for(
            self._registrations,
            self._consumed_registrations,
            lambda _r: True,
            timeout_s,
            "registration",
            lambda: self._registrations,
        )

    def _wait_for(
        self,
        items: list[dict[str, Any]],
        consumed: set[int],
        match: Callable[[dict[str, Any]], bool],
        timeout_s: float,
        what: str,
        seen: Callable[[], list[dict[str, Any]]],
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                for index, item in enumerate(items):
                    if index not in consumed and match(item):
                        consumed.add(index)
                        return dict(item)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"no matching {what} within {timeout_s:.1f}s; seen: {seen()!r}"
                    )
                self._cond.wait(remaining)

    def drop_connections(self, refuse_for_s: float = 0.0, timeout_s: float = 5.0) -> int:
        """Close every browser socket, and refuse new ones for `refuse_for_s` seconds.

        Simulates the push service going away: pushes posted meanwhile are queued and
        delivered when the browser reconnects. Returns how many sockets were closed.
        """
        loop = self._loop
        if loop is None or not loop.is_running():
            raise RuntimeError("MozillaPushServer is not running")
        future = asyncio.run_coroutine_threadsafe(self._drop_connections(refuse_for_s), loop)
        return future.result(timeout_s)

    async def _drop_connections(self, refuse_for_s: float) -> int:
        self._refuse_until = time.monotonic() + refuse_for_s
        clients = list(self._clients.values())
        # Forget them first, so a push arriving while they close is queued, not sent.
        self._clients.clear()
        for client in clients:
            self._requeue_unacked(client.uaid)
            with contextlib.suppress(Exception):
                await client.ws.close()
        return len(clients)

    def _requeue_unacked(self, uaid: str) -> None:
        # Unacked messages go back to the queue, as autopush re-sends them on reconnect.
        for message in self._pending.get(uaid, []):
            message.sent = False

    def _record(self, target: list[dict[str, Any]], item: dict[str, Any]) -> None:
        with self._cond:
            target.append(item)
            self._cond.notify_all()

    # ---- WebSocket side: the protocol of PushServiceWebSocket.sys.mjs ----------------------

    async def _handle_ws(self, request: web.Request) -> web.StreamResponse:
        if time.monotonic() < self._refuse_until:
            # Firefox backs off and retries (dom.push.retryBaseInterval, doubling each time).
            return web.Response(status=503, text="push service unavailable")
        ws = web.WebSocketResponse(protocols=(SUBPROTOCOL,), autoping=True)
        await ws.prepare(request)
        client: _Client | None = None
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    data = json.loads(msg.data)
                except ValueError:
                    log.warning("push ws: invalid JSON %r", msg.data[:200])
                    continue
                if not isinstance(data, dict):
                    continue
                mtype = data.get("messageType")
                if mtype is None or mtype == "ping":
                    # Firefox pings with a bare "{}" and treats any "{}" reply as the pong.
                    await ws.send_str("{}")
                elif mtype == "hello":
                    client = await self._on_hello(ws, data, client)
                elif client is None:
                    # Autopush drops clients that skip the handshake.
                    log.warning("push ws: %s before hello; closing", mtype)
                    break
                elif mtype == "register":
                    await self._on_register(client, data)
                elif mtype == "unregister":
                    await self._on_unregister(client, data)
                elif mtype == "ack":
                    self._on_ack(client, data)
                elif mtype == "nack":
                    self._on_nack(client, data)
                elif mtype == "broadcast_subscribe":
                    # Broadcasts drive Remote Settings sync; replying with news would make
                    # Firefox fetch from the network, so subscriptions are accepted silently.
                    log.debug("push ws: broadcast_subscribe %r", data.get("broadcasts"))
                else:
                    log.warning("push ws: unknown messageType %r", mtype)
        finally:
            if client is not None and self._clients.get(client.uaid) is client:
                del self._clients[client.uaid]
                self._requeue_unacked(client.uaid)
        return ws

    async def _on_hello(
        self, ws: web.WebSocketResponse, data: dict[str, Any], current: _Client | None
    ) -> _Client:
        if current is not None:
            log.warning("push ws: second hello on one connection; keeping uaid %s", current.uaid)
            return current
        sent_uaid = data.get("uaid")
        # Accept the client's uaid (Firefox only sends one when it has subscriptions): a new
        # uaid would make Firefox drop every existing subscription (_handleHelloReply).
        if isinstance(sent_uaid, str) and re.fullmatch(r"[0-9A-Za-z-]{1,128}", sent_uaid):
            uaid = sent_uaid
        else:
            uaid = uuid.uuid4().hex
        previous = self._clients.get(uaid)
        if previous is not None:
            # One live connection per uaid, like autopush: the newest wins.
            with contextlib.suppress(Exception):
                await previous.ws.close()
        client = _Client(uaid=uaid, ws=ws)
        self._clients[uaid] = client
        await ws.send_json(
            {
                "messageType": "hello",
                "uaid": uaid,
                "status": 200,
                "use_webpush": True,
                "broadcasts": {},
            }
        )
        self._record(self._hellos, {"sent_uaid": sent_uaid, "uaid": uaid, "at": time.time()})
        # A new session has seen nothing yet: resend anything unacked (Firefox drops
        # duplicates by message id), then whatever queued while it was away.
        self._requeue_unacked(uaid)
        await self._flush(uaid)
        return client

    async def _on_register(self, client: _Client, data: dict[str, Any]) -> None:
        channel_id = data.get("channelID")
        if not isinstance(channel_id, str) or not channel_id:
            await client.ws.send_json({"messageType": "register", "status": 400})
            return
        key_b64 = data.get("key")
        key: bytes | None = None
        if isinstance(key_b64, str) and key_b64:
            try:
                key = b64url_decode(key_b64)
                ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), key)
            except ValueError:
                # RFC 8292 4: an unusable applicationServerKey fails the subscription.
                await client.ws.send_json(
                    {"messageType": "register", "channelID": channel_id, "status": 400}
                )
                return
        endpoint_id = secrets.token_urlsafe(24)
        registration = _Registration(client.uaid, channel_id, key, endpoint_id)
        old = self._by_channel.get(channel_id)
        if old is not None:
            old.active = False
        self._by_channel[channel_id] = registration
        self._by_endpoint[endpoint_id] = registration
        endpoint = f"{self.origin}/wpush/{endpoint_id}"
        await client.ws.send_json(
            {
                "messageType": "register",
                "channelID": channel_id,
                "status": 200,
                "pushEndpoint": endpoint,
            }
        )
        self._record(
            self._registrations,
            {
                "uaid": client.uaid,
                "channelID": channel_id,
                "key": key_b64 if key is not None else None,
                "pushEndpoint": endpoint,
            },
        )

    async def _on_unregister(self, client: _Client, data: dict[str, Any]) -> None:
        channel_id = data.get("channelID")
        registration = self._by_channel.get(channel_id) if isinstance(channel_id, str) else None
        if registration is not None and registration.uaid == client.uaid:
            registration.active = False
            del self._by_channel[registration.channel_id]
            self._pending[client.uaid] = [
                m for m in self._pending.get(client.uaid, []) if m.channel_id != channel_id
            ]
        # Autopush answers 200 even for unknown channels, so Firefox can forget them.
        await client.ws.send_json(
            {"messageType": "unregister", "channelID": channel_id, "status": 200}
        )

    def _on_ack(self, client: _Client, data: dict[str, Any]) -> None:
        updates = data.get("updates")
        if not isinstance(updates, list):
            return
        for update in updates:
            if not isinstance(update, dict):
                continue
            version = update.get("version")
            self._drop_pending(client.uaid, version)
            self._record(
                self._acks,
                {
                    "channelID": update.get("channelID"),
                    "version": version,
                    "code": update.get("code"),
                    "uaid": client.uaid,
                },
            )

    def _on_nack(self, client: _Client, data: dict[str, Any]) -> None:
        version = data.get("version")
        # A nack means the service worker threw; autopush does not redeliver those.
        self._drop_pending(client.uaid, version)
        self._record(
            self._nacks, {"version": version, "code": data.get("code"), "uaid": client.uaid}
        )

    def _drop_pending(self, uaid: str, version: object) -> None:
        self._pending[uaid] = [m for m in self._pending.get(uaid, []) if m.version != version]

    async def _flush(self, uaid: str, fresh: _Message | None = None) -> None:
        """Send every unexpired, not-yet-sent message for uaid over its live socket.

        `fresh` is a message that just arrived for a connected client: it goes out even
        with TTL=0, which RFC 8030 defines as "deliver now or never".
        """
        client = self._clients.get(uaid)
        if client is None or client.ws.closed:
            return
        now = time.time()
        queue = self._pending.get(uaid, [])
        # Expired messages are dropped (RFC 8030 5.2), but one already on the wire stays
        # until acked, whatever its TTL, so a TTL=0 push still gets its ack recorded.
        queue = [m for m in queue if m.sent or m is fresh or m.expires_at > now]
        self._pending[uaid] = queue
        for message in queue:
            if message.sent:
                continue
            payload: dict[str, Any] = {
                "messageType": "notification",
                "channelID": message.channel_id,
                "version": message.version,
            }
            if message.data is not None:
                payload["data"] = message.data
                payload["headers"] = message.headers
            try:
                await client.ws.send_json(payload)
            except (ConnectionError, RuntimeError) as exc:
                log.warning("push ws: send to %s failed: %s", uaid, exc)
                return
            message.sent = True

    # ---- HTTP side: RFC 8030 push endpoint --------------------------------------------------

    async def _handle_push(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._accept_push(request)
        except PushRejected as exc:
            log.info("push rejected (%d): %s", exc.status, exc.reason)
            return web.json_response(
                {"code": exc.status, "errno": exc.status, "error": exc.reason},
                status=exc.status,
            )

    async def _accept_push(self, request: web.Request) -> web.StreamResponse:
        registration = self._by_endpoint.get(request.match_info["endpoint_id"])
        if registration is None:
            raise PushRejected(404, "no such subscription")
        if not registration.active:
            raise PushRejected(410, "subscription has been unregistered")

        ttl_header = request.headers.get("TTL")
        if ttl_header is None:
            raise PushRejected(400, "missing TTL header")
        try:
            ttl = int(ttl_header)
        except ValueError as exc:
            raise PushRejected(400, "TTL must be an integer") from exc
        if ttl < 0:
            raise PushRejected(400, "TTL must not be negative")

        authorization = request.headers.get("Authorization", "")
        crypto_key = request.headers.get("Crypto-Key", "")
        if registration.key is not None or authorization:
            try:
                vapid_key = vapid.verify(authorization, self.origin, crypto_key=crypto_key).key
            except vapid.VapidRefused as refused:
                raise PushRejected(refused.status, refused.reason) from refused
            if registration.key is not None and vapid_key != registration.key:
                # RFC 8292 4.2: a valid token from the wrong key is 403, not 401.
                raise PushRejected(403, "VAPID k does not match the subscription's key")

        body = await request.read()
        if len(body) > MAX_PAYLOAD_BYTES:
            raise PushRejected(413, f"payload over {MAX_PAYLOAD_BYTES} bytes")
        data: str | None = None
        headers: dict[str, str] = {}
        if body:
            encoding = request.headers.get("Content-Encoding", "").strip().lower()
            if encoding == "aes128gcm":
                # RFC 8188 header: salt(16) rs(4) idlen(1) keyid(idlen) -> at least 21 bytes.
                if len(body) < 21 + 16:
                    raise PushRejected(400, "aes128gcm body is too short")
                headers = {"encoding": "aes128gcm"}
            elif encoding == "aesgcm":
                encryption = request.headers.get("Encryption", "")
                if not encryption or "dh=" not in crypto_key:
                    raise PushRejected(400, "aesgcm needs Encryption and Crypto-Key dh=")
                headers = {
                    "encoding": "aesgcm",
                    "encryption": encryption,
                    "crypto_key": crypto_key,
                }
            else:
                raise PushRejected(415, "Content-Encoding must be aes128gcm (or aesgcm)")
            data = b64url_encode(body)

        version = uuid.uuid4().hex
        message = _Message(
            uaid=registration.uaid,
            channel_id=registration.channel_id,
            version=version,
            data=data,
            headers=headers,
            expires_at=time.time() + ttl,
        )
        live = self._clients.get(registration.uaid)
        connected = live is not None and not live.ws.closed
        if connected or ttl > 0:
            # Offline clients get it on their next hello, like autopush's message store.
            self._pending.setdefault(registration.uaid, []).append(message)
            await self._flush(registration.uaid, fresh=message)
        self._record(
            self._pushes,
            {
                "channelID": registration.channel_id,
                "version": version,
                "ttl": ttl,
                "bytes": len(body),
                "delivered_now": connected,
            },
        )
        return web.Response(
            status=201,
            headers={"Location": f"{self.origin}/m/{version}", "TTL": str(ttl)},
        )
