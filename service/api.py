"""The JSON API (/api/v1): reader subscriptions and events, editor alerts."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from core import alerts as alert_rules
from core import subscriptions as subs
from core.accounts import EDITOR_ROLES
from core.errors import NotFound, ValidationError
from core.inputs import parse_id
from core.model import Alert, AlertKind
from core.receipts import RECEIPT_FIELD, EventResult, record_event
from service.app import Newsflash
from service.auth import current_principal, require_role
from service.extensions import limiter
from service.inputs import json_body
from service.texts import reader_texts, request_language, topic_name

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def ext() -> Newsflash:
    return current_app.extensions["newsflash"]  # type: ignore[no-any-return]


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def alert_json(alert: Alert) -> dict[str, Any]:
    c = alert.counts
    return {
        "id": str(alert.id),
        "status": alert.status.value,
        "kind": alert.kind.value,
        "title": alert.title,
        "body": alert.body,
        "url": alert.url,
        "image": alert.image,
        "topics": list(alert.topics),
        "urgency": alert.urgency.value,
        "ttl": alert.ttl_s,
        "article_id": alert.article_id,
        "tag": alert.story_key,
        "corrects": None if alert.corrects_id is None else str(alert.corrects_id),
        "created_by": alert.created_by,
        "send_at": iso(alert.send_at),
        "audience": c.audience,
        "counts": {
            "audience": c.audience,
            "delivered": c.delivered,
            "gone": c.gone,
            "failed": c.failed,
            "pending": c.pending,
            "displayed": c.displayed,
            "clicked": c.clicked,
        },
        "created_at": iso(alert.created_at),
        "started_at": iso(alert.started_at),
        "finished_at": iso(alert.finished_at),
        "cancelled_at": iso(alert.cancelled_at),
    }


# -- public: readers ----------------------------------------------------------------------
@bp.after_request
def _cors(response: Response) -> Response:
    """The widget may run on any of the publisher's origins; only they may call the reader API."""
    origin = request.headers.get("Origin")
    if origin and origin in ext().settings.public_origins and request.endpoint in _PUBLIC_ENDPOINTS:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, PUT, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type"
        response.headers["Access-Control-Max-Age"] = "600"
        response.headers.add("Vary", "Origin")
    return response


@bp.get("/config")
def config() -> Response:
    s = ext().settings
    lang = request_language(s)
    response = jsonify(
        {
            "vapidPublicKey": ext().container.signer.public_key_b64,
            "lang": lang,
            "topics": [
                {"slug": t.slug, "name": topic_name(t, lang), "default": t.default}
                for t in s.topics
            ],
            "prompt": {
                **reader_texts(s, lang),
                "reaskDays": s.prompt_reask_days,
                "reaskAfterOffDays": s.prompt_reask_after_off_days,
            },
            "origins": list(s.public_origins),
        }
    )
    response.headers["Cache-Control"] = "public, max-age=300"
    response.vary.add("Accept-Language")
    return response


def _parse_sub(body: dict[str, Any], *, default_topics: bool = True, prefix: str = "") -> Any:
    s = ext().settings
    defaults = tuple(t.slug for t in s.topics if t.default) if default_topics else ()
    return subs.parse_subscription(
        body, ext().container.endpoint_policy, s.topic_slugs, defaults, prefix
    )


def _sub_json(sub: Any) -> dict[str, Any]:
    return {"id": str(sub.id), "topics": list(sub.topics)}


def _subscribe_limit() -> str:
    return ext().settings.rate_limit_subscribe


@bp.post("/subscriptions")
@limiter.limit(_subscribe_limit)
def subscribe() -> tuple[Response, int]:
    parsed = _parse_sub(json_body())
    sub, created = subs.record_opt_in(ext().container.store, parsed, time.time())
    return jsonify(_sub_json(sub)), 201 if created else 200


@bp.put("/subscriptions")
@limiter.limit(_subscribe_limit)
def update_subscription() -> Response:
    body = json_body()
    if "topics" not in body:
        raise ValidationError("topics is required: the full new list of topics", "topics")
    parsed = _parse_sub(body)
    sub = subs.change_topics(ext().container.store, parsed, time.time())
    return jsonify(_sub_json(sub))


