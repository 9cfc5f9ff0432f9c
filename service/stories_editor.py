"""Followable stories in the newsroom (/editor/stories): follower counts, updates, closing."""

from __future__ import annotations

import uuid

from flask import Blueprint, Response, current_app, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from core.accounts import EDITOR_ROLES
from core.errors import DomainError
from core.usecases.newsroom import Editor
from core.usecases.stories import Stories
from service import csrf
from service.app import Newsflash
from service.auth import current_principal, require_role

bp = Blueprint("stories", __name__)

Page = str | BaseResponse | tuple[str, int]


def ext() -> Newsflash:
    return current_app.extensions["newsflash"]  # type: ignore[no-any-return]


def stories() -> Stories:
    return ext().container.stories


def _editor() -> Editor:
    principal = current_principal()
    assert principal is not None  # require_role ran first
    return Editor(principal.name, principal.user_id)


@bp.before_request
def _check_csrf() -> Response | None:
    return csrf.rejected()


def _page(
    notice: str | None = None, error: DomainError | None = None, key: str = "", status: int = 200
) -> tuple[str, int]:
    return render_template(
        "editor/stories.html",
        stories=stories().all(),
        now=ext().container.clock(),
        notice=notice,
        error=error,
        error_key=key,
        form={k: request.form.get(k, "") for k in ("title", "body")},
        open_days=ext().settings.story_open_days,
        new_key=lambda: uuid.uuid4().hex,
    ), status


def _send_key() -> str | None:
    """The form's own key: the same form sent again (a lost answer) sends nothing new."""
    key = request.form.get("key", "")[:100]
    return f"newsroom:{key}" if key else None


@bp.get("/editor/stories")
@require_role(EDITOR_ROLES, page=True)
def listing() -> Page:
    return _page(notice=request.args.get("notice"))


@bp.post("/editor/stories/<key>/updates")
@require_role(EDITOR_ROLES, page=True)
def post_update(key: str) -> Page:
    body = {
        "title": request.form.get("title", ""),
        "body": request.form.get("body", ""),
        "urgency": request.form.get("urgency", "normal"),
    }
    try:
        alert = stories().post_update(_editor(), key, body, _send_key())
    except DomainError as exc:
        return _page(error=exc, key=key, status=exc.status)
    notice = f"Update sent to the story's followers (alert {alert.id})."
    return redirect(url_for("stories.listing", notice=notice, _anchor=f"story-{key}"))


@bp.post("/editor/stories/<key>/close")
@require_role(EDITOR_ROLES, page=True)
def close(key: str) -> Page:
    try:
        story = stories().close(_editor(), key)
    except DomainError as exc:
        return _page(error=exc, key=key, status=exc.status)
    notice = f"Closed “{story.title}”: its {story.followers} followers get no more updates."
    return redirect(url_for("stories.listing", notice=notice))
