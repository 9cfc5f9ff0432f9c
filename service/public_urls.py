"""Absolute URLs the service hands out (a page's og:url, a redirect's Location, anything from
url_for(..., _external=True)) name a configured public origin (NEWSFLASH_PUBLIC_ORIGINS), never
whatever Host header a request carried: any client can send any Host, and a page cached with
a forged one would advertise another site to every reader after."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from flask import Flask, Request
from werkzeug.routing import MapAdapter

_DEFAULT_PORTS = {"http": "80", "https": "443"}


def _split(origin: str) -> tuple[str, str] | None:
    """(scheme, host[:port]) with the scheme's default port left out, as Werkzeug binds it;
    None for what is no origin (a Host header with a port that is not a number)."""
    parts = urlsplit(origin)
    try:
        port = parts.port
    except ValueError:
        return None
    netloc = parts.netloc.lower()
    if port is not None and str(port) == _DEFAULT_PORTS.get(parts.scheme):
        netloc = netloc.rpartition(":")[0]
    return parts.scheme, netloc


class PublicOriginFlask(Flask):
    """Flask whose URLs are built on a public origin: the one the request came to when that is
    a configured one, else the first configured. Matching is untouched (routes are not bound to
    a host), so the service still answers on every name it is reached by."""

    # (scheme, host[:port]) of each configured origin: split once, in use_public_origins, not
    # in create_url_adapter, which runs on every request.
    _allowed: tuple[tuple[str, str], ...] = (("http", "127.0.0.1:8000"),)

    def use_public_origins(self, origins: Sequence[str]) -> None:
        """NEWSFLASH_PUBLIC_ORIGINS: the origins absolute URLs may name."""
        self._allowed = tuple(found for o in origins if (found := _split(o)))

    def create_url_adapter(self, request: Request | None) -> MapAdapter | None:
        allowed = self._allowed
        adapter = super().create_url_adapter(request)
        if adapter is None:
            if request is not None:
                return None
            # Outside a request (a task rendering a page): Flask would need SERVER_NAME.
            scheme, netloc = allowed[0]
            root = self.config["APPLICATION_ROOT"]
            return self.url_map.bind(netloc, script_name=root, url_scheme=scheme)
        came_to = _split(f"{adapter.url_scheme}://{adapter.server_name}")
        # Without host matching the server name is only used to build URLs and redirects.
        adapter.url_scheme, adapter.server_name = came_to if came_to in allowed else allowed[0]
        return adapter
