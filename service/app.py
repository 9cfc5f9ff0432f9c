"""The Flask application factory: create_app(settings)."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from celery import Celery
from flask import Flask, Response, g, has_request_context, request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.middleware.proxy_fix import ProxyFix

from config.settings import Settings
from core.adapters import accounts_sql, metrics
from core.adapters.accounts_sql import SqlAccounts
from core.bootstrap import Container
from core.endpoints import is_loopback_host
from service import csrf, tracing
from service.errors import register_error_handlers
from service.extensions import init_limiter
from service.inputs import MAX_BODY_BYTES, register_input_guard
from service.public_urls import PublicOriginFlask

log = logging.getLogger("newsflash.web")


@dataclass
class Newsflash:
    """What the views need, attached to app.extensions['newsflash']."""

    settings: Settings
    container: Container

    @property
    def accounts(self) -> SqlAccounts:
        return self.container.accounts

    @property
    def celery(self) -> Celery:
        return self.container.celery

    def warm_up(self) -> None:
        """Pay at boot what a web process's first request would: the database driver's import,
        a pooled connection, the broker connection and Celery's producer (~150 ms, which made
        the first publish after a start the slowest), and the dummy password hash a login for
        no such user is checked against (else that first login would take twice as long as a
        wrong password). Only reads; a store or broker that is down at boot is logged and left
        to the first request (and /readyz) to report."""
        accounts_sql.dummy_hash()
        try:
            self.accounts.verify_token("warm-up")
            self.container.subscriptions.audience_size([t.slug for t in self.settings.topics][:1])
        except Exception as exc:
            log.warning("database not ready at start-up: %s", type(exc).__name__)
        try:
            _ = self.celery.backend
            with self.celery.producer_or_acquire() as producer:
                producer.connection.ensure_connection(max_retries=1, interval_start=0)
        except Exception as exc:
            log.warning("broker not ready at start-up: %s", type(exc).__name__)


def create_app(
    settings: Settings, container: Container | None = None, celery: Celery | None = None
) -> Flask:
    app = PublicOriginFlask(__name__)
    app.use_public_origins(settings.public_origins)  # og:url, redirects: never a forged Host
    secure_cookies = not all(_origin_is_loopback(o) for o in settings.public_origins)
    app.config.update(
        SECRET_KEY=settings.secret_key or secrets.token_hex(32),
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=secure_cookies,
        SESSION_COOKIE_NAME="newsflash_session",
        PERMANENT_SESSION_LIFETIME=settings.session_lifetime_s,
        JSON_SORT_KEYS=False,
    )
    app.session_interface = SessionCookies()
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.proxy_hops, x_proto=settings.proxy_hops)  # type: ignore[method-assign]
    # The process entry point may hand in its Celery app; otherwise the container builds a
    # send-only producer (the web process never imports the worker's tasks).
    metrics.install(settings.metrics_dir)
    ext = Newsflash(settings, container or Container(settings, producer=celery))
    app.extensions["newsflash"] = ext
    tracing.install(app)
    init_limiter(app, settings.redis_url)
    register_error_handlers(app)
    register_input_guard(app)

    from service import (
        api,
        api_readers_choice,
        editor,
        feeds,
        health,
        ops,
        reader,
        stories_editor,
        templates_admin,
        webhooks,
    )

    app.register_blueprint(health.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(api_readers_choice.bp)
    app.register_blueprint(reader.bp)
    app.register_blueprint(editor.bp)
    app.register_blueprint(ops.bp)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(templates_admin.bp)
    app.register_blueprint(feeds.bp)
    app.register_blueprint(feeds.api_bp)
    app.register_blueprint(stories_editor.bp)

    install_security_headers(app, settings)
    return app


def install_security_headers(app: Flask, settings: Settings) -> None:
    """Headers on every answer: no sniffing, no framing, the newsroom's CSP, no-store for
    whatever depended on who is asking."""
    policy = newsroom_policy(settings)

    @app.after_request
    def _security_headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
        if response.mimetype == "text/html":
            headers.setdefault("X-Frame-Options", "DENY")
            reader = request.blueprint == "reader"
            headers.setdefault("Content-Security-Policy", READER_POLICY if reader else policy)
        # Whatever depended on who is asking (credentials looked at, or a form's CSRF token
        # shown, as on the login page) is kept by no cache: not a proxy's, not the back button
        # of a phone the next person picks up.
        if "principal" in g or csrf.ISSUED in g:
            headers["Cache-Control"] = "no-store"
        return response


class SessionCookies(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, Secure also whenever this request came over https (the
    proxy's X-Forwarded-Proto, trusted for NEWSFLASH_PROXY_HOPS hops), not only when the
    configured origins are public ones."""

    def get_cookie_secure(self, app: Flask) -> bool:
        configured = bool(app.config["SESSION_COOKIE_SECURE"])
        return configured or (has_request_context() and request.is_secure)


# The reader's pages are public and keep their own rules; only framing is refused everywhere.
READER_POLICY = "frame-ancestors 'none'"


def newsroom_policy(settings: Settings) -> str:
    """The newsroom's and ops' pages run only their own scripts (no inline script, no eval), post
    forms only here and are never framed. Inline style attributes stay allowed (a progress bar's
    width); images may come from the publisher's origins (alert images, the site icon)."""
    icon = urlsplit(settings.site_icon_url or "")
    origins = [*settings.public_origins, f"{icon.scheme}://{icon.netloc}" if icon.netloc else ""]
    images = " ".join(dict.fromkeys(["'self'", "data:", "https:", *filter(None, origins)]))
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self' 'unsafe-inline'",
            f"img-src {images}",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


def _origin_is_loopback(origin: str) -> bool:
    return is_loopback_host(urlsplit(origin).hostname or "")
