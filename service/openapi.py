"""The OpenAPI 3.1 document served at /api/v1/openapi.json."""

from __future__ import annotations

from typing import Any

from core.subscriptions import READER_LANGUAGES

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "field"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "field": {
                    "type": ["string", "null"],
                    "description": "the field to blame (a dotted path), null when none is",
                },
            },
        }
    },
}

_KEYS = {
    "type": "object",
    "required": ["p256dh", "auth"],
    "properties": {"p256dh": {"type": "string"}, "auth": {"type": "string"}},
}

_SUBSCRIPTION = {
    "type": "object",
    "required": ["endpoint", "keys"],
    "properties": {
        "endpoint": {"type": "string", "format": "uri", "maxLength": 2048},
        "expirationTime": {"type": ["number", "null"]},
        "keys": _KEYS,
        "topics": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "lang": {
            "type": "string",
            "enum": list(READER_LANGUAGES),
            "description": "the reader's language",
        },
        "platform": {
            "type": "string",
            "enum": ["android", "ios", "desktop"],
            "description": "the reader's device as the widget sees it (platform counts)",
        },
    },
}

_SUB_ANSWER = {
    "type": "object",
    "required": ["id", "topics"],
    "properties": {
        "id": {"type": "string"},
        "topics": {"type": "array", "items": {"type": "string"}},
        "lang": {
            "type": "string",
            "enum": list(READER_LANGUAGES),
            "description": "the alerts' language",
        },
    },
}

_COUNT_NAMES = ("audience", "delivered", "gone", "failed", "pending", "displayed", "clicked")
_COUNTS = {
    "type": "object",
    "required": [*_COUNT_NAMES, "not_sent"],
    "description": "pending is 0 once an alert is cancelled (called off or stopped); "
    "not_sent is then the part of the audience never pushed to.",
    "properties": {k: {"type": "integer", "minimum": 0} for k in (*_COUNT_NAMES, "not_sent")},
}

_STATUS = {
    "type": "string",
    "enum": ["scheduled", "queued", "sending", "sent", "cancelled", "failed"],
}

_ALERT = {
    "type": "object",
    "required": ["id", "status", "counts", "created_at", "started_at", "finished_at"],
    "properties": {
        "id": {"type": "string"},
        "status": _STATUS,
        "counts": _COUNTS,
        "created_at": {"type": "string"},
        "started_at": {"type": ["string", "null"]},
        "finished_at": {"type": ["string", "null"]},
        "article_gate": {
            "type": "object",
            "description": "present when the alert waited for its article (publish-readiness gate)",
            "properties": {
                "state": {"enum": ["waiting", "live", "timed-out", "sent-anyway"]},
                "last_answer": {"type": ["string", "null"]},
            },
        },
    },
}

_ALERT_REQUEST = {
    "type": "object",
    "required": ["title", "body", "url"],
    "properties": {
        "title": {"type": "string", "maxLength": 120},
        "body": {"type": "string", "maxLength": 300},
        "url": {"type": "string", "format": "uri"},
        "image": {"type": "string", "format": "uri"},
        "topics": {"type": "array", "items": {"type": "string"}},
        "urgency": {"type": "string", "enum": ["very-low", "low", "normal", "high"]},
        "ttl": {"type": "integer", "minimum": 60, "maximum": 2419200},
        "article_id": {"type": "string"},
        "send_at": {"type": ["string", "number"]},
        "lang": {
            "type": "string",
            "enum": ["en", "sw"],
            "description": "the language title and body are in (default NEWSFLASH_DEFAULT_LANG)",
        },
        "translations": {
            "type": "object",
            "description": "the alert in more languages; each reader gets their language's "
            "words, else title and body",
            "additionalProperties": {
                "type": "object",
                "required": ["title", "body"],
                "properties": {
                    "title": {"type": "string", "maxLength": 120},
                    "body": {"type": "string", "maxLength": 300},
                },
            },
            "propertyNames": {"enum": ["en", "sw"]},
        },
        "duplicate_ok": {
            "type": "boolean",
            "description": "the same article or nearly the same headline within "
            "NEWSFLASH_DUPLICATE_WINDOW_S is intended (else 409 with the earlier alert)",
        },
        "wait_for_article": {
            "type": "boolean",
            "description": "false: send without waiting for the article to answer 2xx "
            "(default true while NEWSFLASH_WAIT_FOR_ARTICLE is on; the setting is off by default)",
        },
        "template": {
            "type": "string",
            "description": "a saved format (GET /api/v1/templates): its prefix goes before the "
            "title; its topics, urgency and ttl fill what the body leaves out",
        },
    },
}

