"""Newsroom history and alert reports: the live report, its slower numbers, Undo and Stop."""

from __future__ import annotations

import time

from flask import Response, jsonify, redirect, render_template, request, url_for

from core import newsroom, reports
from core.accounts import EDITOR_ROLES
from core.errors import DomainError, NotFound
from core.model import Alert
from service import audience_split
from service.auth import require_role
from service.editor import (
    Page,
    alert_or_404,
    bp,
    editor,
    ext,
    local_time,
    newsroom_store,
    nf_state_word,
    room,
)
from service.report_chart import Drawn, draw


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
    built = newsroom.build_report(alert, rooms)
    return render_template(
        "editor/report.html",
        report=built,
        live=_live(alert, now),
        charts=_charts(built, now),
        corrects=None if alert.corrects_id is None else _alert_or_none(alert.corrects_id),
        corrected_by=rooms.corrections_of(alert.id),
        undo=newsroom.in_undo_window(alert, now, ext().settings.undo_window_s),
        now=now,
        notice=request.args.get("notice"),
        platforms=audience_split.platform_rows(ext().container, alert.id),
        language_names=audience_split.NAMES,
    )


def _alert_or_none(alert_id: int) -> Alert | None:
    return ext().container.alerts.get_alert(alert_id)


def _live(alert: Alert, now: float) -> reports.LiveReport:
    c = ext().container
    return reports.live_report(
        alert, c.reports, c.hosts, c.ops.telemetry, now, lambda ts: local_time(ts, False)
    )


def _charts(built: newsroom.Report, now: float) -> tuple[Drawn, Drawn | None] | None:
    found = reports.delivery_charts(
        built.alert, ext().container.reports, built.reachable, built.milestones, now
    )
    if found is None:
        return None
    sent, opened = found
    return draw(sent), None if opened is None else draw(opened)


@bp.get("/alerts/<int:alert_id>/milestones")
@require_role(EDITOR_ROLES)
def milestones(alert_id: int) -> Response:
    """The report's slower numbers (the live counts come from /live)."""
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


@bp.get("/alerts/<int:alert_id>/live")
@require_role(EDITOR_ROLES)
def live(alert_id: int) -> Response:
    """What the open report polls: counts as editors read them, pace, held banner, services."""
    alert = alert_or_404(alert_id)
    now = time.time()
    found = _live(alert, now)
    c = newsroom.audience_of(alert)
    return jsonify(
        {
            "status": alert.status.value,
            "state": nf_state_word(alert),
            "counts": {
                "audience": c.audience,
                "delivered": c.delivered,
                "gone": c.gone,
                "failed": c.failed,
                "pending": 0 if alert.kind.value != "normal" else found.pending,
                "not_sent": found.not_sent,
                "displayed": c.displayed,
                "clicked": c.clicked,
            },
            "pace": found.pace.as_json(),
            "settling": found.settling,
            "held": found.held,
            "services": [vars(r) for r in found.services],
        }
    )


@bp.get("/alerts/<int:alert_id>/charts")
@require_role(EDITOR_ROLES)
def charts(alert_id: int) -> str:
    """The charts' HTML (server-drawn SVG), which the open report swaps in as delivery goes on."""
    built = newsroom.build_report(alert_or_404(alert_id), newsroom_store())
    return render_template("editor/_charts.html", charts=_charts(built, time.time()))


@bp.post("/alerts/<int:alert_id>/cancel")
@require_role(EDITOR_ROLES, page=True)
def cancel(alert_id: int) -> Page:
    """Undo (in the window), cancel a schedule, or stop a send in flight: one action."""
    try:
        done = room().cancel(editor(), alert_id)
    except NotFound:
        raise
    except DomainError as exc:
        return redirect(url_for("editor.report", alert_id=alert_id, notice=exc.message))
    if done.alert.started_at is not None:
        _await_settled(alert_id)
    return redirect(url_for("editor.report", alert_id=alert_id))


def _await_settled(alert_id: int, limit_s: float = 1.5) -> None:
    """After Stop, give the pushes already on their way a moment to be answered, so the report
    opens on the final count; a slower push service leaves it "Stopping…" and live instead."""
    reports_store = ext().container.reports
    deadline = time.monotonic() + limit_s
    while reports_store.batches_running(alert_id, time.time()) and time.monotonic() < deadline:
        time.sleep(0.1)
