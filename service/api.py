"""The JSON API (/api/v1): reader subscriptions and events, editor alerts."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request

from core.accounts import EDITOR_ROLES
from core.errors import NotFound, ValidationError
from core.model import Alert
from core.receipts import EventResult
from core.reports import not_sent_of, pending_of
from core.translations import translations_json
from core.usecases.newsroom import Editor
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
        "lang": alert.lang,
        "translations": translations_json(alert.translations),
        "tag": alert.story_key,
        "corrects": None if alert.corrects_id is None else str(alert.corrects_id),
        "utm": alert.utm,
        "created_by": alert.created_by,
        "send_at": iso(alert.send_at),
        "audience": c.audience,
        "counts": {
            "audience": c.audience,
            "delivered": c.delivered,
            "gone": c.gone,
            "failed": c.failed,
            # A called-off or stopped alert owes nobody a push: the rest is "not sent".
            "pending": pending_of(alert),
            "not_sent": not_sent_of(alert),
            "displayed": c.displayed,
            "clicked": c.clicked,
            "held": c.held,
            "released": c.released,
            "capped": c.capped,
            "expired": c.expired,
        },
        "created_at": iso(alert.created_at),
        "started_at": iso(alert.started_at),
        "finished_at": iso(alert.finished_at),
        "cancelled_at": iso(alert.cancelled_at),
    }


# -- public: readers ----------------------------------------------------------------------
@bp.after_request
def _cors(response: Response) -> Response:
    return reader_cors(response, _PUBLIC_ENDPOINTS)


def reader_cors(response: Response, public: Collection[str]) -> Response:
    """The widget may run on any of the publisher's origins; only they may call the reader API
    (the endpoints in `public`)."""
    origin = request.headers.get("Origin")
    if origin and origin in ext().settings.public_origins and request.endpoint in public:
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


# Per caller address (service/extensions.py): reports that count nothing, and daily check-ins.
EVENTS_LIMIT = "120 per minute"
RESYNC_LIMIT = "600 per minute"


def _sub_json(sub: Any) -> dict[str, Any]:
    # lang: the language of the reader's alerts, which the manage page then speaks.
    return {"id": str(sub.id), "topics": list(sub.topics), "lang": sub.lang}


def _subscribe_limit() -> str:
    return ext().settings.rate_limit_subscribe


def _not_a_resync(_response: Response) -> bool:
    """A subscribed browser's daily check-in (the widget posts its stored subscription without
    topics: 200, the same endpoint and keys again) does not use up the opt-in budget: many
    readers share one carrier address (CGNAT on mobile networks), and their check-ins must not
    turn new readers away. RESYNC_LIMIT bounds them on its own."""
    return not g.get("checked_in", False)


@bp.post("/subscriptions")
@limiter.limit(_subscribe_limit, deduct_when=_not_a_resync)
@limiter.limit(RESYNC_LIMIT)
def subscribe() -> tuple[Response, int]:
    body = json_body()
    sub, created = ext().container.readers.subscribe(body)
    g.checked_in = not created and "topics" not in body
    return jsonify(_sub_json(sub)), 201 if created else 200


@bp.put("/subscriptions")
@limiter.limit(_subscribe_limit)
def update_subscription() -> Response:
    return jsonify(_sub_json(ext().container.readers.change_subscription(json_body())))


@bp.post("/subscriptions/lookup")
@limiter.limit(_subscribe_limit)
def lookup_subscription() -> Response:
    """The manage page asks which topics this browser has (needs endpoint + auth)."""
    return jsonify(_sub_json(ext().container.readers.lookup(json_body())))


@bp.post("/subscriptions/delete")
@limiter.limit(_subscribe_limit)
def unsubscribe() -> tuple[str, int]:
    ext().container.readers.unsubscribe(json_body())
    return "", 204


@bp.post("/subscriptions/change")
@limiter.limit(_subscribe_limit)
def change_subscription() -> tuple[Response, int]:
    sub, created = ext().container.readers.move(json_body())
    return jsonify(_sub_json(sub)), 201 if created else 200


def _not_newly_counted(_response: Response) -> bool:
    """Only reports that count nothing use up a caller's budget (forged, replayed or already
    counted receipts, bad bodies): genuine displays and clicks from many readers behind one
    carrier address (CGNAT) are never turned away, and each counts once per reader anyway."""
    return g.get("event_result") not in (EventResult.COUNTED, EventResult.TOO_EARLY)


@bp.post("/events")
@limiter.limit(EVENTS_LIMIT, deduct_when=_not_newly_counted)
def event() -> tuple[str, int] | tuple[Response, int]:
    """A service worker reports a display or click, echoing the receipt its push carried.

    Forged, replayed or stale receipts get the same 202 as counted ones: the answer is no
    oracle for guessing receipts or alert ids. Only a genuine receipt whose delivery the
    worker has not recorded yet gets 425, so the service worker tries again shortly.
    """
    result = g.event_result = ext().container.readers.report_event(json_body())
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
def _editor() -> Editor:
    principal = current_principal()
    if principal is None:
        return Editor(None)
    return Editor(principal.name, principal.user_id)


def _require_json_for_sessions() -> None:
    # A cookie-authenticated JSON API must not accept simple cross-site form posts.
    if request.method == "POST" and not request.is_json and "Authorization" not in request.headers:
        raise ValidationError("send a JSON body with Content-Type: application/json")


def idempotency_key() -> str | None:
    """The request's Idempotency-Key header; the core checks it (one rule for every send)."""
    return request.headers.get("Idempotency-Key")


