"""Kept-alive connections stay bounded: past their keep-alive they close, and beyond the
process's request slots the least recently used close, without breaking the lists a request in
flight will put its connection back into (real loopback connections)."""

from __future__ import annotations

import asyncio
import time

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from core.adapters.http11 import KEEPALIVE_S, Connection, connect
from core.adapters.push_client import PRUNE_EVERY_S, PushClient
from core.adapters.push_crypto import VapidSigner


def client() -> PushClient:
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return PushClient(
        VapidSigner(pem.decode(), "mailto:ops@news.example"),
        None,
        lambda host, port: ["127.0.0.1"],
        time.time,
        connect_timeout_s=2,
        read_timeout_s=2,
        deadline_s=5,
        allow_loopback=True,
        ca_file=None,
    )


def test_stale_and_least_recently_used_idle_connections_close() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        accepted: list[asyncio.BaseTransport] = []

        class Quiet(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                accepted.append(transport)

        server = await loop.create_server(Quiet, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        push = client()
        conns: list[Connection] = [
            await connect("127.0.0.1", port, None, push.resolver.addresses, True, 2)
            for _ in range(6)
        ]
        now = time.monotonic()
        for age, conn in enumerate(conns):  # conns[0] used last, conns[5] longest ago
            conn.used_at = now - age
        stale = conns[1]
        stale.used_at = now - KEEPALIVE_S - 1
        first, second = ("127.0.0.2", "http", port), ("127.0.0.3", "http", port)
        push.idle = {first: conns[:3], second: conns[3:]}
        held = push.idle[first]  # what a request in flight to the first host holds

        push.prune_idle(now, keep=3)

        assert stale.transport is None  # past its keep-alive
        assert [c.transport is None for c in conns] == [False, True, False, False, True, True]
        assert push.idle[first] is held and held == [conns[0], conns[2]]
        assert push.idle[second] == [conns[3]]
        conns[3].used_at = now - KEEPALIVE_S - 1
        push.prune_idle(now + PRUNE_EVERY_S / 2, keep=3)  # once per PRUNE_EVERY_S at most
        assert conns[3].transport is not None
        push.prune_idle(now + PRUNE_EVERY_S, keep=3)
        assert conns[3].transport is None and push.idle[second] == []
        push.close_idle()
        server.close()
        await server.wait_closed()

    asyncio.run(scenario())
