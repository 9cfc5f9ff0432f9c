"""Newsroom compose: draft, test send, review, send (with the undo window), schedule and edit,
the audience size, article prefill and test devices."""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Any

from flask import Response, jsonify, redirect, render_template, request, url_for

from core import alerts as alert_rules
from core import newsroom
from core.accounts import EDITOR_ROLES
from core.duplicates import DuplicateAlert
from core.errors import Conflict, DomainError, NotFound, ValidationError
from core.inputs import whole_number
from core.model import Alert, AlertDraft, AlertStatus
from core.newsroom import ArticleFetcher
from core.templates import with_prefix
from core.usecases.newsroom import NeedsConfirmation
from service import audience_split as languages
from service.auth import require_role
from service.editor import Page, alert_or_404, bp, editor, ext, me, newsroom_store, room
from service.inputs import json_body
from service.templates_admin import templates


# -- compose, test, review, send --------------------------------------------------------------
def _topic_choices() -> list[dict[str, Any]]:
    return [{"slug": t.slug, "name": t.name, "default": t.default} for t in ext().settings.topics]


def _default_form() -> dict[str, Any]:
    s = ext().settings
    topics = [t.slug for t in s.topics if t.default]
    return {
        "title": "",
        "body": "",
        "url": "",
        "image": "",
        "topics": topics,
        "urgency": newsroom.urgency_default(topics).value,
        "ttl": str(s.default_ttl_s),
        "when": "now",
        "send_at": _local_input(time.time() + 15 * 60),
        "duplicate_ok": "",
        "wait_for_article": "yes",
        "followable": "",
        "no_utm": "",
        "tr_lang": languages.other_language(s.default_lang),
        "title_tr": "",
        "body_tr": "",
    }


def _local_input(ts: float) -> str:
    return datetime.fromtimestamp(ts, ext().settings.timezone).strftime("%Y-%m-%dT%H:%M")


def _posted_form() -> dict[str, Any]:
    defaults = _default_form()
    form: dict[str, Any] = {k: request.form.get(k, "") for k in defaults}
    form["topics"] = request.form.getlist("topics")
    form["tr_lang"] = form["tr_lang"] or defaults["tr_lang"]
    if not form["send_at"] and form["when"] != "later":
        form["send_at"] = defaults["send_at"]
    return form


def _ttl_choices(form: dict[str, Any]) -> list[int]:
    """The expiry list, with the form's own value when it is another (a template's)."""
    ttl = whole_number(str(form.get("ttl", "")), 7)
    chosen = set() if ttl is None else {ttl}
    return sorted({*newsroom.TTL_CHOICES_S, ext().settings.default_ttl_s, *chosen})


def _with_format(form: dict[str, Any], name: str) -> dict[str, Any]:
    """A template's button without JavaScript (formats.js does the same in the page): its
    prefix before the headline (instead of another template's), its topics, urgency and TTL."""
    known = {t.name: t for t in templates().list()}
    chosen = known.get(name)
    if chosen is None:
        have = ", ".join(sorted(known)) or "none"
        raise ValidationError(f"no template named {name[:64]!r} (have: {have})", "template")
    topics = [x for x in chosen.topics if x in {t.slug for t in ext().settings.topics}]
    return {
        **form,
        "title": with_prefix(form["title"], chosen.prefix, [t.prefix for t in known.values()]),
        "topics": topics or form["topics"],
        "urgency": chosen.urgency.value,
        "ttl": str(chosen.ttl_s),
        "format": chosen.name,
    }


