"""Newsroom pages (/editor): the blueprint, what every page shares, login and logout.

The pages live beside it: editor_reports (history, reports, Stop/Undo), editor_compose
(compose, test, review, send, schedule, test devices), editor_corrections, editor_audit,
editor_account (your account: sign out of all other devices).
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    current_app,
    redirect,
    render_template,
    request,
    url_for,
)
from markupsafe import Markup, escape
from werkzeug.exceptions import TooManyRequests
from werkzeug.wrappers import Response as BaseResponse

from core import newsroom
from core.accounts import Principal, Role, login_account_key
from core.adapters.newsroom_sql import SqlNewsroom
from core.errors import DomainError, NotFound
from core.model import Alert
from core.pace import duration_text
from core.usecases.newsroom import Editor, Newsroom
from service import csrf, previews, wording
from service.app import Newsflash
from service.auth import (
    begin_session,
    current_principal,
    end_session,
    has_session,
    known_device,
    remember_device,
)
from service.errors import error_response
from service.extensions import limiter
from service.redirects import safe_next

bp = Blueprint("editor", __name__, url_prefix="/editor")

Page = str | BaseResponse | tuple[str, int]


def ext() -> Newsflash:
    return current_app.extensions["newsflash"]  # type: ignore[no-any-return]


def newsroom_store() -> SqlNewsroom:
    return ext().container.newsroom_store


def room() -> Newsroom:
    return ext().container.newsroom


def me() -> Principal:
    principal = current_principal()
    assert principal is not None  # require_role ran first
    return principal


def editor() -> Editor:
    principal = me()
    return Editor(principal.name, principal.user_id)


@bp.before_request
def _check_csrf() -> Response | None:
    return csrf.rejected()


@bp.app_context_processor
def _template_globals() -> dict[str, Any]:
    origin = ext().settings.public_origins[0]
    return {
        "csrf_token": csrf.csrf_token,
        "newsroom_user": _session_user,
        "nf_site": urlsplit(origin).netloc,
        "nf_site_origin": origin,
        "nf_zone": ext().settings.newsroom_timezone,
        "nf_clock": lambda: wording.local_clock(time.time(), ext().settings.timezone),
    }


@bp.record_once
def _wording_globals(state: Any) -> None:
    # Globals, not context: the macros in _macros.html are imported without the context.
    state.app.jinja_env.globals.update(
        nf_state=nf_state_word,
        nf_state_class=wording.state_class,
        nf_field_message=_field_message,
        nf_platforms=previews.PLATFORMS,
        nf_clip=previews.clip,
        nf_site_name=lambda: ext().settings.site_name,
        nf_site_icon=_site_icon,
    )


def _site_icon() -> str:
    return ext().settings.site_icon_url or url_for("static", filename="icons/icon-192.png")


def nf_state_word(alert: Alert) -> str:
    undo = newsroom.in_undo_window(alert, time.time(), ext().settings.undo_window_s)
    return wording.state_word(alert, undo)


def _field_message(error: DomainError) -> str:
    return wording.field_message(error, time.time(), ext().settings.timezone)


def _session_user() -> Principal | None:
    return current_principal() if has_session() else None


NBSP = "\u00a0"


def local_time(ts: float | None, with_date: bool = True) -> str:
    """A time in the newsroom's zone, as editors read it."""
    if ts is None:
        return "—"
    when = datetime.fromtimestamp(ts, ext().settings.timezone)
    return when.strftime("%a %d %b %H:%M:%S %Z" if with_date else "%H:%M:%S %Z")


@bp.app_template_filter("nf_time")
def page_time(ts: float | None, with_date: bool = True) -> str:
    """local_time for a page: its date and its clock each held on one line by no-break spaces,
    so a narrow cell breaks between them, never inside ("Thu 03 Dec 13:53:26" over "EAT").
    Spaces, not a span per part: a phone card lays each element of a cell out as its own box
    ("OK," pushed away from the time beside it)."""
    text = local_time(ts, with_date)
    if ts is None or not with_date:
        return text.replace(" ", NBSP)
    date, clock, zone = text.rsplit(" ", 2)
    return f"{date.replace(' ', NBSP)} {clock}{NBSP}{zone}"