@bp.post("/subscriptions/lookup")
@limiter.limit(_subscribe_limit)
def lookup_subscription() -> Response:
    """The manage page asks which topics this browser has (needs endpoint + auth)."""
    body = json_body()
    endpoint = subs.require_str(body, "endpoint", 2048)
    auth = subs.require_str(body, "auth", 64)
    found = subs.owned_subscription(ext().container.store, endpoint, auth)
    return jsonify(_sub_json(found))


@bp.post("/subscriptions/delete")
@limiter.limit(_subscribe_limit)
def unsubscribe() -> tuple[str, int]:
    body = json_body()
    endpoint = subs.require_str(body, "endpoint", 2048)
    auth = subs.require_str(body, "auth", 64)
    subs.remove_subscription(ext().container.store, endpoint, auth)
    return "", 204


@bp.post("/subscriptions/change")
@limiter.limit(_subscribe_limit)
def change_subscription() -> tuple[Response, int]:
    body = json_body()
    old_endpoint = subs.require_str(body, "oldEndpoint", 2048)
    old_auth = subs.require_str(body, "oldAuth", 64)
    new = body.get("subscription")
    if not isinstance(new, dict):
        raise ValidationError(
            "subscription must be the new PushSubscription object", "subscription"
        )
    parsed = _parse_sub(new, default_topics=False, prefix="subscription.")
    sub, created = subs.move_subscription(
        ext().container.store, old_endpoint, old_auth, parsed, time.time()
    )
    return jsonify(_sub_json(sub)), 201 if created else 200


@bp.post("/events")
@limiter.limit("120 per minute")
def event() -> tuple[str, int] | tuple[Response, int]:
    """A service worker reports a display or click, echoing the receipt its push carried.

    Forged, replayed or stale receipts get the same 202 as counted ones: the answer is no
    oracle for guessing receipts or alert ids. Only a genuine receipt whose delivery the
    worker has not recorded yet gets 425, so the service worker tries again shortly.
    """
    body = json_body()
    kind = body.get("type")
    if kind not in ("displayed", "clicked"):
        raise ValidationError("type must be displayed or clicked", "type")
    alert_id = parse_id(body.get("alert"), "alert")
    receipt = body.get(RECEIPT_FIELD)
    if not isinstance(receipt, str) or not receipt:
        raise ValidationError(
            f"{RECEIPT_FIELD} is required: the receipt the push payload carried", RECEIPT_FIELD
        )
    c = ext().container
    result = record_event(c.store, c.receipts, alert_id, kind, receipt)
    if result is EventResult.TOO_EARLY:
        response = jsonify(
            {"error": {"code": "too_early", "message": "try again shortly", "field": None}}
        )
        response.headers["Retry-After"] = "2"
        return response, 425
    return "", 202


_PUBLIC_ENDPOINTS = frozenset(
    f"api.{name}"
    for name in (
        "config",
        "subscribe",
        "update_subscription",
        "lookup_subscription",
        "unsubscribe",
        "change_subscription",
        "event",
    )
)


# -- editors --------------------------------------------------------------------------------
def _editor_name() -> str | None:
    principal = current_principal()
    return None if principal is None else principal.name


def _require_json_for_sessions() -> None:
    # A cookie-authenticated JSON API must not accept simple cross-site form posts.
    if request.method == "POST" and not request.is_json and "Authorization" not in request.headers:
        raise ValidationError("send a JSON body with Content-Type: application/json")


def _alert_or_404(alert_id: int) -> Alert:
    alert = ext().container.store.get_alert(alert_id)
    if alert is None:
        raise NotFound("no such alert", "id")
    return alert


