"""Newsroom pages (/editor): login, compose, test, schedule, history, reports, corrections, audit."""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

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
from werkzeug.exceptions import TooManyRequests
from werkzeug.wrappers import Response as BaseResponse

from core import alerts as alert_rules
from core import newsroom
from core.accounts import EDITOR_ROLES, Principal, Role
from core.adapters.newsroom_sql import SqlNewsroom
from core.errors import Conflict, DomainError, NotFound, ValidationError
from core.model import Alert, AlertDraft, AlertStatus
from core.newsroom import ArticleFetcher
from core.usecases.newsroom import Editor, NeedsConfirmation, Newsroom
from service import csrf, wording
from service.app import Newsflash
from service.auth import begin_session, current_principal, end_session, has_session, require_role
from service.errors import error_response
from service.extensions import limiter
from service.inputs import json_body
from service.redirects import safe_next

bp = Blueprint("editor", __name__, url_prefix="/editor")

Page = str | BaseResponse | tuple[str, int]


def ext() -> Newsflash:
    return current_app.extensions["newsflash"]  # type: ignore[no-any-return]


def newsroom_store() -> SqlNewsroom:
    return ext().container.newsroom_store


def room() -> Newsroom:
    return ext().container.newsroom


def me() -> Principal:
    principal = current_principal()
    assert principal is not None  # require_role ran first
    return principal


def editor() -> Editor:
    principal = me()
    return Editor(principal.name, principal.user_id)


@bp.before_request
def _check_csrf() -> Response | None:
    return csrf.rejected()


@bp.app_context_processor
def _template_globals() -> dict[str, Any]:
    origin = ext().settings.public_origins[0]
    return {
        "csrf_token": csrf.csrf_token,
        "newsroom_user": _session_user,
        "nf_site": urlsplit(origin).netloc,
        "nf_site_origin": origin,
        "nf_zone": ext().settings.newsroom_timezone,
        "nf_clock": lambda: wording.local_clock(time.time(), ext().settings.timezone),
    }


@bp.record_once
def _wording_globals(state: Any) -> None:
    # Globals, not context: the macros in _macros.html are imported without the context.
    state.app.jinja_env.globals.update(
        nf_state=_state_word,
        nf_state_class=wording.state_class,
        nf_field_message=_field_message,
    )


def _state_word(alert: Alert) -> str:
    undo = newsroom.in_undo_window(alert, time.time(), ext().settings.undo_window_s)
    return wording.state_word(alert, undo)


def _field_message(error: DomainError) -> str:
    return wording.field_message(error, time.time(), ext().settings.timezone)


def _session_user() -> Principal | None:
    return current_principal() if has_session() else None


@bp.app_template_filter("nf_time")
def _local_time(ts: float | None, with_date: bool = True) -> str:
    """A time in the newsroom's zone, as editors read it."""
    if ts is None:
        return "—"
    when = datetime.fromtimestamp(ts, ext().settings.timezone)
    return when.strftime("%a %d %b %H:%M:%S %Z" if with_date else "%H:%M:%S %Z")


@bp.app_template_filter("nf_ttl")
def _ttl(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    return f"{seconds // 60} min"


@bp.app_template_filter("nf_duration")
def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest} s"


# -- login ----------------------------------------------------------------------------------
def _login_limit() -> str:
    return ext().settings.rate_limit_login


@bp.errorhandler(TooManyRequests)
def _too_many(exc: TooManyRequests) -> tuple[str, int]:
    retry = exc.get_response().headers.get("Retry-After")
    if request.endpoint == "editor.login_submit":
        ext().container.access.login_rate_limited(_typed_email(), request.remote_addr)
    message = "Too many login attempts from this address. Wait a minute and try again."
    return render_template("editor/login.html", error=message, retry_after=retry), 429


# Control characters never belong in an email or a filter, and PostgreSQL refuses NUL in text:
# such input is refused before it reaches the database.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _typed_email() -> str | None:
    email = request.form.get("email", "").strip().lower()[:320]
    return None if _CONTROL.search(email) else email or None


@bp.get("/login", endpoint="login")
def login_form() -> Page:
    if has_session() and current_principal() is not None:
        return redirect(safe_next(request.args.get("next")) or url_for("editor.history"))
    return render_template("editor/login.html", next=safe_next(request.args.get("next")))