def _alert_or_404(alert_id: int) -> Alert:
    alert = ext().container.alerts.get_alert(alert_id)
    if alert is None:
        raise NotFound("no such alert", "id")
    return alert


@bp.post("/alerts")
@require_role(EDITOR_ROLES)
def publish_alert() -> tuple[Response, int]:
    _require_json_for_sessions()
    published = ext().container.newsroom.publish(
        _editor(), json_body(), idempotency_key=idempotency_key()
    )
    alert = published.alert
    answer = {"id": str(alert.id), "status": alert.status.value, "audience": alert.counts.audience}
    response = jsonify(answer)
    response.headers["Location"] = f"/api/v1/alerts/{alert.id}"
    return response, 202 if published.created else 200


@bp.get("/alerts")
@require_role(EDITOR_ROLES)
def list_alerts() -> Response:
    before = request.args.get("before", type=int)
    limit = min(max(request.args.get("limit", 50, type=int), 1), 200)
    alerts = ext().container.alerts.list_alerts(limit=limit, before_id=before)
    return jsonify({"alerts": [alert_json(a) for a in alerts]})


@bp.get("/alerts/<int:alert_id>")
@require_role(EDITOR_ROLES)
def get_alert(alert_id: int) -> Response:
    body = alert_json(_alert_or_404(alert_id))
    gate = ext().container.readiness.gate(alert_id)
    if gate is not None:  # the publish-readiness gate: "waiting" while the article is not up
        body["article_gate"] = {"state": gate.state.value, "last_answer": gate.last_answer}
    return jsonify(body)


@bp.post("/alerts/<int:alert_id>/cancel")
@require_role(EDITOR_ROLES)
def cancel_alert(alert_id: int) -> Response:
    _require_json_for_sessions()
    return jsonify(alert_json(ext().container.newsroom.cancel(_editor(), alert_id).alert))


@bp.post("/alerts/<int:alert_id>/correct")
@require_role(EDITOR_ROLES)
def correct_alert(alert_id: int) -> tuple[Response, int]:
    _require_json_for_sessions()
    # A retry with the same key answers with the first correction; another body, 409.
    alert = ext().container.newsroom.correct(
        _editor(), alert_id, json_body(), idempotency_key=idempotency_key()
    )
    return jsonify(
        {"id": str(alert.id), "status": alert.status.value, "corrects": str(alert.corrects_id)}
    ), 202


@bp.post("/alerts/test")
@require_role(EDITOR_ROLES)
def test_alert() -> tuple[Response, int]:
    """Deliver only to the calling editor's own test devices; never counted as the real send."""
    _require_json_for_sessions()
    alert = ext().container.newsroom.test_send(_editor(), json_body())
    return jsonify({"id": str(alert.id), "status": alert.status.value}), 202


@bp.get("/openapi.json")
def openapi() -> Response:
    from service.openapi import document

    return jsonify(document())
