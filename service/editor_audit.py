"""The audit log page (admins): who did what and when, in sentences, filtered and paged."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from flask import render_template, request

from core.accounts import Role
from core.errors import ValidationError
from core.inputs import whole_number
from service import wording
from service.auth import require_role
from service.editor import CONTROL, Page, bp, ext

# -- audit ----------------------------------------------------------------------------------
AUDIT_PAGE = 50


@bp.get("/audit")
@require_role({Role.ADMIN}, page=True)
def audit() -> Page:
    """Newest first, a page at a time, narrowed by who, what and when (all in the query string)."""
    args = request.args
    filters = {k: args.get(k, "").strip()[:320] for k in ("actor", "action", "from", "to")}
    try:
        for field, value in filters.items():
            if CONTROL.search(value):
                raise ValidationError(f"{field}: control characters are not allowed", field)
        since = _day_start(filters["from"], "from")
        until = _day_start(filters["to"], "to", days_later=1)  # the "to" day is included
        before = _whole(args.get("before", ""), "before")
    except ValidationError as exc:
        return render_template(
            "editor/audit.html", entries=[], filters=filters, actions=[], error=exc.message
        ), 400
    accounts = ext().accounts
    entries = accounts.audit_entries(
        AUDIT_PAGE + 1,
        before_id=before,
        actor=filters["actor"] or None,
        action=filters["action"] or None,
        since=since,
        until=until,
    )
    older = entries[AUDIT_PAGE - 1]["id"] if len(entries) > AUDIT_PAGE else None
    entries = entries[:AUDIT_PAGE]
    for entry in entries:
        try:
            entry["detail"] = json.loads(entry["detail"] or "{}")
        except ValueError:
            entry["detail"] = {"raw": entry["detail"]}
    return render_template(
        "editor/audit.html",
        entries=entries,
        filters=filters,
        actions=accounts.audit_actions(),
        older=older,
        newer=before is not None,
        page_args={k: v for k, v in filters.items() if v},
        audit_sentence=_sentences_for(entries),
    )


def _sentences_for(entries: list[dict[str, Any]]) -> Any:
    """audit_sentence(entry) for the template, with the alerts the page names loaded once."""
    store = ext().container.alerts
    ids = {int(e["target"]) for e in entries if _names_alert(e)}
    alerts = {i: a for i in ids if (a := store.get_alert(i)) is not None}

    def sentence(entry: dict[str, Any]) -> str:
        alert = alerts.get(int(entry["target"])) if _names_alert(entry) else None
        return wording.audit_sentence(entry, alert)

    return sentence


def _names_alert(entry: dict[str, Any]) -> bool:
    target = entry.get("target") or ""
    return (
        str(entry.get("action", "")).startswith("alert.") and whole_number(target, 18) is not None
    )


def _day_start(value: str, field: str, days_later: int = 0) -> float | None:
    """A YYYY-MM-DD date as the start of that day (or one days_later) in the newsroom's zone."""
    if not value:
        return None
    try:
        day = datetime.strptime(value, "%Y-%m-%d") + timedelta(days=days_later)
    except (ValueError, OverflowError):
        raise ValidationError(f"{field}: a date as YYYY-MM-DD", field) from None
    return day.replace(tzinfo=ext().settings.timezone).timestamp()


def _whole(value: str, field: str) -> int | None:
    if not value:
        return None
    number = whole_number(value, 18)
    if number is None:
        raise ValidationError(f"{field}: a whole number", field)
    return number
