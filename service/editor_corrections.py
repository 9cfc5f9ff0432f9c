"""Newsroom corrections: new words to an alert's audience, replacing what they were shown."""

from __future__ import annotations

from flask import redirect, render_template, request, url_for

from core import alerts as alert_rules
from core.accounts import EDITOR_ROLES
from core.errors import DomainError, ValidationError
from core.model import Alert
from service.auth import require_role
from service.editor import Page, alert_or_404, bp, editor, room


# -- corrections ----------------------------------------------------------------------------
@bp.get("/alerts/<int:alert_id>/correct")
@require_role(EDITOR_ROLES, page=True)
def correct_form(alert_id: int) -> Page:
    alert = alert_or_404(alert_id)
    form = {"title": alert.title, "body": alert.body, "url": alert.url}
    return _correct_page(alert, form)


def _correct_page(
    alert: Alert, form: dict[str, str], error: DomainError | None = None, status: int = 200
) -> tuple[str, int]:
    return render_template(
        "editor/correct.html",
        alert=alert,
        form=form,
        error=error,
        reach=alert.counts.delivered,
        limits={"title": alert_rules.MAX_TITLE, "body": alert_rules.MAX_BODY},
    ), status


@bp.post("/alerts/<int:alert_id>/correct")
@require_role(EDITOR_ROLES, page=True)
def send_correction(alert_id: int) -> Page:
    original = alert_or_404(alert_id)
    form = {k: request.form.get(k, "").strip() for k in ("title", "body", "url")}
    try:
        if request.form.get("confirm") != "yes":
            raise ValidationError("Tick the box to confirm the correction.", "confirm")
        alert = room().correct(editor(), alert_id, form)
    except DomainError as exc:
        return _correct_page(original, form, exc, exc.status)
    return redirect(url_for("editor.report", alert_id=alert.id))
