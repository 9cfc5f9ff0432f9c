"""Alert templates: admins manage them (/editor/templates); compose offers them in one click."""

from __future__ import annotations

from typing import Any

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
from werkzeug.wrappers import Response as BaseResponse

from core.accounts import EDITOR_ROLES, Role
from core.errors import DomainError, NotFound
from core.newsroom import TTL_CHOICES_S
from core.templates import Template
from core.usecases.templates import Templates
from service import csrf
from service.app import Newsflash
from service.auth import current_principal, require_role

bp = Blueprint("templates", __name__)

Page = str | BaseResponse | tuple[str, int]
ADMINS = {Role.ADMIN}


def ext() -> Newsflash:
    return current_app.extensions["newsflash"]  # type: ignore[no-any-return]


def templates() -> Templates:
    return ext().container.templates


def _actor() -> str | None:
    principal = current_principal()
    return None if principal is None else principal.name


@bp.before_request
def _check_csrf() -> Response | None:
    return csrf.rejected()


@bp.app_context_processor
def _compose_globals() -> dict[str, Any]:
    """nf_formats(): the templates for compose's one-click buttons (read only when shown);
    nf_utm_on(): whether click-through URLs are tagged at all (the no-UTM box shows then)."""
    return {
        "nf_formats": lambda: [t.as_json() for t in templates().list()],
        "nf_utm_on": lambda: ext().settings.utm,
    }


def _form_of(template: Template | None) -> dict[str, Any]:
    if template is None:
        return {"name": "", "prefix": "", "topics": [], "urgency": "normal", "ttl": "3600"}
    return {
        "name": template.name,
        "prefix": template.prefix.strip(),
        "topics": list(template.topics),
        "urgency": template.urgency.value,
        "ttl": str(template.ttl_s),
    }


def _posted() -> dict[str, Any]:
    form: dict[str, Any] = {k: request.form.get(k, "") for k in ("name", "prefix", "urgency")}
    form["ttl"] = request.form.get("ttl", "")
    form["topics"] = request.form.getlist("topics")
    return form


def _page(
    form: dict[str, Any],
    editing: Template | None = None,
    error: DomainError | None = None,
    notice: str | None = None,
    status: int = 200,
) -> tuple[str, int]:
    ttls = sorted({*TTL_CHOICES_S, *(t.ttl_s for t in templates().list())})
    return render_template(
        "editor/templates.html",
        formats=templates().list(),
        form=form,
        editing=editing,
        error=error,
        notice=notice,
        topics=[{"slug": t.slug, "name": t.name} for t in ext().settings.topics],
        ttl_choices=ttls,
    ), status


@bp.get("/editor/templates")
@require_role(ADMINS, page=True)
def listing() -> Page:
    return _page(_form_of(None), notice=request.args.get("notice"))


@bp.post("/editor/templates")
@require_role(ADMINS, page=True)
def create() -> Page:
    form = _posted()
    try:
        made = templates().create(_actor(), form)
    except DomainError as exc:
        return _page(form, error=exc, status=exc.status)
    return redirect(url_for("templates.listing", notice=f"Saved template “{made.name}”."))


@bp.get("/editor/templates/<int:template_id>")
@require_role(ADMINS, page=True)
def edit(template_id: int) -> Page:
    try:
        found = templates().get(template_id)
    except NotFound:
        return render_template("editor/missing.html"), 404
    return _page(_form_of(found), editing=found)


@bp.post("/editor/templates/<int:template_id>")
@require_role(ADMINS, page=True)
def save(template_id: int) -> Page:
    form = _posted()
    try:
        saved = templates().update(_actor(), template_id, form)
    except NotFound:
        return render_template("editor/missing.html"), 404
    except DomainError as exc:
        return _page(form, editing=templates().get(template_id), error=exc, status=exc.status)
    return redirect(url_for("templates.listing", notice=f"Saved template “{saved.name}”."))


@bp.post("/editor/templates/<int:template_id>/delete")
@require_role(ADMINS, page=True)
def delete(template_id: int) -> Page:
    try:
        gone = templates().delete(_actor(), template_id)
    except NotFound:
        return render_template("editor/missing.html"), 404
    return redirect(url_for("templates.listing", notice=f"Deleted template “{gone.name}”."))


@bp.get("/api/v1/templates")
@require_role(EDITOR_ROLES)
def api_list() -> Response:
    """What `"template": "<name>"` may name when publishing."""
    return jsonify({"templates": [t.as_json() for t in templates().list()]})
