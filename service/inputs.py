"""Reading client input in the web app: JSON bodies, forms and query strings, by core.inputs' rules."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, request
from markupsafe import escape
from werkzeug.exceptions import RequestEntityTooLarge

from core import inputs
from core.errors import ValidationError

# Every request body, unless a route says otherwise (the CMS webhook allows more).
MAX_BODY_BYTES = 8 * 1024
# Its own normaliser decides where the login redirect goes (anything odd goes to /editor), and
# it never reaches the database: refusing it here would turn a safe redirect into an error.
_OWN_RULES = frozenset({"next"})


def read_body(max_bytes: int = MAX_BODY_BYTES) -> bytes:
    """The raw body, at most max_bytes, or 413 (with or without a Content-Length)."""
    request.max_content_length = max_bytes
    data = request.get_data(cache=True)
    if request.content_length is None and len(data) >= max_bytes:
        # Werkzeug cuts a chunked body at the limit without an error: treat reaching it as too big.
        raise RequestEntityTooLarge()
    return data


def json_body(max_bytes: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """The body as a JSON object, by core.inputs.parse_json's rules (depth, numbers, text)."""
    if not request.is_json:
        raise ValidationError("send a JSON body with Content-Type: application/json")
    body = inputs.parse_json(read_body(max_bytes))
    if not isinstance(body, dict):
        raise ValidationError("the body must be a JSON object")
    return body


def check_form_and_query() -> None:
    """Query parameters and form fields hold no control characters (forms keep tab and line
    breaks for textareas); fields then apply their own, stricter rules."""
    for name, value in request.args.items(multi=True):
        if name not in _OWN_RULES:
            inputs.check_text(name, "a query parameter name")
            inputs.check_text(value, name)
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        for name, value in request.form.items(multi=True):
            if name not in _OWN_RULES:
                inputs.check_text(name, "a form field name")
                inputs.check_text(value, name, multiline=True)


def register_input_guard(app: Flask) -> None:
    @app.before_request
    def _guard() -> Response | None:
        try:
            check_form_and_query()
        except ValidationError as exc:
            if _wants_html():
                # A newsroom form: a page the editor can read and go back from, not JSON.
                text = escape(exc.message)
                page = f"<!doctype html><title>Bad request</title><p>{text}.</p>"
                return Response(page, status=400, mimetype="text/html")
            raise
        return None


def _wants_html() -> bool:
    if request.path.startswith("/api/") or request.is_json:
        return False
    return request.accept_mimetypes.best in ("text/html", "application/xhtml+xml")
