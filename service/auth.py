"""Who is calling: a session (newsroom pages) or `Authorization: Bearer <token>` (API, CMS, Prometheus)."""

from __future__ import annotations

from collections.abc import Callable, Collection
from functools import wraps
from typing import Any, TypeVar, cast

from flask import current_app, g, redirect, request, session, url_for

from core.accounts import Principal, Role
from service.errors import error_response

F = TypeVar("F", bound=Callable[..., Any])


def current_principal() -> Principal | None:
    if "principal" in g:
        return cast(Principal | None, g.principal)
    principal: Principal | None = None
    header = request.headers.get("Authorization", "")
    accounts = current_app.extensions["newsflash"].accounts
    if header.startswith("Bearer "):
        principal = accounts.verify_token(header.removeprefix("Bearer ").strip())
    elif "user_id" in session:
        principal = accounts.get_user(int(session["user_id"]))
    g.principal = principal
    return principal


def require_role(roles: Collection[Role], page: bool = False) -> Callable[[F], F]:
    """401 (API) or a redirect to login (pages) without credentials; 403 for the wrong role."""

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
                        else ("Forbidden: your role cannot open this page.", 403)
                    )
                return error_response(
                    403, "forbidden", f"this needs the role {' or '.join(sorted(roles))}"
                )
            return view(*args, **kwargs)

        return cast(F, wrapped)

    return decorator
