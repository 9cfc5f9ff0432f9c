"""Newsroom pages for alerts from a feed (/editor/feeds) and the readiness gate's "Send anyway"."""

from __future__ import annotations

import time
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from core.accounts import EDITOR_ROLES, Principal, Role
from core.errors import DomainError, Forbidden
from core.readiness import Gate, GateState
from core.usecases.feeds import Feeds
from core.usecases.newsroom import Editor
from service import csrf
from service.app import Newsflash
from service.auth import current_principal, require_role
from service.errors import error_response

bp = Blueprint("feeds", __name__, url_prefix="/editor")
api_bp = Blueprint("feeds_api", __name__, url_prefix="/api/v1")

Page = str | BaseResponse | tuple[str, int]
ADMINS = frozenset({Role.ADMIN})


def ext() -> Newsflash:
    return current_app.extensions["newsflash"]  # type: ignore[no-any-return]


def feeds() -> Feeds:
    return ext().container.feeds


def _me() -> Principal:
    principal = current_principal()
    assert principal is not None  # require_role ran first
    return principal


def _editor() -> Editor:
    principal = _me()
    return Editor(principal.name, principal.user_id)


@bp.before_request
def _check_csrf() -> Response | None:
    return csrf.rejected()


@bp.record_once
def _globals(state: Any) -> None:
    # The report page asks for the gate by id (its view belongs to the newsroom blueprint).
    state.app.jinja_env.globals.update(
        nf_article_gate=_gate_view, nf_wait_for_article=lambda: ext().settings.wait_for_article
    )


def _gate_view(alert_id: int) -> dict[str, Any] | None:
    gate = ext().container.readiness.gate(alert_id)
    return None if gate is None else gate_json(gate)


def gate_json(gate: Gate) -> dict[str, Any]:
    wait_s = ext().settings.article_wait_s
    deadline = gate.deadline(wait_s)
    return {
        "state": gate.state.value,
        "waiting": gate.state is GateState.WAITING,
        "checks": gate.checks,
        "last_answer": gate.last_answer,
        "seconds_left": None if deadline is None else max(0, round(deadline - time.time())),
        "limit_s": wait_s,
        "released_by": gate.released_by,
    }


# -- the feeds page ------------------------------------------------------------------------
@bp.get("/feeds")
@require_role(EDITOR_ROLES, page=True)
def page() -> Page:
    return _page()


def _page(error: DomainError | None = None, notice: str | None = None, status: int = 200) -> Page:
    s = ext().settings
    return render_template(
        "editor/feeds.html",
        drafts=feeds().drafts(),
        feeds=feeds().feeds(),
        recent=feeds().recent(),
        admin=_me().role is Role.ADMIN,
        topics=[{"slug": t.slug, "name": t.name, "default": t.default} for t in s.topics],
        error=error,
        notice=notice or request.args.get("notice"),
        form=request.form if error else {},
        poll_s=s.feed_poll_interval_s,
        gap_s=s.feed_min_gap_s,
    ), status


def _admin_only() -> None:
    if _me().role is not Role.ADMIN:
        raise Forbidden("only an admin can change which feeds are followed")


def _done(notice: str) -> BaseResponse:
    return redirect(url_for("feeds.page", notice=notice))


@bp.post("/feeds")
@require_role(EDITOR_ROLES, page=True)
def add() -> Page:
    try:
        _admin_only()
        body = {
            "url": request.form.get("url", ""),
            "category": request.form.get("category", ""),
            "mode": request.form.get("mode", "review"),
            "topics": request.form.getlist("topics"),
        }
        feed = feeds().add(_editor(), body)
    except DomainError as exc:
        return _page(error=exc, status=exc.status)
    return _done(f"Following {feed.url}. Items already in it are not sent; new ones are.")


@bp.post("/feeds/<int:feed_id>/remove")
@require_role(EDITOR_ROLES, page=True)
def remove(feed_id: int) -> Page:
    try:
        _admin_only()
        feeds().remove(_editor(), feed_id)
    except DomainError as exc:
        return _page(error=exc, status=exc.status)
    return _done("Feed removed.")


@bp.post("/feeds/<int:feed_id>/mode")
@require_role(EDITOR_ROLES, page=True)
def mode(feed_id: int) -> Page:
    try:
        _admin_only()
        feed = feeds().set_mode(_editor(), feed_id, request.form.get("mode", ""))
    except DomainError as exc:
        return _page(error=exc, status=exc.status)
    words = "sends new items by itself" if feed.mode.value == "auto" else "waits for review"
    return _done(f"The feed now {words}.")


@bp.post("/feeds/<int:feed_id>/poll")
@require_role(EDITOR_ROLES, page=True)
def poll(feed_id: int) -> Page:
    try:
        result = feeds().poll(_editor(), feed_id)
    except DomainError as exc:
        return _page(error=exc, status=exc.status)
    if result.error:
        return _done(result.error)
    if result.not_modified:
        return _done("Polled: the feed has not changed.")
    return _done(f"Polled: {result.new} new breaking item(s).")


@bp.post("/feeds/items/<int:item_id>/dismiss")
@require_role(EDITOR_ROLES, page=True)
def dismiss(item_id: int) -> Page:
    try:
        feeds().dismiss(_editor(), item_id)
    except DomainError as exc:
        return _page(error=exc, status=exc.status)
    return _done("Dismissed: it will not be sent.")


# -- the readiness gate ---------------------------------------------------------------------
@bp.get("/alerts/<int:alert_id>/gate")
@require_role(EDITOR_ROLES)
def gate(alert_id: int) -> Response:
    found = ext().container.readiness.gate(alert_id)
    return jsonify(None if found is None else gate_json(found))


@bp.post("/alerts/<int:alert_id>/send-anyway")
@require_role(EDITOR_ROLES, page=True)
def send_anyway(alert_id: int) -> Page:
    ext().container.readiness.send_anyway(_me().name, alert_id)
    return redirect(url_for("editor.report", alert_id=alert_id, notice="Sent without waiting."))


@api_bp.post("/alerts/<int:alert_id>/send-anyway")
@require_role(EDITOR_ROLES)
def api_send_anyway(alert_id: int) -> Response:
    if "Authorization" not in request.headers and not request.is_json:
        # A cookie-authenticated JSON API must not accept simple cross-site form posts.
        return error_response(
            400, "invalid", "send a JSON body with Content-Type: application/json"
        )
    alert = ext().container.readiness.send_anyway(_me().name, alert_id)
    return jsonify({"id": str(alert.id), "status": alert.status.value})
