"""Newsroom history and alert reports: the live report, its slower numbers, Undo and Stop."""

from __future__ import annotations

import time

from flask import Response, jsonify, redirect, render_template, request, url_for

from core import newsroom
from core.accounts import EDITOR_ROLES
from core.errors import DomainError, NotFound
from core.model import Alert
from service.auth import require_role
from service.editor import Page, alert_or_404, bp, editor, ext, newsroom_store, room


# -- history and reports --------------------------------------------------------------------
@bp.get("")
@bp.get("/")
@require_role(EDITOR_ROLES, page=True)
def history() -> Page:
    before = request.args.get("before", type=int)
    alerts = ext().container.alerts.list_alerts(limit=50, before_id=before)
    return render_template(
        "editor/history.html",
        alerts=alerts,
        older=alerts[-1].id if len(alerts) == 50 else None,
        now=time.time(),
        undo_window_s=ext().settings.undo_window_s,
    )


@bp.get("/alerts/<int:alert_id>")
@require_role(EDITOR_ROLES, page=True)
def report(alert_id: int) -> Page:
    try:
        alert = alert_or_404(alert_id)
    except NotFound:
        return render_template("editor/missing.html"), 404
    rooms = newsroom_store()
    now = time.time()
    return render_template(
        "editor/report.html",
        report=newsroom.build_report(alert, rooms),
        corrects=None if alert.corrects_id is None else _alert_or_none(alert.corrects_id),
        corrected_by=rooms.corrections_of(alert.id),
        undo=newsroom.in_undo_window(alert, now, ext().settings.undo_window_s),
        now=now,
        notice=request.args.get("notice"),
    )


def _alert_or_none(alert_id: int) -> Alert | None:
    return ext().container.alerts.get_alert(alert_id)


@bp.get("/alerts/<int:alert_id>/milestones")
@require_role(EDITOR_ROLES)
def milestones(alert_id: int) -> Response:
    """The report's slower numbers (the live counts come from GET /api/v1/alerts/<id>)."""
    result = newsroom.build_report(alert_or_404(alert_id), newsroom_store())
    return jsonify(
        {
            "click_through": result.click_through,
            "reachable": result.reachable,
            "milestones": [
                {"percent": m.percent, "deliveries": m.deliveries, "after_s": m.after_s}
                for m in result.milestones
            ],
        }
    )


@bp.post("/alerts/<int:alert_id>/cancel")
@require_role(EDITOR_ROLES, page=True)
def cancel(alert_id: int) -> Page:
    """Undo (in the window), cancel a schedule, or stop a send in flight: one action."""
    try:
        room().cancel(editor(), alert_id)
    except NotFound:
        raise
    except DomainError as exc:
        return redirect(url_for("editor.report", alert_id=alert_id, notice=exc.message))
    return redirect(url_for("editor.report", alert_id=alert_id))
