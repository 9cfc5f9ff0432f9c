"""The newsroom's Team page (/editor/team, admins only): who has an account, their role, whether
they are signed in, and the changes an admin makes for them without the CLI: add a person, change
a role, disable or enable, issue a new password. Each goes through the Access use cases (one audit
row, sessions ended); an issued password is shown once, in the answer to the POST, never stored."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from flask import make_response, render_template, request
from werkzeug.wrappers import Response as BaseResponse

from core.accounts import Role
from core.errors import DomainError, NotFound
from service.auth import require_role
from service.editor import Page, bp, ext, me

ADMINS = frozenset({Role.ADMIN})


def _page(
    status: int = 200,
    *,
    error: DomainError | None = None,
    failed_on: int | None = None,
    notice: str | None = None,
    issued: dict[str, str] | None = None,
    typed: dict[str, str] | None = None,
) -> BaseResponse:
    s = ext().settings
    people = ext().accounts.list_users(time.time(), s.session_lifetime_s, s.session_idle_s)
    html = render_template(
        "editor/team.html",
        people=people,
        roles=[r.value for r in Role],
        me_name=me().name,
        error=error,
        failed_on=failed_on,
        notice=notice,
        issued=issued,
        typed=typed or {"email": "", "role": Role.EDITOR.value},
    )
    response = make_response(html, status)
    # An issued password is in this page: no cache, no back-button copy.
    response.headers["Cache-Control"] = "no-store"
    return response


def login_only(view: Callable[..., Any]) -> Callable[..., Any]:
    """For a newsroom login only: an API token (even an admin's) manages no accounts; the CMS
    has no business adding people."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if me().user_id is None:
            return render_template(
                "editor/error.html",
                status=403,
                heading="Log in to manage the team",
                message="Accounts are managed by an admin logged in with their email, "
                "not with an API token.",
            ), 403
        return view(*args, **kwargs)

    return wrapped


def _person(user_id: int) -> dict[str, Any]:
    s = ext().settings
    people = ext().accounts.list_users(time.time(), s.session_lifetime_s, s.session_idle_s)
    return next((p for p in people if p["id"] == user_id), {})


def _email_of(user_id: int) -> str:
    email = _person(user_id).get("email")
    if email is None:
        raise NotFound("no such account", "id")
    return str(email)


@bp.get("/team")
@require_role(ADMINS, page=True)
@login_only
def team() -> Page:
    return _page()


@bp.post("/team")
@require_role(ADMINS, page=True)
@login_only
def team_add() -> Page:
    typed = {"email": request.form.get("email", "")[:320], "role": request.form.get("role", "")}
    try:
        email, password = ext().container.access.add_person(me(), typed["email"], typed["role"])
    except DomainError as exc:
        return _page(exc.status, error=exc, typed=typed)
    return _page(notice=f"{email} can log in now.", issued={"email": email, "password": password})


@bp.post("/team/<int:user_id>/role")
@require_role(ADMINS, page=True)
@login_only
def team_role(user_id: int) -> Page:
    email = _email_of(user_id)
    wanted = request.form.get("role", "")
    if _person(user_id).get("role") == wanted:
        # Save pressed on an unchanged role: nobody is signed out for nothing.
        return _page(notice=f"{email} is already {wanted}; nothing changed.")
    try:
        role, ended = ext().container.access.set_person_role(me(), email, wanted)
    except DomainError as exc:
        return _page(exc.status, error=exc, failed_on=user_id)
    return _page(notice=f"{email} is now {role.value}.{_signed_out(ended)}")


@bp.post("/team/<int:user_id>/disable")
@require_role(ADMINS, page=True)
@login_only
def team_disable(user_id: int) -> Page:
    return _set_disabled(user_id, True)


@bp.post("/team/<int:user_id>/enable")
@require_role(ADMINS, page=True)
@login_only
def team_enable(user_id: int) -> Page:
    return _set_disabled(user_id, False)


def _set_disabled(user_id: int, disabled: bool) -> BaseResponse:
    email = _email_of(user_id)
    try:
        ended = ext().container.access.set_person_disabled(me(), email, disabled)
    except DomainError as exc:
        return _page(exc.status, error=exc, failed_on=user_id)
    if disabled:
        return _page(notice=f"{email} cannot log in any more.{_signed_out(ended)}")
    return _page(notice=f"{email} can log in again.")


@bp.post("/team/<int:user_id>/password")
@require_role(ADMINS, page=True)
@login_only
def team_password(user_id: int) -> Page:
    email = _email_of(user_id)
    try:
        password, ended = ext().container.access.issue_password(me(), email)
    except DomainError as exc:
        return _page(exc.status, error=exc, failed_on=user_id)
    return _page(
        notice=f"{email} has a new password.{_signed_out(ended)}",
        issued={"email": email, "password": password},
    )


def _signed_out(ended: int) -> str:
    if not ended:
        return ""
    return f" Signed out of {ended} device{'' if ended == 1 else 's'}."