def _compose_page(
    form: dict[str, Any],
    *,
    error: DomainError | None = None,
    notice: str | None = None,
    status: int = 200,
    editing: Alert | None = None,
) -> tuple[str, int]:
    principal = me()
    devices = (
        0 if principal.user_id is None else newsroom_store().test_device_count(principal.user_id)
    )
    return render_template(
        "editor/compose.html",
        form=form,
        topics=_topic_choices(),
        ttl_choices=_ttl_choices(form),
        error=error,
        notice=notice,
        editing=editing,
        test_devices=devices,
        audience=ext().container.subscriptions.audience_size(form["topics"])
        if form["topics"]
        else 0,
        limits={"title": alert_rules.MAX_TITLE, "body": alert_rules.MAX_BODY},
        languages=languages.compose_languages(ext().settings.default_lang),
        timezone=ext().settings.newsroom_timezone,
        undo_window_s=ext().settings.undo_window_s,
    ), status


def _draft_from(form: dict[str, Any]) -> AlertDraft:
    return room().draft(editor(), newsroom.request_from_form(form, form["topics"]))


@bp.get("/new")
@require_role(EDITOR_ROLES, page=True)
def compose() -> Page:
    return _compose_page(_default_form())


@bp.post("/new")
@require_role(EDITOR_ROLES, page=True)
def compose_action() -> Page:
    action = request.form.get("action", "review")
    form = _posted_form()
    try:
        if action == "prefill":
            return _prefill_page(form)
        if action.startswith("format:"):
            return _compose_page(_with_format(form, action.removeprefix("format:")))
        if action == "edit":
            return _compose_page(form)
        if action == "test":
            return _test_send(form)
        if action == "send":
            return _send(form)
        return _review(form)
    except DomainError as exc:
        return _compose_page(form, error=exc, status=exc.status)


def _prefill_page(form: dict[str, Any]) -> Page:
    found = newsroom.prefill_from_article(
        form["url"], ext().settings.public_origins, _fetcher(), [ext().settings.site_name]
    )
    form.update(found)
    return _compose_page(form, notice="Filled in from the article: check and edit before sending.")


def _fetcher() -> ArticleFetcher:
    return ext().container.fetcher


def _test_send(form: dict[str, Any]) -> Page:
    body = newsroom.request_from_form(form, form["topics"])
    alert = room().test_send(editor(), body)
    return _compose_page(
        form,
        notice=f"Test sent to your test devices only, as “{alert.title}”. "
        "It is not the real send; readers got nothing.",
    )


def _all_topics(topics: list[str] | tuple[str, ...]) -> bool:
    return room().reaches_every_topic(topics)


def _review(form: dict[str, Any], error: str | None = None, status: int = 200) -> Page:
    draft = _draft_from(form)
    return render_template(
        "editor/review.html",
        form=form,
        draft=draft,
        key=request.form.get("key") or uuid.uuid4().hex,
        audience=ext().container.subscriptions.audience_size(draft.topics),
        all_topics=_all_topics(draft.topics),
        topic_names={t.slug: t.name for t in ext().settings.topics},
        undo_window_s=ext().settings.undo_window_s,
        error=error,
        duplicate=room().duplicate_of(draft),
        languages=languages.compose_languages(ext().settings.default_lang),
        by_language=languages.audience_by_language(ext().container, draft),
    ), status


def _send(form: dict[str, Any]) -> Page:
    if request.form.get("confirm") != "yes":
        return _review(form, "Confirm the send first.", 400)
    key = request.form.get("key", "")[:100] or None
    try:
        published = room().publish(
            editor(),
            newsroom.request_from_form(form, form["topics"]),
            idempotency_key=f"newsroom:{key}" if key else None,
            undo_window=True,
            confirmed_everyone=request.form.get("confirm_all") == "yes",
        )
    except (NeedsConfirmation, DuplicateAlert) as exc:
        return _review(form, exc.message, exc.status)
    alert = published.alert
    if published.scheduled:
        return redirect(url_for("editor.scheduled", notice=f"Scheduled alert #{alert.id}."))
    return redirect(url_for("editor.report", alert_id=alert.id))