@bp.app_template_filter("nf_ttl")
def _ttl(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    return f"{seconds // 60} min"


# After each single "/" (the host's and the path's, not the scheme's "//") and before ? and &.
_URL_BREAKS = re.compile(r"(?<=[^/]/)(?!/)|(?=[?&])")


@bp.app_template_filter("nf_url")
def url_with_breaks(url: str) -> Markup:
    """An address as text with a line break allowed (<wbr>) between its parts, so a narrow cell
    wraps it after its host or a path's "/" rather than inside the host ("127.0.0." over
    "1:8080/feed/"). The scheme stays with the host: "http://" alone on a line reads as noise."""
    return Markup("<wbr>").join(escape(part) for part in _URL_BREAKS.split(url) if part)


@bp.app_template_filter("nf_duration")
def _duration(seconds: float | None) -> str:
    """The chart's words for a duration (core.pace), so a milestone box and the chart's legend
    never say "12.3 s" and "12 s" for the same mark; editor.js's nfDuration says the same."""
    return "—" if seconds is None else duration_text(seconds)


# -- login ----------------------------------------------------------------------------------
def login_limit() -> str:
    return ext().settings.rate_limit_login


def _refused(response: BaseResponse) -> bool:
    # Only a refused password spends a budget: a newsroom behind one office or carrier address
    # logging in at the start of a shift is not an attack.
    return response.status_code == 401


def _from_known_device() -> bool:
    return known_device(_typed_email()) is not None


def _from_new_device() -> bool:
    return not _from_known_device()


def _account_key() -> str:
    return login_account_key(_typed_email() or "")


def _device_key() -> str:
    return "device:" + (known_device(_typed_email()) or "")


@bp.errorhandler(TooManyRequests)
def _too_many(exc: TooManyRequests) -> tuple[str, int]:
    if request.endpoint == "editor.change_password":
        return editor_account.password_rate_limited()
    if request.endpoint == "editor.login_submit":
        ext().container.access.login_rate_limited(_typed_email(), request.remote_addr)
    # One answer whichever budget ran out: the message tells nobody which accounts exist.
    message = (
        "Too many login attempts were refused for this account or this network. "
        "Wait a minute and try again."
    )
    return render_template("editor/login.html", error=message), 429


# Control characters never belong in an email or a filter, and PostgreSQL refuses NUL in text:
# such input is refused before it reaches the database.
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _typed_email() -> str | None:
    email = request.form.get("email", "").strip().lower()[:320]
    return None if CONTROL.search(email) else email or None


@bp.get("/login", endpoint="login")
def login_form() -> Page:
    if has_session() and current_principal() is not None:
        return redirect(safe_next(request.args.get("next")) or url_for("editor.history"))
    return render_template("editor/login.html", next=safe_next(request.args.get("next")))


@bp.post("/login")
# Refused attempts are counted per address (IPv6 by its /64: client_key) and per account typed;
# a browser that has logged in to that account before is counted on its own instead (auth.
# known_device), so a guesser on the editor's carrier address or at the editor's account from
# many addresses never locks the editor's own phone out.
@limiter.limit(login_limit, methods=["POST"], deduct_when=_refused, exempt_when=_from_known_device)
@limiter.limit(
    login_limit,
    methods=["POST"],
    key_func=_account_key,
    deduct_when=_refused,
    exempt_when=_from_known_device,
)
@limiter.limit(
    login_limit,
    methods=["POST"],
    key_func=_device_key,
    deduct_when=_refused,
    exempt_when=_from_new_device,
)
def login_submit() -> Page:
    email = _typed_email() or ""
    password = request.form.get("password", "")
    target = safe_next(request.form.get("next"))
    if CONTROL.search(request.form.get("email", "")):
        error = "Email: control characters are not allowed."
        return render_template("editor/login.html", error=error, next=target), 400
    principal = ext().container.access.login(email, password, request.remote_addr)
    if principal is None:
        return render_template(
            "editor/login.html", error="Wrong email or password.", email=email, next=target
        ), 401
    end_session()
    csrf.rotate()
    begin_session(principal)
    if target is None and principal.role is Role.OPS:
        target = "/ops"
    response = redirect(target or url_for("editor.history"))
    remember_device(response, principal.name)
    return response


@bp.post("/logout")
def logout() -> BaseResponse:
    principal = current_principal()
    if principal is not None:
        ext().container.access.logout(principal)
    end_session()
    csrf.rotate()
    return redirect(url_for("editor.login"))


def alert_or_404(alert_id: int) -> Alert:
    alert = ext().container.alerts.get_alert(alert_id)
    if alert is None:
        raise NotFound("no such alert", "id")
    return alert


@bp.errorhandler(NotFound)
def _not_found(exc: NotFound) -> Response | tuple[str, int]:
    if request.is_json or request.accept_mimetypes.best == "application/json":
        return error_response(404, exc.code, exc.message, exc.field)
    return render_template("editor/missing.html"), 404


# The pages register their routes on bp when imported (after bp and the helpers above exist).
from service import (  # noqa: E402
    editor_account,
    editor_audit,
    editor_compose,
    editor_corrections,
    editor_reports,
    editor_team,
)

__all__ = [
    "bp",
    "editor_account",
    "editor_audit",
    "editor_compose",
    "editor_corrections",
    "editor_reports",
    "editor_team",
]
