"""Flask extensions, created unbound and attached in create_app."""

from __future__ import annotations

from flask import Flask, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address


def _client_ip() -> str:
    # Behind the publisher's reverse proxy use ProxyFix (NEWSFLASH_PROXY_HOPS), never raw headers.
    return get_remote_address() or request.remote_addr or "unknown"


limiter = Limiter(
    key_func=_client_ip, default_limits=[], headers_enabled=True, strategy="moving-window"
)


def init_limiter(app: Flask, storage_uri: str) -> None:
    app.config["RATELIMIT_STORAGE_URI"] = storage_uri
    app.config["RATELIMIT_STORAGE_OPTIONS"] = {"socket_connect_timeout": 2, "socket_timeout": 2}
    app.config["RATELIMIT_HEADERS_ENABLED"] = True
    # If Redis is down, readers can still subscribe: fail open on the limiter, not on the API.
    app.config["RATELIMIT_SWALLOW_ERRORS"] = True
    app.config["RATELIMIT_KEY_PREFIX"] = "newsflash-rl"
    limiter.init_app(app)