@bp.get("/audience")
@require_role(EDITOR_ROLES)
def audience() -> Response:
    """How many subscriptions the chosen topics reach (compose shows it before sending)."""
    topics = request.args.getlist("topics")
    known = ext().settings.topic_slugs
    unknown = [t for t in topics if t not in known]
    if unknown:
        raise ValidationError(f"unknown topic {unknown[0]!r}", "topics")
    size = ext().container.subscriptions.audience_size(topics) if topics else 0
    return jsonify({"audience": size, "topics": topics, "all_topics": _all_topics(topics)})


@bp.post("/prefill")
@require_role(EDITOR_ROLES)
def prefill() -> Response:
    url = json_body().get("url")
    if not isinstance(url, str) or not url.strip():
        raise ValidationError("url is required", "url")
    found = newsroom.prefill_from_article(
        url, ext().settings.public_origins, _fetcher(), [ext().settings.site_name]
    )
    return jsonify(found)


# -- schedule -------------------------------------------------------------------------------
@bp.get("/scheduled")
@require_role(EDITOR_ROLES, page=True)
def scheduled() -> Page:
    alerts = ext().container.alerts.list_alerts(limit=200, statuses=["scheduled"])
    alerts.sort(key=lambda a: a.send_at or 0)
    return render_template(
        "editor/scheduled.html",
        alerts=alerts,
        notice=request.args.get("notice"),
        timezone=ext().settings.newsroom_timezone,
    )


def _form_of(alert: Alert) -> dict[str, Any]:
    return {
        "title": alert.title,
        "body": alert.body,
        "url": alert.url,
        "image": alert.image or "",
        "topics": list(alert.topics),
        "urgency": alert.urgency.value,
        "ttl": str(alert.ttl_s),
        "when": "later",
        "send_at": _local_input(alert.send_at or time.time()),
        "no_utm": "" if alert.utm else "yes",
        **_translation_fields(alert),
    }


def _translation_fields(alert: Alert) -> dict[str, str]:
    other = languages.other_language(alert.lang or ext().settings.default_lang)
    words = next((t for t in alert.translations if t.lang == other), None)
    return {
        "tr_lang": other,
        "title_tr": words.title if words else "",
        "body_tr": words.body if words else "",
    }


@bp.get("/alerts/<int:alert_id>/edit")
@require_role(EDITOR_ROLES, page=True)
def edit_scheduled(alert_id: int) -> Page:
    alert = alert_or_404(alert_id)
    if alert.status is not AlertStatus.SCHEDULED:
        return redirect(url_for("editor.report", alert_id=alert_id, notice="It already fired."))
    return _compose_page(_form_of(alert), editing=alert)


@bp.post("/alerts/<int:alert_id>/edit")
@require_role(EDITOR_ROLES, page=True)
def save_scheduled(alert_id: int) -> Page:
    form = _posted_form()
    try:
        body = newsroom.request_from_form(form, form["topics"])
        room().edit_scheduled(editor(), alert_id, body)
    except (NotFound, Conflict) as exc:
        return redirect(url_for("editor.report", alert_id=alert_id, notice=exc.message))
    except DomainError as exc:
        return _compose_page(form, error=exc, status=exc.status, editing=alert_or_404(alert_id))
    return redirect(url_for("editor.scheduled", notice=f"Saved alert #{alert_id}."))


# -- test devices ---------------------------------------------------------------------------
@bp.post("/test-device")
@require_role(EDITOR_ROLES)
def test_device() -> Response:
    """Mark (or unmark) this browser's subscription as the logged-in editor's test device.

    Called from /manage with the browser's own endpoint and auth secret, which prove the
    subscription belongs to this browser.
    """
    body = json_body()
    endpoint, auth, on = body.get("endpoint"), body.get("auth"), body.get("on", True)
    if not isinstance(endpoint, str) or not endpoint:
        raise ValidationError("endpoint is required", "endpoint")
    if not isinstance(auth, str) or not auth:
        raise ValidationError("auth is required", "auth")
    if not isinstance(on, bool):
        raise ValidationError("on must be true or false", "on")
    devices = room().mark_test_device(editor(), endpoint, auth, on)
    return jsonify({"test_device": on, "test_devices": devices})
