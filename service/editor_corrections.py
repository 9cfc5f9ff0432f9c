"""Newsroom corrections: new words to an alert's readers, reviewed (before/after) and undoable."""

from __future__ import annotations

import uuid
from typing import Any

from flask import redirect, render_template, request, url_for

from core import alerts as alert_rules
from core.accounts import EDITOR_ROLES
from core.corrections import stopped_by, word_diff
from core.errors import DomainError, ValidationError
from core.model import Alert, AlertDraft
from service.auth import require_role
from service.editor import Page, alert_or_404, bp, editor, ext, room

_FIELDS = ("title", "body", "url")


@bp.app_context_processor
def _chain_global() -> dict[str, Any]:
    """nf_chain(alert): the original and its corrections, for every report in the chain;
    nf_stopped_by(alert): the correction that took a still-sending alert over, or None."""
    return {
        "nf_chain": lambda alert: room().chain(alert),
        "nf_stopped_by": lambda alert: stopped_by(alert, room().chain(alert)),
    }


# -- corrections ----------------------------------------------------------------------------
@bp.get("/alerts/<int:alert_id>/correct")
@require_role(EDITOR_ROLES, page=True)
def correct_form(alert_id: int) -> Page:
    asked = alert_or_404(alert_id)
    form = {"title": asked.title, "body": asked.body, "url": asked.url}
    try:
        target = room().correction_target(alert_id)
    except DomainError as exc:  # the page says why; sending it would be refused (409)
        return _correct_page(alert_id, asked, form, exc)
    form = {"title": target.title, "body": target.body, "url": target.url}
    return _correct_page(alert_id, target, form)


def _correct_page(
    asked: int,
    target: Alert,
    form: dict[str, str],
    error: DomainError | None = None,
    status: int = 200,
) -> tuple[str, int]:
    return render_template(
        "editor/correct.html",
        alert=target,
        asked=asked,
        form=form,
        error=error,
        reach=target.counts.delivered,
        limits={"title": alert_rules.MAX_TITLE, "body": alert_rules.MAX_BODY},
        undo_window_s=ext().settings.undo_window_s,
    ), status


def _review_page(asked: int, target: Alert, draft: AlertDraft, form: dict[str, str]) -> Page:
    return render_template(
        "editor/correct_review.html",
        alert=target,
        asked=asked,
        draft=draft,
        form=form,
        reach=target.counts.delivered,
        diffs={
            "Headline": word_diff(target.title, draft.title),
            "Text": word_diff(target.body, draft.body),
            "Opens": word_diff(target.url, draft.url),
        },
        undo_window_s=ext().settings.undo_window_s,
        # The send's key: this page sent again (a lost answer) sends nothing new.
        key=uuid.uuid4().hex,
    )


@bp.post("/alerts/<int:alert_id>/correct")
@require_role(EDITOR_ROLES, page=True)
def send_correction(alert_id: int) -> Page:
    """Review (before/after) first; Send waits out the undo window, like a send."""
    asked = alert_or_404(alert_id)
    form = {k: request.form.get(k, "").strip() for k in _FIELDS}
    action = request.form.get("action", "review")
    if action == "send" and request.form.get("confirm") == "yes":
        return _send(asked, form)
    try:
        target = room().correction_target(alert_id)
    except DomainError as exc:
        return _correct_page(alert_id, asked, form, exc, exc.status)
    try:
        if action == "edit":
            return _correct_page(alert_id, target, form)
        if action != "send":
            _, draft = room().draft_correction(editor(), alert_id, form)
            return _review_page(alert_id, target, draft, form)
        raise ValidationError("Tick the box to confirm the correction.", "confirm")
    except DomainError as exc:
        return _correct_page(alert_id, target, form, exc, exc.status)


def _send(asked: Alert, form: dict[str, str]) -> Page:
    # Before any check of the chain: the same page sent again (its answer was lost) finds its
    # first correction, which by then is the latest in the chain and not yet correctable.
    key = request.form.get("key", "")[:100]
    try:
        alert = room().correct(
            editor(),
            asked.id,
            form,
            undo_window=True,
            idempotency_key=f"newsroom:{key}" if key else None,
        )
    except DomainError as exc:
        try:
            target = room().correction_target(asked.id)
        except DomainError:
            target = asked
        return _correct_page(asked.id, target, form, exc, exc.status)
    return redirect(url_for("editor.report", alert_id=alert.id))
