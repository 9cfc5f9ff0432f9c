"""`newsflash alerts watch ID` and `alerts list`: one alert's progress until it finishes, and
the recent alerts as a table.

Both read the database directly (like the workers do), so they work on the machine that runs
Newsflash even when the web process is down.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from cli.args import number
from cli.command import container
from cli.tables import bar, print_table, short, when
from config.settings import Settings
from core.pace import Pace, duration_text, pace_of

LIST_MAX = 200


def progress_line(alert: Any, pace: Pace) -> str:
    c = alert.counts
    done = c.delivered + c.gone + c.failed
    fraction = done / c.audience if c.audience else (1.0 if alert.status.finished else 0.0)
    return (
        f"alert {alert.id} {alert.status.value:<9} {bar(fraction)} {fraction * 100:5.1f}% "
        f"{done}/{c.audience}  {pace.text}  "
        f"delivered {c.delivered} gone {c.gone} failed {c.failed} pending {c.pending}"
    )


def waiting_line(alert: Any, gate: Any, wait_s: float, now: float) -> str | None:
    """`alerts watch` for an alert held by the publish-readiness gate (its status is still
    queued): what it waits for and when it goes anyway, as the report page says it."""
    from core.readiness import GateState

    if gate is None or gate.state is not GateState.WAITING or alert.status.finished:
        return None
    answer = f" (it answered {gate.last_answer})" if gate.last_answer else ""
    deadline = gate.deadline(wait_s)
    left = "" if deadline is None else f"; sent anyway in {max(0, round(deadline - now))} s"
    return f"alert {alert.id} waiting for the article to be online{answer}{left}"


def finished_line(alert: Any) -> str:
    """The last line of `alerts watch`: the status value, and for a cancelled alert the
    newsroom's word for it (called off before sending, or stopped mid-send)."""
    from service.wording import state_word

    duration = pace_of(alert, []).duration_s
    took = "" if duration is None else f" in {duration_text(duration)}"
    note = ""
    if alert.status.value == "cancelled":
        c = alert.counts
        reached = (
            f"{c.delivered:,} of {c.audience:,} reached"
            if alert.started_at
            else "nobody received it"
        )
        note = f" ({state_word(alert).lower()}: {reached})"
    return f"alert {alert.id} {alert.status.value}{took}{note}."


def cmd_alerts_watch(args: argparse.Namespace, settings: Settings) -> int:
    """Redraw one progress line until the alert is sent, failed or cancelled."""
    c = container(settings)
    alert_id = int(args.id)

    def waiting(alert: Any) -> str | None:
        gate = c.readiness.gate(alert_id)
        return waiting_line(alert, gate, settings.article_wait_s, time.time())

    try:
        return _watch(c.alerts, alert_id, args, waiting)
    finally:
        c.engine.dispose()


def _watch(
    store: Any,
    alert_id: int,
    args: argparse.Namespace,
    waiting: Callable[[Any], str | None] = lambda alert: None,
) -> int:
    from core.errors import NotFound

    samples: deque[tuple[float, int]] = deque(maxlen=20)
    tty = sys.stdout.isatty()
    last_print = 0.0
    deadline = time.monotonic() + args.timeout if args.timeout else None
    while True:
        alert = store.get_alert(alert_id)
        if alert is None:
            raise NotFound(f"no alert {alert_id}")
        now = time.monotonic()
        c = alert.counts
        samples.append((now, c.delivered + c.gone + c.failed))
        text = waiting(alert) or progress_line(alert, pace_of(alert, list(samples)))
        if tty:
            width = shutil.get_terminal_size((120, 20)).columns
            sys.stdout.write("\r" + text[: width - 1].ljust(width - 1))
            sys.stdout.flush()
        elif now - last_print >= args.every or alert.status.finished:
            print(text, flush=True)
            last_print = now
        if alert.status.finished:
            if tty:
                print()
            print(finished_line(alert), flush=True)
            return 0 if alert.status.value == "sent" else 1
        if deadline is not None and now > deadline:
            print(f"\nstopped watching after {args.timeout:.0f} s", file=sys.stderr)
            return 3
        time.sleep(args.interval)


ALERT_COLUMNS = (
    ("ID", ">"),
    ("STATUS", "<"),
    ("CREATED", "<"),
    ("AUDIENCE", ">"),
    ("DELIVERED", ">"),
    ("TITLE", "<"),
)


def alert_row(alert: Any, tz: Any) -> tuple[object, ...]:
    c = alert.counts
    return (
        alert.id,
        alert.status.value,
        when(alert.created_at, tz),
        f"{c.audience:,}",
        f"{c.delivered:,}",
        short(alert.title),
    )


def _statuses(value: str | None) -> list[str]:
    from core.errors import ValidationError
    from core.model import AlertStatus

    allowed = [s.value for s in AlertStatus]
    wanted = [] if value is None else [s.strip() for s in value.split(",") if s.strip()]
    bad = [s for s in wanted if s not in allowed]
    if bad or (value is not None and not wanted):
        raise ValidationError(
            f"{', '.join(bad) or repr(value)} is not a status; use one of {', '.join(allowed)}"
            " (several with commas)",
            "--status",
        )
    return wanted


def cmd_alerts_list(args: argparse.Namespace, settings: Settings) -> int:
    """Newest first: id, status, created (newsroom time), audience, delivered, title."""
    from core.errors import ValidationError

    statuses = _statuses(args.status)
    if not 1 <= args.limit <= LIST_MAX:
        raise ValidationError(f"must be from 1 to {LIST_MAX} (got {args.limit})", "--limit")
    c = container(settings)
    try:
        alerts = c.alerts.list_alerts(limit=args.limit, statuses=statuses)
    finally:
        c.engine.dispose()
    if args.json:
        from service.api import alert_json

        print(json.dumps({"alerts": [alert_json(a) for a in alerts]}, indent=2))
        return 0
    print_table(
        ALERT_COLUMNS,
        [alert_row(a, settings.timezone) for a in alerts],
        "no alerts" + (f" with status {', '.join(statuses)}" if statuses else ""),
    )
    return 0


def register(subparsers: Any) -> None:
    alerts = subparsers.add_parser("alerts", help="follow alerts").add_subparsers(
        dest="alerts_command", required=True, metavar="ACTION"
    )
    p = alerts.add_parser("watch", help="live progress bar (rate, ETA, outcomes) until finished")
    p.add_argument("id", type=int, help="the alert id")
    p.add_argument("--interval", type=number(0.1, 60), default=0.5, help="seconds between redraws")
    p.add_argument(
        "--every",
        type=number(0.1, 3600),
        default=2.0,
        help="seconds between lines when not on a terminal",
    )
    p.add_argument(
        "--timeout",
        type=number(0, 86_400),
        default=0,
        help="give up after this many seconds (0: wait until it finishes)",
    )
    p.set_defaults(func=cmd_alerts_watch, needs_keys=False)
    p = alerts.add_parser("list", help="recent alerts, newest first (status, audience, delivered)")
    p.add_argument(
        "--status", help="only these: scheduled, queued, sending, sent, cancelled, failed"
    )
    p.add_argument("--limit", type=int, default=20, help=f"at most this many (1-{LIST_MAX})")
    p.add_argument("--json", action="store_true", help="the API's alert objects, for machines")
    p.set_defaults(func=cmd_alerts_list, needs_keys=False)
