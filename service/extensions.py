"""Flask extensions, created unbound and attached in create_app."""

from __future__ import annotations

import math
import time

from flask import Flask, Response, request
from flask_limiter import Limiter
from redis.exceptions import RedisError

from core.accounts import address_key

LIMITER_REDIS_TIMEOUT_S = 0.5


def client_key() -> str:
    """The caller every rate limit counts: IPv6 by its /64 (one host owns the whole /64 and
    could otherwise step to a fresh address, and a fresh budget, per request), IPv4 as is."""
    # Behind the publisher's reverse proxy use ProxyFix (NEWSFLASH_PROXY_HOPS), never raw headers.
    return address_key(request.remote_addr)


# No X-RateLimit-* or Retry-After on every answer: Flask-Limiter would put its window's reset
# into the Retry-After of any answer on a limited route, over the service's own (a 425 "ask
# again in 2 s" said 60 s, a 503 "busy, 5 s" up to 60 s), at one more Redis round trip a request.
# Only the limiter's own 429 carries Retry-After (retry_after_limited, below).
limiter = Limiter(
    key_func=client_key, default_limits=[], headers_enabled=False, strategy="moving-window"
)


def breach_wait_s() -> int | None:
    """Whole seconds until the limit this request broke lets its caller in again (the moving
    window's oldest counted hit leaving it), or None when no limit was broken or the count
    cannot be read just now."""
    limit = limiter.current_limit
    if limit is None or not limit.breached:
        return None
    try:
        reset_time = limit.window.reset_time
    except (RedisError, OSError):
        return None
    return max(1, math.ceil(reset_time - time.time()))


def retry_after_limited(response: Response) -> Response:
    """Retry-After on the limiter's 429 pages (the newsroom's sign-in and password pages; the
    JSON answer sets its own, read with its words), unless the answer set one already."""
    if response.status_code == 429 and "Retry-After" not in response.headers:
        wait = breach_wait_s()
        if wait is not None:
            response.headers["Retry-After"] = str(wait)
    return response


def init_limiter(app: Flask, storage_uri: str) -> None:
    app.config["RATELIMIT_STORAGE_URI"] = storage_uri
    # A limit check is one Redis round trip (well under a millisecond here); a Redis that has
    # not answered in half a second is treated as away (the limits go on in memory, below)
    # rather than holding the request: the first request of an outage, and one per process at
    # each recheck, wait this long (2 s before).
    app.config["RATELIMIT_STORAGE_OPTIONS"] = {
        "socket_connect_timeout": LIMITER_REDIS_TIMEOUT_S,
        "socket_timeout": LIMITER_REDIS_TIMEOUT_S,
    }
    app.config["RATELIMIT_HEADERS_ENABLED"] = False
    # If Redis is down or hangs, readers can still subscribe: the limits go on in this process's
    # memory (the same numbers per process, not shared) until Redis answers again, checked
    # after 1, 2, 4 ... s. Before, they failed open (a flood went unchecked during the outage)
    # and, with Redis hung, every limited request first waited its 2 s timeout.
    app.config["RATELIMIT_SWALLOW_ERRORS"] = True
    app.config["RATELIMIT_IN_MEMORY_FALLBACK_ENABLED"] = True
    app.config["RATELIMIT_KEY_PREFIX"] = "newsflash-rl"
    limiter.init_app(app)
    # init_app gives the limiter a new storage but keeps the last app's "storage dead" flag
    # (the limiter is one object per process; tests build many apps): ask the new one first.
    limiter._storage_dead = False
    app.after_request(retry_after_limited)