_DUPLICATE = {
    "type": "object",
    "required": ["error", "earlier"],
    "properties": {
        "error": _ERROR["properties"]["error"],  # type: ignore[index]
        "earlier": {
            "type": "object",
            "required": ["id", "title", "status", "link"],
            "properties": {
                "id": {"type": "string"},
                "title": {"type": "string"},
                "url": {"type": "string"},
                "status": _STATUS,
                "created_at": {"type": "string"},
                "link": {"type": "string"},
                "report": {"type": "string"},
            },
        },
    },
}

_ALERT_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}

_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "a retry with the same key sends nothing new and answers with the first "
    "alert; the key used for another request is refused (409 naming Idempotency-Key on a "
    "correction or story update)",
    "schema": {"type": "string", "minLength": 1, "maxLength": 200},
}

_CORRECTION = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "maxLength": 120},
        "body": {"type": "string", "maxLength": 300},
        "url": {"type": "string", "format": "uri"},
        "image": {"type": "string", "format": "uri"},
    },
}

_CORRECTED = {
    "type": "object",
    "required": ["id", "status", "corrects"],
    "properties": {"id": {"type": "string"}, "status": _STATUS, "corrects": {"type": "string"}},
}

_READY = {
    "type": "object",
    "required": ["status", "checks"],
    "properties": {
        "status": {"type": "string", "enum": ["ok", "unavailable"]},
        "checks": {"type": "object", "additionalProperties": {"type": "string"}},
        "warnings": {
            "description": "ops only (the credentials /metrics accepts): what the Redis broker "
            "is set up to lose (no AOF, eviction); not a failure",
            "type": "array",
            "items": {"type": "string"},
        },
        "alarms": {
            "description": "ops only (the credentials /metrics accepts): the open alarms, as "
            "GET /api/v1/ops/queues lists them; they never change readiness",
            "type": ["array", "null"],
            "items": {"type": "object"},
        },
    },
}

_PUBLISHED = {
    "type": "object",
    "required": ["id", "status", "audience"],
    "properties": {"id": {"type": "string"}, "status": _STATUS, "audience": {"type": "integer"}},
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): {"description": "error", **_json(_ERROR)} for c in codes}


_PROOF = {
    "type": "object",
    "required": ["endpoint", "auth"],
    "description": "the subscription's endpoint and keys.auth: proof this browser owns it",
    "properties": {"endpoint": {"type": "string"}, "auth": {"type": "string"}},
}