@bp.post("/login")
@limiter.limit(_login_limit, methods=["POST"])
def login_submit() -> Page:
    email = _typed_email() or ""
    password = request.form.get("password", "")
    target = safe_next(request.form.get("next"))
    if _CONTROL.search(request.form.get("email", "")):
        error = "Email: control characters are not allowed."
        return render_template("editor/login.html", error=error, next=target), 400
    principal = ext().container.access.login(email, password, request.remote_addr)
    if principal is None:
        return render_template(
            "editor/login.html", error="Wrong email or password.", email=email, next=target
        ), 401
    end_session()
    csrf.rotate()
    begin_session(principal)
    if target is None and principal.role is Role.OPS:
        target = "/ops"
    return redirect(target or url_for("editor.history"))


@bp.post("/logout")
def logout() -> BaseResponse:
    principal = current_principal()
    if principal is not None:
        ext().container.access.logout(principal)
    end_session()
    csrf.rotate()
    return redirect(url_for("editor.login"))


# -- history and reports --------------------------------------------------------------------
@bp.get("")
@bp.get("/")
@require_role(EDITOR_ROLES, page=True)
def history() -> Page:
    before = request.args.get("before", type=int)
    alerts = ext().container.store.list_alerts(limit=50, before_id=before)
    return render_template(
        "editor/history.html",
        alerts=alerts,
        older=alerts[-1].id if len(alerts) == 50 else None,
        now=time.time(),
        undo_window_s=ext().settings.undo_window_s,
    )


def _alert_or_404(alert_id: int) -> Alert:
    alert = ext().container.store.get_alert(alert_id)
    if alert is None:
        raise NotFound("no such alert", "id")
    return alert


@bp.get("/alerts/<int:alert_id>")
@require_role(EDITOR_ROLES, page=True)
def report(alert_id: int) -> Page:
    try:
        alert = _alert_or_404(alert_id)
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
    return ext().container.store.get_alert(alert_id)


@bp.get("/alerts/<int:alert_id>/milestones")
@require_role(EDITOR_ROLES)
def milestones(alert_id: int) -> Response:
    """The report's slower numbers (the live counts come from GET /api/v1/alerts/<id>)."""
    result = newsroom.build_report(_alert_or_404(alert_id), newsroom_store())
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
    }


def _local_input(ts: float) -> str:
    return datetime.fromtimestamp(ts, ext().settings.timezone).strftime("%Y-%m-%dT%H:%M")


def _posted_form() -> dict[str, Any]:
    defaults = _default_form()
    form: dict[str, Any] = {k: request.form.get(k, "") for k in defaults}
    form["topics"] = request.form.getlist("topics")
    if not form["send_at"] and form["when"] != "later":
        form["send_at"] = defaults["send_at"]
    return form


def _ttl_choices() -> list[int]:
    return sorted({*newsroom.TTL_CHOICES_S, ext().settings.default_ttl_s})


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
        ttl_choices=_ttl_choices(),
        error=error,
        notice=notice,
        editing=editing,
        test_devices=devices,
        audience=ext().container.store.audience_size(form["topics"]) if form["topics"] else 0,
        limits={"title": alert_rules.MAX_TITLE, "body": alert_rules.MAX_BODY},
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
    found = newsroom.prefill_from_article(form["url"], ext().settings.public_origins, _fetcher())
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
        audience=ext().container.store.audience_size(draft.topics),
        all_topics=_all_topics(draft.topics),
        topic_names={t.slug: t.name for t in ext().settings.topics},
        undo_window_s=ext().settings.undo_window_s,
        error=error,
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
    except NeedsConfirmation as exc:
        return _review(form, exc.message, 400)
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
    size = ext().container.store.audience_size(topics) if topics else 0
    return jsonify({"audience": size, "topics": topics, "all_topics": _all_topics(topics)})


@bp.post("/prefill")
@require_role(EDITOR_ROLES)
def prefill() -> Response:
    url = json_body().get("url")
    if not isinstance(url, str) or not url.strip():
        raise ValidationError("url is required", "url")
    found = newsroom.prefill_from_article(url, ext().settings.public_origins, _fetcher())
    return jsonify(found)


# -- schedule -------------------------------------------------------------------------------
@bp.get("/scheduled")
@require_role(EDITOR_ROLES, page=True)
def scheduled() -> Page:
    alerts = ext().container.store.list_alerts(limit=200, statuses=["scheduled"])
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
    }


