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

from core.adapters import metrics
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


# A web session's lock_timeout or statement_timeout (core/adapters/pg_sessions.py) ran out, or
# SQLite's busy timeout (core/adapters/sql.py): the database answers, but something holds what
# the request needs (a migration, a long transaction). SQLSTATE lock_not_available and
# query_canceled; SQLITE_BUSY and SQLITE_LOCKED.
BUSY_SQLSTATES = ("55P03", "57014")
BUSY_SQLITE_CODES = (5, 6)


def _busy(exc: Exception) -> bool:
    cause = getattr(exc, "orig", None)
    return (
        getattr(cause, "sqlstate", None) in BUSY_SQLSTATES
        or getattr(cause, "sqlite_errorcode", None) in BUSY_SQLITE_CODES
    )


def _database_unavailable(exc: Exception) -> Response:
    """503 with Retry-After: JSON for the API, the newsroom's page (drawn without asking the
    database who is signed in) for a browser. One log line, no traceback: every request fails
    alike during an outage, and the exception's text names the database's host."""
    busy = _busy(exc)
    log.warning(
        "database busy" if busy else "database unavailable",
        extra={"path": request.path, "error": type(exc).__name__},
    )
    with contextlib.suppress(Exception):  # metrics never fail a request
        metrics.metrics().web_unavailable.labels("busy" if busy else "unreachable").inc()
    headers = {"Retry-After": str(RETRY_AFTER_S), "Cache-Control": "no-store"}
    state = "busy" if busy else "not answering"
    if _wants_json():
        message = f"the database is {state}; try again in {RETRY_AFTER_S} s"
        return error_response(503, "unavailable", message, **headers)
    reach = "Newsflash's database is busy" if busy else "Newsflash cannot reach its database"
    page = render_template(
        "editor/error.html",
        status=503,
        heading="Briefly unavailable",
        message=f"{reach} right now. Try again in a few seconds; "
        "if you were sending something, check whether it arrived before sending it again.",
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
            seconds = breach_wait_s()
            wait = f"; try again in {seconds} s" if seconds else ""
            return error_response(
                429,
                "rate_limited",
                f"too many requests from this address (limit {exc.description}){wait}",
            )
        if status == 413:
            limit = request.max_content_length or 0
            return error_response(
                413, "too_large", f"request body is too large ({limit // 1024} KB at most)"
            )
        return error_response(status, code, exc.description or exc.name)
