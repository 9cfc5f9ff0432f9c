"""Who is calling: a session (newsroom pages) or `Authorization: Bearer <token>` (API, CMS, Prometheus)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Collection
from functools import wraps
from typing import Any, TypeVar, cast

from flask import current_app, g, redirect, render_template, request, session, url_for
from itsdangerous import BadData, URLSafeTimedSerializer
from werkzeug.wrappers import Response as BaseResponse

from core.accounts import Principal, Role, device_summary, login_account_key
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
        principal.user_id,
        time.time(),
        ext.settings.session_lifetime_s,
        device=device_summary(request.user_agent.string),
        address=request.remote_addr,
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


# -- known devices ------------------------------------------------------------------------------
# A browser that has logged in to an account gets a signed cookie naming the account (by digest)
# and a random device id. Its later login attempts for that account are counted per device
# instead of per address and per account, so neither a guesser sharing the editor's carrier
# address nor one hammering the account from many addresses locks the editor's own phone out.
# The cookie proves nothing else: the password is asked for all the same.
DEVICE_COOKIE = "newsflash_device"
DEVICE_MAX_AGE_S = 180 * 24 * 3600
_DEVICE_SALT = "newsflash known device v1"
_MAX_DEVICE_COOKIE = 400


def _devices() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key or "", salt=_DEVICE_SALT)


def remember_device(response: BaseResponse, email: str) -> None:
    """Mark this browser as one that has logged in to `email` (after a login that worked)."""
    value = _devices().dumps({"a": login_account_key(email), "d": secrets.token_urlsafe(16)})
    response.set_cookie(
        DEVICE_COOKIE,
        value,
        max_age=DEVICE_MAX_AGE_S,
        path=url_for("editor.login"),
        # The same rule as the session cookie: Secure outside loopback and over https.
        secure=current_app.session_interface.get_cookie_secure(current_app),
        httponly=True,
        samesite="Strict",
    )


def known_device(email: str | None) -> str | None:
    """This browser's device id if its cookie says it has logged in to `email` before."""
    cached: dict[str | None, str | None] = g.setdefault("nf_known_devices", {})
    if email not in cached:
        cached[email] = _device_of(email)
    return cached[email]


def _device_of(email: str | None) -> str | None:
    raw = request.cookies.get(DEVICE_COOKIE)
    if not email or not raw or len(raw) > _MAX_DEVICE_COOKIE:
        return None
    try:
        data = _devices().loads(raw, max_age=DEVICE_MAX_AGE_S)
    except BadData:
        return None
    if not isinstance(data, dict) or data.get("a") != login_account_key(email):
        return None
    device = data.get("d")
    return device if isinstance(device, str) and device else None
