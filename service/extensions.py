"""Flask extensions, created unbound and attached in create_app."""

from __future__ import annotations

from flask import Flask, request
from flask_limiter import Limiter

from core.accounts import address_key


def client_key() -> str:
    """The caller every rate limit counts: IPv6 by its /64 (one host owns the whole /64 and
    could otherwise step to a fresh address, and a fresh budget, per request), IPv4 as is."""
    # Behind the publisher's reverse proxy use ProxyFix (NEWSFLASH_PROXY_HOPS), never raw headers.
    return address_key(request.remote_addr)


limiter = Limiter(
    key_func=client_key, default_limits=[], headers_enabled=True, strategy="moving-window"
)


def init_limiter(app: Flask, storage_uri: str) -> None:
    app.config["RATELIMIT_STORAGE_URI"] = storage_uri
    app.config["RATELIMIT_STORAGE_OPTIONS"] = {"socket_connect_timeout": 2, "socket_timeout": 2}
    app.config["RATELIMIT_HEADERS_ENABLED"] = True
    # If Redis is down or hangs, readers can still subscribe: the limits go on in this process's
    # memory (the same numbers per process, not shared) until Redis answers again, checked
    # after 1, 2, 4 ... s. Before, they failed open (a flood went unchecked during the outage)
    # and, with Redis hung, every limited request first waited its 2 s timeout.
    app.config["RATELIMIT_SWALLOW_ERRORS"] = True
    app.config["RATELIMIT_IN_MEMORY_FALLBACK_ENABLED"] = True
    app.config["RATELIMIT_KEY_PREFIX"] = "newsflash-rl"
    limiter.init_app(app)
