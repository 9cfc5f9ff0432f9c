"""Who is calling: a session (newsroom pages) or `Authorization: Bearer <token>` (API, CMS, Prometheus)."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from functools import wraps
from typing import Any, TypeVar, cast

from flask import current_app, g, redirect, render_template, request, session, url_for

from core.accounts import Principal, Role
from service import csrf
from service.errors import error_response

F = TypeVar("F", bound=Callable[..., Any])

# The signed cookie carries only this random id; the sessions table says whether it still counts.
SESSION_ID = "sid"


def begin_session(principal: Principal) -> None:
    """Log this browser in: a new server-side session (the caller rotated the cookie first)."""
    assert principal.user_id is not None
    ext = current_app.extensions["newsflash"]
    session[SESSION_ID] = ext.accounts.start_session(
        principal.user_id, time.time(), ext.settings.session_lifetime_s
    )
    session.permanent = True
    g.principal = principal


def end_session() -> None:
    """Log this browser out on the server too: a copy of the old cookie is worth nothing."""
    session_id = current_session_id()
    if session_id is not None:
        current_app.extensions["newsflash"].accounts.end_session(session_id, time.time())
    g.pop("principal", None)


def has_session() -> bool:
    return isinstance(session.get(SESSION_ID), str)


def current_session_id() -> str | None:
    """This browser's server-side session id (None without a login cookie)."""
    session_id = session.get(SESSION_ID)
    return session_id if isinstance(session_id, str) else None


def current_principal() -> Principal | None:
    if "principal" in g:
        return cast(Principal | None, g.principal)
    principal: Principal | None = None
    header = request.headers.get("Authorization", "")
    accounts = current_app.extensions["newsflash"].accounts
    if header.startswith("Bearer "):
        principal = accounts.verify_token(header.removeprefix("Bearer ").strip())
    elif has_session():
        settings = current_app.extensions["newsflash"].settings
        principal = accounts.session_principal(
            str(session[SESSION_ID]),
            time.time(),
            settings.session_lifetime_s,
            settings.session_idle_s,
        )
    g.principal = principal
    return principal


def forbidden_page() -> str:
    """The styled 403 page, with the navigation, in an editor's words."""
    return render_template(
        "editor/error.html",
        status=403,
        heading="Not for your role",
        message="Your account cannot open this page. Ask an admin if you need it.",
    )


def require_role(roles: Collection[Role], page: bool = False) -> Callable[[F], F]:
    """401 (API) or a redirect to login (pages) without credentials; 403 for the wrong role; 400
    for a write by a session without the CSRF token (csrf.session_write_refused), whichever
    blueprint the route is on."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            principal = current_principal()
            if principal is None:
                if page:
                    return redirect(url_for("editor.login", next=request.full_path.rstrip("?")))
                response = error_response(
                    401, "unauthorized", "log in or send Authorization: Bearer <token>"
                )
                response.headers["WWW-Authenticate"] = 'Bearer realm="newsflash"'
                return response
            if principal.role not in roles:
                if page:
                    return (
                        error_response(
                            403, "forbidden", f"this needs one of: {', '.join(sorted(roles))}"
                        )
                        if request.is_json
                        else (forbidden_page(), 403)
                    )
                return error_response(
                    403, "forbidden", f"this needs the role {' or '.join(sorted(roles))}"
                )
            if principal.token_id is None and (refused := csrf.session_write_refused()):
                return refused
            return view(*args, **kwargs)

        return cast(F, wrapped)

    return decorator