@bp.post("/alerts")
@require_role(EDITOR_ROLES)
def publish_alert() -> tuple[Response, int]:
    _require_json_for_sessions()
    now = time.time()
    draft = alert_rules.parse_alert_request(
        json_body(),
        ext().container.alert_rules,
        now,
        idempotency_key=request.headers.get("Idempotency-Key"),
        created_by=_editor_name(),
    )
    c = ext().container
    alert, created = alert_rules.publish(draft, c.store, c.store, ext().queue, now)
    if created:
        ext().accounts.audit(
            _editor_name(),
            "alert.schedule" if draft.send_at else "alert.send",
            str(alert.id),
            {"title": alert.title, "topics": list(alert.topics)},
        )
    answer = {"id": str(alert.id), "status": alert.status.value, "audience": alert.counts.audience}
    response = jsonify(answer)
    response.headers["Location"] = f"/api/v1/alerts/{alert.id}"
    return response, 202 if created else 200


@bp.get("/alerts")
@require_role(EDITOR_ROLES)
def list_alerts() -> Response:
    before = request.args.get("before", type=int)
    limit = min(max(request.args.get("limit", 50, type=int), 1), 200)
    alerts = ext().container.store.list_alerts(limit=limit, before_id=before)
    return jsonify({"alerts": [alert_json(a) for a in alerts]})


@bp.get("/alerts/<int:alert_id>")
@require_role(EDITOR_ROLES)
def get_alert(alert_id: int) -> Response:
    return jsonify(alert_json(_alert_or_404(alert_id)))


@bp.post("/alerts/<int:alert_id>/cancel")
@require_role(EDITOR_ROLES)
def cancel_alert(alert_id: int) -> Response:
    _require_json_for_sessions()
    alert = alert_rules.cancel(alert_id, ext().container.store, time.time())
    ext().accounts.audit(
        _editor_name(), "alert.cancel", str(alert_id), {"delivered": alert.counts.delivered}
    )
    return jsonify(alert_json(alert))


@bp.post("/alerts/<int:alert_id>/correct")
@require_role(EDITOR_ROLES)
def correct_alert(alert_id: int) -> tuple[Response, int]:
    _require_json_for_sessions()
    original = _alert_or_404(alert_id)
    if original.kind is AlertKind.TEST:
        raise ValidationError("test sends cannot be corrected", "id")
    if original.status.value not in ("sending", "sent"):
        raise ValidationError("only a sending or sent alert can be corrected", "status")
    c = ext().container
    draft = alert_rules.correction_draft(original, json_body(), c.alert_rules, _editor_name())
    alert, _ = alert_rules.publish(
        draft, c.store, c.store, ext().queue, time.time(), story=original.story_key
    )
    ext().accounts.audit(_editor_name(), "alert.correct", str(alert.id), {"corrects": alert_id})
    return jsonify(
        {"id": str(alert.id), "status": alert.status.value, "corrects": str(alert_id)}
    ), 202


@bp.post("/alerts/test")
@require_role(EDITOR_ROLES)
def test_alert() -> tuple[Response, int]:
    """Deliver only to the calling editor's own test devices; never counted as the real send."""
    _require_json_for_sessions()
    principal = current_principal()
    assert principal is not None
    if principal.user_id is None:
        raise ValidationError(
            "test sends go to a logged-in editor's test devices; log in", "Authorization"
        )
    from dataclasses import replace

    from core.model import AlertKind as Kind

    body = json_body()
    draft = alert_rules.parse_alert_request(
        body, ext().container.alert_rules, time.time(), created_by=principal.name
    )
    draft = replace(
        draft,
        title=("[TEST] " + draft.title)[: alert_rules.MAX_TITLE],
        kind=Kind.TEST,
        article_id=None,
        idempotency_key=None,
        send_at=None,
        test_user_id=principal.user_id,
    )
    c = ext().container
    alert, _ = alert_rules.publish(draft, c.store, c.store, ext().queue, time.time())
    ext().accounts.audit(principal.name, "alert.test", str(alert.id), {"title": draft.title})
    return jsonify({"id": str(alert.id), "status": alert.status.value}), 202


@bp.get("/openapi.json")
def openapi() -> Response:
    from service.openapi import document

    return jsonify(document())