_QUIET = {
    "type": "object",
    "required": ["start", "end", "timeZone"],
    "properties": {
        "start": {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$"},
        "end": {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$"},
        "timeZone": {"type": "string", "description": "an IANA zone like Africa/Nairobi"},
    },
}

_CHOICES = {
    "type": "object",
    "required": ["quietHours", "dailyCap"],
    "properties": {
        "quietHours": {"oneOf": [_QUIET, {"type": "null"}]},
        "dailyCap": {"type": ["integer", "null"], "minimum": 1, "maximum": 50},
    },
}

_STORY_KEY = {
    "name": "key",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^nf[0-9a-f]{30}$"},
}

_PUBLIC_STORY = {
    "type": "object",
    "required": ["key", "title", "lang", "titles", "open"],
    "properties": {
        "key": {"type": "string"},
        "title": {"type": "string", "description": "in the founding alert's language, `lang`"},
        "lang": {"type": "string", "description": "the language of `title`"},
        "titles": {
            "type": "object",
            "description": 'the title by language, {"en": ..., "sw": ...}',
            "additionalProperties": {"type": "string"},
        },
        "open": {"type": "boolean"},
    },
}

_STORIES = {
    "type": "object",
    "required": ["stories"],
    "properties": {"stories": {"type": "array", "items": _PUBLIC_STORY}},
}

_STORY = {
    "type": "object",
    "required": ["key", "title", "url", "alert", "open", "followers", "updates"],
    "properties": {
        **_PUBLIC_STORY["properties"],  # type: ignore[dict-item]
        "url": {"type": "string"},
        "alert": {"type": "string", "description": "the alert that opened the story"},
        "followers": {"type": "integer", "minimum": 0},
        "updates": {"type": "integer", "minimum": 0},
        "created_at": {"type": "number"},
        "closes_at": {"type": ["number", "null"]},
    },
}


def _readers_choice(bearer: list[dict[str, list[str]]]) -> dict[str, Any]:
    """Quiet hours, daily cap and followed stories (docs/reader-choices.md)."""
    proof = {"required": True, **_json(_PROOF)}
    return {
        "/api/v1/subscriptions/preferences": {
            "post": {
                "summary": "This browser's quiet hours and daily cap; needs endpoint + auth",
                "requestBody": proof,
                "responses": {
                    "200": {"description": "the choices", **_json(_CHOICES)},
                    **_errors(400, 404, 413, 429),
                },
            },
            "put": {
                "summary": "Set quiet hours and the daily cap (null: none); 404 for a wrong auth",
                "requestBody": {
                    "required": True,
                    **_json(
                        {
                            **_PROOF,
                            "properties": {
                                **_PROOF["properties"],  # type: ignore[dict-item]
                                "quietHours": _CHOICES["properties"]["quietHours"],  # type: ignore[index]
                                "dailyCap": _CHOICES["properties"]["dailyCap"],  # type: ignore[index]
                                "lang": {
                                    **_SUBSCRIPTION["properties"]["lang"],  # type: ignore[index]
                                    "description": "the reader's language; left out, the "
                                    "stored one stays",
                                },
                            },
                        }
                    ),
                },
                "responses": {
                    "200": {"description": "the choices", **_json(_CHOICES)},
                    **_errors(400, 404, 413, 429),
                },
            },
        },
        "/api/v1/subscriptions/stories": {
            "post": {
                "summary": "The stories this browser follows; needs endpoint + auth",
                "requestBody": proof,
                "responses": {
                    "200": {"description": "followed stories", **_json(_STORIES)},
                    **_errors(400, 404, 413, 429),
                },
            }
        },
        "/api/v1/stories/open": {
            "get": {
                "summary": "Stories a reader can follow now (public headlines)",
                "responses": {
                    "200": {"description": "open stories", **_json(_STORIES)},
                    **_errors(400),
                },
            }
        },
        "/api/v1/stories/{key}": {
            "get": {
                "parameters": [_STORY_KEY],
                "responses": {
                    "200": {"description": "the story", **_json(_PUBLIC_STORY)},
                    **_errors(400, 404),
                },
            }
        },
        "/api/v1/stories/{key}/follow": {
            "post": {
                "parameters": [_STORY_KEY],
                "requestBody": proof,
                "responses": {
                    "200": {"description": "followed", **_json(_PUBLIC_STORY)},
                    **_errors(400, 404, 409, 413, 429),
                },
            }
        },
        "/api/v1/stories/{key}/unfollow": {
            "post": {
                "parameters": [_STORY_KEY],
                "requestBody": proof,
                "responses": {
                    "204": {"description": "no longer followed"},
                    **_errors(400, 404, 413, 429),
                },
            }
        },
        "/api/v1/stories": {
            "get": {
                "summary": "Every story with its followers (editors)",
                "security": bearer,
                "responses": {
                    "200": {
                        "description": "stories",
                        **_json(
                            {
                                "type": "object",
                                "required": ["stories"],
                                "properties": {"stories": {"type": "array", "items": _STORY}},
                            }
                        ),
                    },
                    **_errors(400, 401, 403),
                },
            }
        },
        "/api/v1/stories/{key}/updates": {
            "post": {
                "summary": "An update to the story's followers only, replacing the last one",
                "security": bearer,
                "parameters": [_STORY_KEY, _IDEMPOTENCY_KEY],
                "requestBody": {
                    "required": True,
                    **_json(
                        {
                            "type": "object",
                            "required": ["title", "body"],
                            "properties": {
                                k: _ALERT_REQUEST["properties"][k]  # type: ignore[index]
                                for k in ("title", "body", "url", "image", "urgency", "ttl")
                            },
                        }
                    ),
                },
                "responses": {
                    "202": {
                        "description": "queued (or, for the same Idempotency-Key and words "
                        "again, the first update)",
                        **_json(
                            {
                                "type": "object",
                                "required": ["id", "status", "story"],
                                "properties": {
                                    "id": {"type": "string"},
                                    "status": _STATUS,
                                    "story": {"type": "string"},
                                },
                            }
                        ),
                    },
                    **_errors(400, 401, 403, 404, 409, 413),
                },
            }
        },
        "/api/v1/stories/{key}/close": {
            "post": {
                "summary": "Close the story: no more updates or followers",
                "security": bearer,
                "parameters": [_STORY_KEY],
                "responses": {
                    "200": {"description": "the closed story", **_json(_STORY)},
                    **_errors(400, 401, 403, 404, 409),
                },
            }
        },
    }


# Routes that never answer 503 for the database: they do not read it, or (the ops snapshot)
# report it unreachable in their answer.
_NO_DATABASE = {
    "/healthz",
    "/readyz",
    "/api/v1/config",
    "/api/v1/openapi.json",
    "/api/v1/ops/queues",
}


def document() -> dict[str, Any]:
    """The OpenAPI document; every operation that reads the database may answer 503 while it
    cannot be reached (service/errors.py)."""
    found = _document()
    unavailable = {
        "description": "the database is not answering: try again after Retry-After seconds",
        **_json(_ERROR),
    }
    for path, operations in found["paths"].items():
        if path in _NO_DATABASE:
            continue
        for operation in operations.values():
            operation["responses"].setdefault("503", unavailable)
    return found


def _document() -> dict[str, Any]:
    bearer: list[dict[str, list[str]]] = [{"bearer": []}, {"session": []}]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Newsflash",
            "version": "1",
            "description": "Self-hosted breaking-news web push.",
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "newsflash_session"},
            }
        },
        "paths": {
            "/api/v1/config": {
                "get": {
                    "parameters": [
                        {
                            "name": "lang",
                            "in": "query",
                            "required": False,
                            "description": "languages, best first (sw,en-KE); else Accept-Language",
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "VAPID key, topics, reader texts in one language",
                            **_json(
                                {
                                    "type": "object",
                                    "required": ["vapidPublicKey", "topics", "prompt"],
                                }
                            ),
                        },
                        # A query parameter holding control characters is refused by name.
                        **_errors(400),
                    },
                }
            },
            "/api/v1/subscriptions": {
                "post": {
                    "requestBody": {"required": True, **_json(_SUBSCRIPTION)},
                    "responses": {
                        "201": {"description": "created", **_json(_SUB_ANSWER)},
                        "200": {
                            "description": "the same endpoint and keys again: topics updated",
                            **_json(_SUB_ANSWER),
                        },
                        "409": {
                            "description": "the endpoint is stored with other keys: nothing "
                            "changed (use PUT or /change with the stored auth secret)",
                            **_json(_ERROR),
                        },
                        **_errors(400, 413, 415, 429),
                    },
                },
                "put": {
                    "summary": "Replace the topics and, when given, the language (left out, the "
                    "stored one stays); endpoint + keys.auth must match",
                    "requestBody": {"required": True, **_json(_SUBSCRIPTION)},
                    "responses": {
                        "200": {"description": "topics replaced", **_json(_SUB_ANSWER)},
                        **_errors(400, 404, 413, 429),
                    },
                },
            },
            "/api/v1/subscriptions/delete": {
                "post": {
                    "requestBody": {
                        "required": True,
                        **_json(
                            {
                                "type": "object",
                                "required": ["endpoint", "auth"],
                                "properties": {
                                    "endpoint": {"type": "string"},
                                    "auth": {"type": "string"},
                                },
                            }
                        ),
                    },
                    "responses": {"204": {"description": "deleted"}, **_errors(400, 404, 413, 429)},
                }
            },
            "/api/v1/subscriptions/lookup": {
                "post": {
                    "summary": "This browser's topics (the manage page); needs endpoint + auth",
                    "requestBody": {
                        "required": True,
                        **_json(
                            {
                                "type": "object",
                                "required": ["endpoint", "auth"],
                                "properties": {
                                    "endpoint": {"type": "string"},
                                    "auth": {"type": "string"},
                                },
                            }
                        ),
                    },
                    "responses": {
                        "200": {"description": "found", **_json(_SUB_ANSWER)},
                        **_errors(400, 404, 413, 429),
                    },
                }
            },
            "/api/v1/subscriptions/change": {
                "post": {
                    "requestBody": {
                        "required": True,
                        **_json(
                            {
                                "type": "object",
                                "required": ["oldEndpoint", "oldAuth", "subscription"],
                                "properties": {
                                    "oldEndpoint": {"type": "string"},
                                    "oldAuth": {"type": "string"},
                                    "subscription": _SUBSCRIPTION,
                                },
                            }
                        ),
                    },
                    "responses": {
                        "200": {"description": "moved", **_json(_SUB_ANSWER)},
                        "201": {"description": "moved", **_json(_SUB_ANSWER)},
                        "409": {
                            "description": "the new endpoint is stored with other keys: "
                            "nothing changed, the old subscription stays",
                            **_json(_ERROR),
                        },
                        **_errors(400, 404, 413, 429),
                    },
                }
            },
            "/api/v1/events": {
                "post": {
                    "requestBody": {
                        "required": True,
                        **_json(
                            {
                                "type": "object",
                                "required": ["alert", "type", "d"],
                                "properties": {
                                    "alert": {"type": "string"},
                                    "type": {"type": "string", "enum": ["displayed", "clicked"]},
                                    "d": {
                                        "type": "string",
                                        "description": "the delivery receipt the push payload "
                                        "carried (its field d), echoed unchanged",
                                    },
                                },
                            }
                        ),
                    },
                    "summary": "A service worker reports a display or click of an alert",
                    "description": "Counted once per delivery and type, and only with the "
                    "receipt the push carried to this browser. A forged, foreign or repeated "
                    "receipt also gets 202 and is never counted (no oracle).",
                    "responses": {
                        "202": {"description": "accepted (counted if the receipt is genuine)"},
                        "425": {
                            "description": "a genuine receipt whose delivery is not recorded "
                            "yet: ask again after Retry-After seconds",
                            **_json(_ERROR),
                        },
                        **_errors(400, 413, 429),
                    },
                }
            },
            "/api/v1/alerts": {
                "post": {
                    "security": bearer,
                    "parameters": [_IDEMPOTENCY_KEY],
                    "requestBody": {"required": True, **_json(_ALERT_REQUEST)},
                    "responses": {
                        "202": {"description": "stored and queued", **_json(_PUBLISHED)},
                        "200": {
                            "description": "the same article or key: the first alert",
                            **_json(_PUBLISHED),
                        },
                        "409": {
                            "description": "a likely duplicate of a recent alert (the same "
                            "article or headline); send again with duplicate_ok: true",
                            **_json({"oneOf": [_DUPLICATE, _ERROR]}),
                        },
                        **_errors(400, 401, 403, 413),
                    },
                },
                "get": {
                    "security": bearer,
                    "parameters": [
                        {
                            "name": "before",
                            "in": "query",
                            "required": False,
                            "description": "only alerts with a smaller id (the next page)",
                            "schema": {"type": "integer"},
                        },
                        {
                            "name": "limit",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "integer", "minimum": 1, "maximum": 200},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "recent alerts",
                            **_json(
                                {
                                    "type": "object",
                                    "required": ["alerts"],
                                    "properties": {"alerts": {"type": "array", "items": _ALERT}},
                                }
                            ),
                        },
                        **_errors(401, 403),
                    },
                },
            },
            "/api/v1/alerts/{id}": {
                "get": {
                    "security": bearer,
                    "parameters": [_ALERT_ID],
                    "responses": {
                        "200": {"description": "the alert", **_json(_ALERT)},
                        **_errors(401, 403, 404),
                    },
                }
            },
            "/api/v1/alerts/{id}/cancel": {
                "post": {
                    "security": bearer,
                    "parameters": [_ALERT_ID],
                    "responses": {
                        "200": {"description": "cancelled", **_json(_ALERT)},
                        **_errors(400, 401, 403, 404, 409),
                    },
                }
            },
            "/api/v1/alerts/{id}/send-anyway": {
                "post": {
                    "description": "Stop waiting for the article (publish-readiness gate) and "
                    "send now; 409 when the alert is not waiting.",
                    "security": bearer,
                    "parameters": [_ALERT_ID],
                    "responses": {
                        "200": {
                            "description": "released",
                            **_json(
                                {
                                    "type": "object",
                                    "required": ["id", "status"],
                                    "properties": {"id": {"type": "string"}, "status": _STATUS},
                                }
                            ),
                        },
                        **_errors(400, 401, 403, 404, 409),
                    },
                }
            },
            "/api/v1/alerts/{id}/correct": {
                "post": {
                    "description": "A correction of a sending or sent alert: the same audience, "
                    "Topic and tag, so it replaces the original where it was not yet shown.",
                    "security": bearer,
                    "parameters": [_ALERT_ID, _IDEMPOTENCY_KEY],
                    "requestBody": {"required": True, **_json(_CORRECTION)},
                    "responses": {
                        "202": {
                            "description": "correction queued (or, for the same "
                            "Idempotency-Key and words again, the first correction)",
                            **_json(_CORRECTED),
                        },
                        # 409: the original is not sending or sent (nothing to correct yet), or
                        # the Idempotency-Key was used for another request.
                        **_errors(400, 401, 403, 404, 409, 413),
                    },
                }
            },
            "/api/v1/alerts/test": {
                "post": {
                    "description": "Send to the calling editor's own test devices only (a "
                    "logged-in session; an API token has no devices).",
                    "security": bearer,
                    "requestBody": {"required": True, **_json(_ALERT_REQUEST)},
                    "responses": {
                        "202": {
                            "description": "test send queued",
                            **_json(
                                {
                                    "type": "object",
                                    "required": ["id", "status"],
                                    "properties": {"id": {"type": "string"}, "status": _STATUS},
                                }
                            ),
                        },
                        **_errors(400, 401, 403, 413),
                    },
                }
            },
            "/api/v1/hooks/cms": {
                "post": {
                    "description": "CMS article events, signed per Standard Webhooks; an article "
                    "flagged breaking (or alert: true) becomes an alert, once per article id.",
                    "parameters": [
                        {"name": h, "in": "header", "required": True, "schema": {"type": "string"}}
                        for h in ("webhook-id", "webhook-timestamp", "webhook-signature")
                    ],
                    "requestBody": {"required": True, **_json({"type": "object"})},
                    "responses": {
                        "202": {"description": "alert created"},
                        "200": {"description": "already sent for this article, or not flagged"},
                        "409": {
                            "description": "a likely duplicate of a recent alert; resend with "
                            "article.duplicate_ok: true",
                            **_json({"oneOf": [_DUPLICATE, _ERROR]}),
                        },
                        **_errors(400, 401, 413, 503),
                    },
                }
            },
            "/api/v1/templates": {
                "get": {
                    "description": "The saved alert formats a publish request may name in "
                    "`template` (admins manage them at /editor/templates).",
                    "security": bearer,
                    "responses": {
                        "200": {"description": "the templates", **_json({"type": "object"})},
                        **_errors(401, 403),
                    },
                }
            },
            "/api/v1/ops/queues": {
                "get": {
                    "description": "What /ops shows (role ops or admin): queues with depth and "
                    "oldest waiting age, workers, delivery rate, alerts in flight with progress "
                    "and ETA, push hosts with answer counts and breakers, last errors (endpoints "
                    "as host + hash), subscribers, open alarms. Cached for NEWSFLASH_OPS_CACHE_S.",
                    "security": bearer,
                    "responses": {
                        "200": {"description": "the ops snapshot", **_json({"type": "object"})},
                        **_errors(401, 403),
                    },
                }
            },
            "/api/v1/ops/health": {
                "get": {
                    "description": "Audience health (role ops or admin), per newsroom week: "
                    "gained, lost by reason, delivered / displayed / clicked rates, alerts per "
                    "reader a day, push hosts, readers not seen for 30/90/180 days, and the "
                    "warnings (docs/audience-health.md). Cached for a minute.",
                    "security": bearer,
                    "parameters": [
                        {
                            "name": "weeks",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "integer", "minimum": 2, "maximum": 26},
                        }
                    ],
                    "responses": {
                        "200": {"description": "the health view", **_json({"type": "object"})},
                        **_errors(400, 401, 403),
                    },
                }
            },
            **_readers_choice(bearer),
            "/healthz": {"get": {"responses": {"200": {"description": "alive"}}}},
            "/readyz": {
                "get": {
                    "description": "Public (load balancers): status and checks. With the "
                    "credentials /metrics accepts, also the broker warnings and open alarms.",
                    "responses": {
                        "200": {"description": "ready", **_json(_READY)},
                        "503": {"description": "not ready", **_json(_READY)},
                    },
                }
            },
        },
    }