@bp.get("/alerts/<int:alert_id>/edit")
@require_role(EDITOR_ROLES, page=True)
def edit_scheduled(alert_id: int) -> Page:
    alert = _alert_or_404(alert_id)
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
        return _compose_page(form, error=exc, status=exc.status, editing=_alert_or_404(alert_id))
    return redirect(url_for("editor.scheduled", notice=f"Saved alert #{alert_id}."))


# -- corrections ----------------------------------------------------------------------------
@bp.get("/alerts/<int:alert_id>/correct")
@require_role(EDITOR_ROLES, page=True)
def correct_form(alert_id: int) -> Page:
    alert = _alert_or_404(alert_id)
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
    original = _alert_or_404(alert_id)
    form = {k: request.form.get(k, "").strip() for k in ("title", "body", "url")}
    try:
        if request.form.get("confirm") != "yes":
            raise ValidationError("Tick the box to confirm the correction.", "confirm")
        alert = room().correct(editor(), alert_id, form)
    except DomainError as exc:
        return _correct_page(original, form, exc, exc.status)
    return redirect(url_for("editor.report", alert_id=alert.id))


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


# -- audit ----------------------------------------------------------------------------------
AUDIT_PAGE = 50


@bp.get("/audit")
@require_role({Role.ADMIN}, page=True)
def audit() -> Page:
    """Newest first, a page at a time, narrowed by who, what and when (all in the query string)."""
    args = request.args
    filters = {k: args.get(k, "").strip()[:320] for k in ("actor", "action", "from", "to")}
    try:
        for field, value in filters.items():
            if _CONTROL.search(value):
                raise ValidationError(f"{field}: control characters are not allowed", field)
        since = _day_start(filters["from"], "from")
        until = _day_start(filters["to"], "to", days_later=1)  # the "to" day is included
        before = _whole(args.get("before", ""), "before")
    except ValidationError as exc:
        return render_template(
            "editor/audit.html", entries=[], filters=filters, actions=[], error=exc.message
        ), 400
    accounts = ext().accounts
    entries = accounts.audit_entries(
        AUDIT_PAGE + 1,
        before_id=before,
        actor=filters["actor"] or None,
        action=filters["action"] or None,
        since=since,
        until=until,
    )
    older = entries[AUDIT_PAGE - 1]["id"] if len(entries) > AUDIT_PAGE else None
    entries = entries[:AUDIT_PAGE]
    for entry in entries:
        try:
            entry["detail"] = json.loads(entry["detail"] or "{}")
        except ValueError:
            entry["detail"] = {"raw": entry["detail"]}
    return render_template(
        "editor/audit.html",
        entries=entries,
        filters=filters,
        actions=accounts.audit_actions(),
        older=older,
        newer=before is not None,
        page_args={k: v for k, v in filters.items() if v},
        audit_sentence=_sentences_for(entries),
    )


def _sentences_for(entries: list[dict[str, Any]]) -> Any:
    """audit_sentence(entry) for the template, with the alerts the page names loaded once."""
    store = ext().container.store
    ids = {int(e["target"]) for e in entries if _names_alert(e)}
    alerts = {i: a for i in ids if (a := store.get_alert(i)) is not None}

    def sentence(entry: dict[str, Any]) -> str:
        alert = alerts.get(int(entry["target"])) if _names_alert(entry) else None
        return wording.audit_sentence(entry, alert)

    return sentence


def _names_alert(entry: dict[str, Any]) -> bool:
    target = entry.get("target") or ""
    return (
        str(entry.get("action", "")).startswith("alert.") and target.isdigit() and len(target) < 19
    )


def _day_start(value: str, field: str, days_later: int = 0) -> float | None:
    """A YYYY-MM-DD date as the start of that day (or one days_later) in the newsroom's zone."""
    if not value:
        return None
    try:
        day = datetime.strptime(value, "%Y-%m-%d") + timedelta(days=days_later)
    except (ValueError, OverflowError):
        raise ValidationError(f"{field}: a date as YYYY-MM-DD", field) from None
    return day.replace(tzinfo=ext().settings.timezone).timestamp()


def _whole(value: str, field: str) -> int | None:
    if not value:
        return None
    if not value.isascii() or not value.isdigit() or len(value) > 18:
        raise ValidationError(f"{field}: a whole number", field)
    return int(value)


@bp.errorhandler(NotFound)
def _not_found(exc: NotFound) -> Response | tuple[str, int]:
    if request.is_json or request.accept_mimetypes.best == "application/json":
        return error_response(404, exc.code, exc.message, exc.field)
    return render_template("editor/missing.html"), 404
