"""CSRF protection for the newsroom's forms: one random token per session, checked on every POST."""

from __future__ import annotations

import hmac
import secrets

from flask import Response, g, render_template, request, session

from service.errors import error_response

SESSION_KEY = "csrf"
FORM_FIELD = "csrf_token"
HEADER = "X-CSRF-Token"


# Set on g when a page shows the token: such a page is no-store (service.app).
ISSUED = "nf_csrf_issued"


def csrf_token() -> str:
    """The session's token (made on first use); templates put it in every form."""
    setattr(g, ISSUED, True)
    token = session.get(SESSION_KEY)
    if not isinstance(token, str) or len(token) < 32:
        token = secrets.token_urlsafe(32)
        session[SESSION_KEY] = token
    return token


def rotate() -> None:
    """A fresh session and token at login and logout (no fixation across the boundary)."""
    session.clear()
    session[SESSION_KEY] = secrets.token_urlsafe(32)


def session_write_refused() -> Response | None:
    """For a write by a session on any route (require_role asks): None if it may proceed. A body
    another site's page could send (a form: urlencoded, multipart, text/plain) needs the token;
    a JSON body cannot come from another origin without a CORS preflight, which the routes a
    session may write to never grant."""
    if request.is_json:
        return None
    return rejected()


def rejected() -> Response | None:
    """None if this request may proceed; a 400 answer if it is a POST without the right token."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return None
    expected = session.get(SESSION_KEY)
    offered = request.headers.get(HEADER) or request.form.get(FORM_FIELD) or ""
    if isinstance(expected, str) and expected and hmac.compare_digest(expected, offered):
        return None
    message = "the form has expired or did not come from this site; reload the page and try again"
    if request.is_json or request.accept_mimetypes.best == "application/json":
        return error_response(400, "csrf", message, FORM_FIELD)
    # Mostly an editor whose session ended (or who logged out in another tab) since the page
    # was opened: the newsroom's own page, readable on a phone, saying nothing went out.
    page = render_template(
        "editor/error.html",
        status=400,
        heading="This form has expired",
        message="Nothing was sent or changed. You logged out or your session ended after this "
        "page was opened (or the form came from another site). Log in, reload the page and "
        "try again.",
    )
    return Response(page, status=400, mimetype="text/html")
