"""JSON error answers: {"error": {"code", "message", "field"}} with a 4xx status, or 503
while the database cannot be reached."""

from __future__ import annotations

import contextlib
import json
import logging
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from core.adapters import db_errors, metrics
from core.duplicates import DuplicateAlert
from core.errors import DomainError
from service.extensions import breach_wait_s


def error_response(
    status: int, code: str, message: str, field: str | None = None, **headers: str
) -> Response:
    # The contract's shape on every error: "field" is null when no one field is to blame.
    body: dict[str, Any] = {"code": code, "message": message, "field": field}
    response = jsonify({"error": body})
    response.status_code = status
    for name, value in headers.items():
        response.headers[name.replace("_", "-")] = value
    return response


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.path == "/metrics" or request.is_json


def _not_found_page() -> Response:
    """A newsroom or ops address that does not exist: the styled page, with the navigation."""
    page = render_template(
        "editor/error.html",
        status=404,
        heading="Page not found",
        message="Nothing lives at this address. Check the link, or start from the newsroom.",
    )
    return Response(page, 404, mimetype="text/html")


log = logging.getLogger("newsflash.web")

# The database refused, did not answer within its connect timeout, dropped the connection, or
# every pooled connection is busy: a moment's outage, not a fault of the request or of the app.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError, PoolTimeout)
RETRY_AFTER_S = 5


# What the caller and the log are told, by what the error says about the database
# (core/adapters/db_errors.py): busy and unreachable pass in seconds; a full disk or a database
# refusing writes needs someone to act, so its line is an error and the caller is not told 5 s.
STORE_REFUSED_RETRY_S = 60
_CHECK = "if you were sending something, check whether it arrived before sending it again."
_REFUSED_API = "the service cannot store anything just now; nothing was stored; try again later"
_REFUSED = (
    "Newsflash cannot save anything right now, so nothing was saved. Tell whoever runs "
    "Newsflash, and try again later."
)
_SAID = {
    # reason: (log line, the API's words, the newsroom page's words)
    db_errors.BUSY: (
        "database busy",
        f"the database is busy; try again in {RETRY_AFTER_S} s",
        "Newsflash's database is busy right now. Try again in a few seconds; " + _CHECK,
    ),
    db_errors.UNREACHABLE: (
        "database unavailable",
        f"the database is not answering; try again in {RETRY_AFTER_S} s",
        "Newsflash cannot reach its database right now. Try again in a few seconds; " + _CHECK,
    ),
    db_errors.DISK: (
        "database refuses writes: its disk is full or failing",
        _REFUSED_API,
        _REFUSED,
    ),
    db_errors.READ_ONLY: (
        "database refuses writes: it is read-only",
        _REFUSED_API,
        _REFUSED,
    ),
}


def _database_unavailable(exc: Exception) -> Response:
    """503 with Retry-After: JSON for the API, the newsroom's page (drawn without asking the
    database who is signed in) for a browser. One log line, no traceback: every request fails
    alike during an outage, and the exception's text names the database's host. The line, the
    metric's reason and the words say which trouble it is; callers never learn of our disk."""
    reason = db_errors.trouble(exc)
    said, api_words, page_words = _SAID[reason]
    refused = reason in db_errors.REFUSES_WRITES
    extra = {"path": request.path, "error": type(exc).__name__}
    if refused:
        extra["database_said"] = db_errors.driver_words(exc)
    log.log(logging.ERROR if refused else logging.WARNING, said, extra=extra)
    with contextlib.suppress(Exception):  # metrics never fail a request
        metrics.metrics().web_unavailable.labels(reason).inc()
    wait_s = STORE_REFUSED_RETRY_S if refused else RETRY_AFTER_S
    headers = {"Retry-After": str(wait_s), "Cache-Control": "no-store"}
    if _wants_json():
        return error_response(503, "unavailable", api_words, **headers)
    page = render_template(
        "editor/error.html",
        status=503,
        heading="Cannot save right now" if refused else "Briefly unavailable",
        message=page_words,
        nf_offline=True,
    )
    return Response(page, 503, headers=headers, mimetype="text/html")


def register_error_handlers(app: Flask) -> None:
    for unavailable in DATABASE_UNAVAILABLE:
        app.register_error_handler(unavailable, _database_unavailable)

    @app.errorhandler(DomainError)
    def _domain(exc: DomainError) -> Response:
        return error_response(exc.status, exc.code, exc.message, exc.field)

    @app.errorhandler(DuplicateAlert)
    def _duplicate(exc: DuplicateAlert) -> Response:
        """409 with the earlier alert, so a CMS or script can link to it or resend knowingly."""
        response = error_response(exc.status, exc.code, exc.message, exc.field)
        earlier = exc.earlier
        body = response.get_json()
        body["earlier"] = {
            "id": str(earlier.id),
            "title": earlier.title,
            "url": earlier.url,
            "status": earlier.status.value,
            "created_at": datetime.fromtimestamp(earlier.created_at, UTC).isoformat(),
            "link": f"/api/v1/alerts/{earlier.id}",
            "report": f"/editor/alerts/{earlier.id}",
        }
        response.set_data(json.dumps(body))
        return response

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response | HTTPException:
        if not _wants_json():
            if exc.code == 404 and request.path.startswith(("/editor", "/ops")):
                return _not_found_page()
            return exc
        code = (exc.name or "error").lower().replace(" ", "_")
        status = exc.code or 500
        if status == 429:
            # The header here, from the same reading as the words (retry_after_limited then
            # leaves it: one look at the window per refusal, a flood's every request).
            seconds = breach_wait_s()
            wait = f"; try again in {seconds} s" if seconds else ""
            headers = {"Retry_After": str(seconds)} if seconds else {}
            return error_response(
                429,
                "rate_limited",
                f"too many requests from this address (limit {exc.description}){wait}",
                **headers,
            )
        if status == 413:
            limit = request.max_content_length or 0
            return error_response(
                413, "too_large", f"request body is too large ({limit // 1024} KB at most)"
            )
        return error_response(status, code, exc.description or exc.name)
