"""The CMS webhook (POST /api/v1/hooks/cms): a signed article event may become an alert."""

from __future__ import annotations

import logging
import time

from flask import Blueprint, Response, current_app, jsonify, request

from core import correlation, webhooks
from core.inputs import parse_json
from service.app import Newsflash
from service.errors import error_response
from service.inputs import read_body

bp = Blueprint("webhooks", __name__, url_prefix="/api/v1/hooks")
log = logging.getLogger("newsflash.webhooks")

# Article events carry more than an alert; still small, so one hostile sender can't hog memory.
MAX_WEBHOOK_BYTES = 64 * 1024


def ext() -> Newsflash:
    return current_app.extensions["newsflash"]  # type: ignore[no-any-return]


@bp.post("/cms")
def cms() -> tuple[Response, int]:
    settings = ext().settings
    if not settings.cms_webhook_secret:
        return error_response(
            503, "not_configured", "NEWSFLASH_CMS_WEBHOOK_SECRET is not set; run `newsflash init`"
        ), 503
    try:
        key = webhooks.secret_bytes(settings.cms_webhook_secret)
    except ValueError:
        log.error("NEWSFLASH_CMS_WEBHOOK_SECRET is not whsec_ + base64")
        return error_response(503, "not_configured", "the webhook secret is malformed"), 503
    raw = read_body(MAX_WEBHOOK_BYTES)
    now = time.time()
    msg_id = webhooks.verify(
        key,
        request.headers.get("webhook-id"),
        request.headers.get("webhook-timestamp"),
        request.headers.get("webhook-signature"),
        raw,
        now,
    )
    # The CMS knows its message by webhook-id: the same id then finds it in our logs.
    correlation.annotate(request_id=correlation.sane_request_id(msg_id))
    # Parsed only once the signature over the raw bytes holds: unsigned senders reach no parser.
    payload = parse_json(raw, "the webhook body")
    published = ext().container.newsroom.receive_cms(msg_id, payload)
    if published is None:
        return jsonify({"alert": None, "reason": "the article is not flagged breaking"}), 200
    alert, created = published.alert, published.created
    answer = {
        "alert": {
            "id": str(alert.id),
            "status": alert.status.value,
            "audience": alert.counts.audience,
        },
        "created": created,
    }
    return jsonify(answer), 202 if created else 200
