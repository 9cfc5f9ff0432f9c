"""The newsroom's own account page (/editor/account): who is logged in here, and signing out of
every other device (a lost or shared phone) without waiting for an admin at the CLI."""

from __future__ import annotations

import time

from flask import redirect, render_template, request, session, url_for

from core.accounts import Role
from service.auth import current_session_id, require_role
from service.editor import Page, bp, ext, me

ANY_ROLE = frozenset(Role)
# How many the last sign-out ended: said once, on the page the POST redirects to.
_ENDED = "nf_sessions_ended"


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
    s = ext().settings
    others = ext().accounts.other_sessions(
        principal.user_id, session_id, time.time(), s.session_lifetime_s, s.session_idle_s
    )
    ended = session.pop(_ENDED, None)
    return render_template(
        "editor/account.html",
        user=principal,
        others=others,
        ended=ended if isinstance(ended, int) else None,
        idle=_hours_or_minutes(s.session_idle_s),
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
