"""The JSON API for readers' choices: quiet hours and daily cap, followable stories (/api/v1)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from core.accounts import EDITOR_ROLES
from core.stories import Story
from service.api import (
    _editor,
    _require_json_for_sessions,
    _subscribe_limit,
    ext,
    idempotency_key,
    reader_cors,
)
from service.auth import require_role
from service.extensions import limiter
from service.inputs import json_body

bp = Blueprint("readers_choice", __name__, url_prefix="/api/v1")

_PUBLIC = frozenset(
    {
        "readers_choice.get_preferences",
        "readers_choice.set_preferences",
        "readers_choice.public_story",
        "readers_choice.open_stories",
        "readers_choice.follow_story",
        "readers_choice.unfollow_story",
        "readers_choice.followed_stories",
    }
)


@bp.after_request
def _cors(response: Response) -> Response:
    return reader_cors(response, _PUBLIC)


# -- readers: quiet hours and daily cap -----------------------------------------------------
@bp.post("/subscriptions/preferences")
@limiter.limit(_subscribe_limit)
def get_preferences() -> Response:
    """This browser's quiet hours and cap; the body proves ownership ({endpoint, auth})."""
    return jsonify(ext().container.readers.preferences(json_body()).as_json())


@bp.put("/subscriptions/preferences")
@limiter.limit(_subscribe_limit)
def set_preferences() -> Response:
    return jsonify(ext().container.readers.set_preferences(json_body()).as_json())


# -- readers: follow a story ----------------------------------------------------------------
def _story_json(story: Story) -> dict[str, object]:
    return story.public_json(ext().container.clock(), ext().settings.default_lang)


@bp.get("/stories/open")
def open_stories() -> Response:
    stories = ext().container.stories.open_stories()
    response = jsonify({"stories": [_story_json(s) for s in stories]})
    response.headers["Cache-Control"] = "public, max-age=60"
    return response


@bp.get("/stories/<key>")
def public_story(key: str) -> Response:
    response = jsonify(_story_json(ext().container.stories.story(key)))
    response.headers["Cache-Control"] = "public, max-age=60"
    return response


@bp.post("/stories/<key>/follow")
@limiter.limit(_subscribe_limit)
def follow_story(key: str) -> Response:
    return jsonify(_story_json(ext().container.stories.follow(key, json_body())))


@bp.post("/stories/<key>/unfollow")
@limiter.limit(_subscribe_limit)
def unfollow_story(key: str) -> tuple[str, int]:
    ext().container.stories.unfollow(key, json_body())
    return "", 204


@bp.post("/subscriptions/stories")
@limiter.limit(_subscribe_limit)
def followed_stories() -> Response:
    stories = ext().container.stories.followed(json_body())
    return jsonify({"stories": [_story_json(s) for s in stories]})


# -- editors: stories ------------------------------------------------------------------------
@bp.get("/stories")
@require_role(EDITOR_ROLES)
def list_stories() -> Response:
    now = ext().container.clock()
    return jsonify({"stories": [s.as_json(now) for s in ext().container.stories.all()]})


@bp.post("/stories/<key>/updates")
@require_role(EDITOR_ROLES)
def post_update(key: str) -> tuple[Response, int]:
    """A new alert to the story's followers, replacing the last one (same tag and Topic)."""
    _require_json_for_sessions()
    # A retry with the same key answers with the first update; another body, 409.
    alert = ext().container.stories.post_update(_editor(), key, json_body(), idempotency_key())
    answer = {"id": str(alert.id), "status": alert.status.value, "story": alert.story_key}
    response = jsonify(answer)
    response.headers["Location"] = f"/api/v1/alerts/{alert.id}"
    return response, 202


@bp.post("/stories/<key>/close")
@require_role(EDITOR_ROLES)
def close_story(key: str) -> Response:
    _require_json_for_sessions()
    story = ext().container.stories.close(_editor(), key)
    return jsonify(story.as_json(ext().container.clock()))
