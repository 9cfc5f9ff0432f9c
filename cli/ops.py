"""`newsflash status`, `alerts watch ID` and `alerts list`: the /ops picture in a terminal.

Both read the database, Redis and the broker directly (like the workers do), so they work on
the machine that runs Newsflash even when the web process is down.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TextIO

from cli.args import number, whole_number
from cli.tables import cell, print_table, table, when
from config.settings import Settings
from core.pace import Pace, duration_text, pace_of

BAR_WIDTH = 30


def _kit(settings: Settings) -> Any:
    from core.bootstrap import Container

    return Container(settings).ops


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


def _bar(fraction: float, width: int = BAR_WIDTH) -> str:
    filled = max(0, min(width, round(fraction * width)))
    return "█" * filled + "░" * (width - filled)


def render_status(snap: dict[str, Any], out: TextIO) -> None:
    def line(text: str = "") -> None:
        print(text, file=out)

    down = [k for k in ("broker", "database", "redis") if not snap[k]["ok"]]
    alarms = snap.get("alarms") or []
    stale = snap.get("alarms_not_evaluated")
    if down:
        verdict = f"UNREACHABLE: {', '.join(down)}"
    elif alarms:
        verdict = f"{len(alarms)} ALARM(S)"
    else:
        verdict = "ALARMS NOT EVALUATED" if stale else "all clear"
    line(f"Newsflash status at {snap['generated_at']}: {verdict}")
    for a in alarms:
        line(f"  ! {a['kind']}: {a['summary']}")
    if stale:
        line(f"  ! alarms not evaluated: {stale}")
    _render_queues_and_workers(snap, line)
    _render_deliveries(snap, line)
    _render_hosts_errors_subscribers(snap, line)


def _render_queues_and_workers(snap: dict[str, Any], line: Callable[..., None]) -> None:
    line()
    line("Queues")
    if snap["queues"] is None:
        line(f"  broker {snap['errors'].get('broker', 'unreachable')}")
    for q in snap["queues"] or []:
        taken = q["last_consumed_s_ago"]
        line(
            f"  {q['name']:<24} waiting {q['depth']:>7}   oldest {_age(q['oldest_age_s']):>10}"
            f"   last taken {('never' if taken is None else _age(taken) + ' ago'):>12}"
        )
    line(f"  oldest pending delivery: {_age(snap['oldest_pending_s'])}")
    line()
    line("Workers")
    if snap["workers"] is None:
        line("  could not ask the workers (broker unreachable)")
    elif not snap["workers"]:
        line("  none answered: nothing is being delivered")
    for w in snap["workers"] or []:
        queues = ", ".join(q.removeprefix("newsflash.") for q in w["queues"])
        running = "; ".join(
            f"{t['name'].removeprefix('newsflash.')} {t['args']}".rstrip() for t in w["active"]
        )
        processes = f"{w['processes']} process{'' if w['processes'] == 1 else 'es'}"
        line(f"  {w['name']}  [{queues}]  {processes}  {running or 'idle'}")


def _render_deliveries(snap: dict[str, Any], line: Callable[..., None]) -> None:
    rate = snap["delivery_rate"]
    if rate is not None:
        line()
        line(
            f"Delivery rate: {rate['per_second']}/s over the last minute "
            f"({rate['delivered']} delivered, {rate['attempts']} attempts)"
        )
    flights = snap["alerts_in_flight"]
    line()
    line("Alerts in flight" + ("" if flights else ": none"))
    for a in flights or []:
        line(
            f"  #{a['id']:<6} {_bar(a['progress'], 20)} {a['progress'] * 100:5.1f}%  "
            f"{a['done']}/{a['audience']}  {a['pace']['text']}  {_short(a['title'], 40)}"
        )


def _render_hosts_errors_subscribers(snap: dict[str, Any], line: Callable[..., None]) -> None:
    hosts = snap["push_hosts"]
    if hosts:
        line()
        line("Push services")
        answers = ("2xx", "404/410", "429", "4xx", "5xx", "timeout")
        rows = [
            (
                h["host"],
                *(h["answers"][k] for k in answers),
                f"OPEN ({h['breaker']['reason']})" if h["breaker"] else "closed",
            )
            for h in hosts
        ]
        columns = [("HOST", "<"), *((k.upper() if k == "timeout" else k, ">") for k in answers)]
        columns.append(("BREAKER", "<"))
        for text in table(columns, rows, indent="  "):
            line(text)
    errors = snap["recent_errors"] or []
    if errors:
        line()
        line("Last errors")
        for e in errors[:5]:
            answer = f"HTTP {e['status']}" if e["status"] is not None else cell(e["error"])
            line(f"  {e['at']}  alert {e['alert_id']}  {e['endpoint']}  {answer}  {e['outcome']}")
    subs = snap["subscribers"]
    if subs is not None:
        line()
        topics = ", ".join(f"{k} {v}" for k, v in subs["per_topic"].items())
        line(f"Subscribers: {subs['total']} ({topics})")
        today = subs["days"][-1]
        line(
            f"  today ({today['day']}, {subs['timezone']}): +{today['new']} new, -{today['lost']} lost"
        )


def _not_evaluated(kit: Any, now: float) -> tuple[float | None, str | None]:
    """Seconds since the last alarm round, and why the alarm list cannot be trusted when no
    round ran for three intervals (beat down): the same rule as /ops."""
    try:
        evaluated = kit.telemetry.evaluated_at()
    except Exception:
        return None, None  # Redis unreachable: the verdict says so already
    if evaluated is None:
        return None, "no alarm round has run yet; is beat running?"
    ago = max(0.0, now - evaluated)
    if ago > 3 * kit.settings.alarm_interval_s + 5:
        return round(ago, 1), f"the last alarm round ran {_age(ago)} ago; is beat running?"
    return round(ago, 1), None


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from core import ops

    kit = _kit(settings)
    try:
        now = time.time()
        snap = ops.collect(kit.sources, now)
        try:
            snap["alarms"] = ops.alarms_json(kit.alarm_store)
        except Exception:
            snap["alarms"] = []
        snap["alarms_evaluated_s_ago"], snap["alarms_not_evaluated"] = _not_evaluated(kit, now)
    finally:
        kit.container.engine.dispose()
    if args.json:
        print(json.dumps(snap, indent=2))
    else:
        render_status(snap, sys.stdout)
    healthy = all(snap[k]["ok"] for k in ("broker", "database"))
    return 0 if healthy and not snap["alarms"] and not snap["alarms_not_evaluated"] else 1


def cmd_health(args: argparse.Namespace, settings: Settings) -> int:
    from core import audience_health
    from core.adapters.health_sql import SqlHealthQueries
    from core.adapters.sql import make_engine

    engine = make_engine(settings.database_url, pool_size=1)
    try:
        health = audience_health.report(
            SqlHealthQueries(engine), time.time(), settings.timezone, args.weeks
        )
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps(health, indent=2))
    else:
        render_health(health, sys.stdout)
    return 1 if health["warnings"] else 0


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:.1f} %"


def render_health(health: dict[str, Any], out: TextIO) -> None:
    warnings = health["warnings"]
    print(f"Audience health ({health['timezone']}): {len(warnings) or 'no'} warning(s)", file=out)
    for w in warnings:
        print(f"  ! {w['message']}", file=out)
    print(
        f"\n{'week of':<11} {'gained':>7} {'unsub':>6} {'gone':>6} {'purged':>6}"
        f" {'/reader/day':>11} {'delivered':>9} {'displayed':>9} {'clicked':>8}",
        file=out,
    )
    for w in reversed(health["weeks"]):
        lost = w["lost"]
        per_day = w["alerts_per_reader_day"]
        print(
            f"{w['week']:<11} {w['gained']:>7} {lost['unsubscribed'] + lost['moved']:>6}"
            f" {lost['gone']:>6} {lost['purged']:>6}"
            f" {'—' if per_day is None else f'{per_day:.1f}':>11} {_pct(w['delivered_rate']):>9}"
            f" {_pct(w['displayed_rate']):>9} {_pct(w['click_rate']):>8}",
            file=out,
        )
    unseen = ", ".join(f"{u['days']}+ days {_pct(u['share'])}" for u in health["unseen"])
    print(f"\nNot seen ({health['subscribers']} subscriptions): {unseen}", file=out)


def progress_line(alert: Any, pace: Pace) -> str:
    c = alert.counts
    done = c.delivered + c.gone + c.failed
    fraction = done / c.audience if c.audience else (1.0 if alert.status.finished else 0.0)
    return (
        f"alert {alert.id} {alert.status.value:<9} {_bar(fraction)} {fraction * 100:5.1f}% "
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
    from core.bootstrap import Container

    container = Container(settings)
    alert_id = int(args.id)

    def waiting(alert: Any) -> str | None:
        gate = container.readiness.gate(alert_id)
        return waiting_line(alert, gate, settings.article_wait_s, time.time())

    try:
        return _watch(container.alerts, alert_id, args, waiting)
    finally:
        container.engine.dispose()


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


LIST_MAX = 200
TITLE_WIDTH = 50


def _short(text: str, width: int = TITLE_WIDTH) -> str:
    """Cut at a word, so a title never ends mid-word."""
    text = cell(text)
    if len(text) <= width:
        return text
    cut = text[: width - 1].rsplit(" ", 1)[0] if " " in text[: width - 1] else text[: width - 1]
    return cut.rstrip(",;:.- ") + "…"


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
        _short(alert.title),
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
    from core.bootstrap import Container
    from core.errors import ValidationError

    statuses = _statuses(args.status)
    if not 1 <= args.limit <= LIST_MAX:
        raise ValidationError(f"must be from 1 to {LIST_MAX} (got {args.limit})", "--limit")
    container = Container(settings)
    try:
        alerts = container.alerts.list_alerts(limit=args.limit, statuses=statuses)
    finally:
        container.engine.dispose()
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
    p = subparsers.add_parser(
        "status", help="queues, workers, alerts in flight, push hosts, alarms (like /ops)"
    )
    p.add_argument("--json", action="store_true", help="the same facts as /api/v1/ops/queues")
    p.set_defaults(func=cmd_status, needs_keys=False)

    p = subparsers.add_parser(
        "health", help="audience health per week: gained, lost, delivered, clicks, warnings"
    )
    p.add_argument(
        "--weeks", type=whole_number(2, 26), default=8, help="weeks to show (2-26, default 8)"
    )
    p.add_argument("--json", action="store_true", help="the same facts as /api/v1/ops/health")
    p.set_defaults(func=cmd_health, needs_keys=False)

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
