"""The newsroom's own account page (/editor/account): who is logged in here, signing out of
every other device (a lost or shared phone) and changing one's own password, without waiting for
an admin at the CLI."""

from __future__ import annotations

import re
import time

from flask import redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response as BaseResponse

from core.accounts import MIN_PASSWORD, Role, login_account_key
from core.errors import NotFound, ValidationError
from service import csrf
from service.auth import (
    begin_session,
    current_principal,
    current_session_id,
    end_session,
    require_role,
)
from service.editor import Page, bp, ext, login_limit, me
from service.extensions import limiter

ANY_ROLE = frozenset(Role)
# How many the last sign-out (or password change) ended: said once, on the page the POST
# redirects to.
_ENDED = "nf_sessions_ended"
_CHANGED = "nf_password_changed"
_ONE_ENDED = "nf_device_signed_out"
# A device's handle on the page: the stored digest of its session id (sha256, hex), never the id.
_HANDLE = re.compile(r"[0-9a-f]{64}")


def _no_devices() -> tuple[str, int]:
    # An API token (Authorization: Bearer) is no login: it has no devices and no page here.
    return render_template(
        "editor/error.html",
        status=403,
        heading="No account here",
        message="This page is for a newsroom login; API tokens have no devices to sign out. "
        "Log in with your email to see your account.",
    ), 403


def _hours_or_minutes(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    return f"{max(1, round(seconds / 60))} min"


@bp.get("/account")
@require_role(ANY_ROLE, page=True)
def account() -> Page:
    principal, session_id = me(), current_session_id()
    if principal.user_id is None or session_id is None:
        return _no_devices()
    return _account_page()


def _account_page(error: ValidationError | None = None) -> str:
    principal, session_id = me(), current_session_id()
    assert principal.user_id is not None and session_id is not None
    s = ext().settings
    now = time.time()
    devices = ext().accounts.live_sessions(
        principal.user_id, session_id, now, s.session_lifetime_s, s.session_idle_s
    )
    others = sum(not d["current"] for d in devices)
    ended = session.pop(_ENDED, None)
    changed = session.pop(_CHANGED, False) is True
    one_ended = session.pop(_ONE_ENDED, None)
    return render_template(
        "editor/account.html",
        user=principal,
        others=others,
        devices=devices,
        one_ended=one_ended if isinstance(one_ended, str) else None,
        ended=ended if isinstance(ended, int) else None,
        changed=changed,
        idle=_hours_or_minutes(s.session_idle_s),
        min_password=MIN_PASSWORD,
        error=error,
    )


@bp.post("/account/sign-out-others")
@require_role(ANY_ROLE, page=True)
def sign_out_others() -> Page:
    """End every other session of this user on the server; this browser stays logged in."""
    principal, session_id = me(), current_session_id()
    if principal.user_id is None or session_id is None:
        return _no_devices()
    ended = ext().container.access.sign_out_elsewhere(principal, session_id, request.remote_addr)
    session[_ENDED] = ended
    return redirect(url_for("editor.account"))


@bp.post("/account/devices/<handle>/sign-out")
@require_role(ANY_ROLE, page=True)
def sign_out_device(handle: str) -> Page:
    """Sign out one other device of this user, picked from the page's list."""
    principal, session_id = me(), current_session_id()
    if principal.user_id is None or session_id is None:
        return _no_devices()
    if not _HANDLE.fullmatch(handle):
        raise NotFound("no such device signed in as you", "device")
    try:
        device = ext().container.access.sign_out_device(
            principal, session_id, handle, request.remote_addr
        )
    except ValidationError as exc:
        return _account_page(error=exc), exc.status
    session[_ONE_ENDED] = device
    return redirect(url_for("editor.account"))


def _password_key() -> str:
    # Wrong current passwords are counted per account (the login's budget, its own bucket): a
    # borrowed or stolen session cannot guess its owner's password at leisure.
    principal = current_principal()
    return "password:" + login_account_key(principal.name if principal else "")


def _wrong_password(response: BaseResponse) -> bool:
    return response.status_code == 403


@bp.post("/account/password")
@limiter.limit(login_limit, methods=["POST"], key_func=_password_key, deduct_when=_wrong_password)
@require_role(ANY_ROLE, page=True)
def change_password() -> Page:
    """The user's own new password, proved by the current one. Every other device is signed
    out; this browser stays in, under a new session id (a copy of its old cookie is worthless)."""
    principal, session_id = me(), current_session_id()
    if principal.user_id is None or session_id is None:
        return _no_devices()
    form = request.form
    try:
        ended = ext().container.access.change_own_password(
            principal,
            session_id,
            form.get("current_password", ""),
            form.get("new_password", ""),
            form.get("new_password_repeat", ""),
            request.remote_addr,
        )
    except ValidationError as exc:
        return _account_page(error=exc), exc.status
    end_session()
    csrf.rotate()
    begin_session(principal)
    session[_ENDED] = ended
    session[_CHANGED] = True
    return redirect(url_for("editor.account"))


def password_rate_limited() -> tuple[str, int]:
    """The 429 page of a password change (editor.py's TooManyRequests handler asks)."""
    ext().container.access.password_change_rate_limited(me(), request.remote_addr)
    error = ValidationError(
        "too many wrong current passwords for this account; wait a minute and try again",
        "current_password",
    )
    return _account_page(error=error), 429
