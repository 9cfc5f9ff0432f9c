"""`newsflash status` and `newsflash alerts watch ID`: the /ops picture in a terminal.

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
from typing import Any, TextIO

from config.settings import Settings

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
    verdict = (
        f"UNREACHABLE: {', '.join(down)}"
        if down
        else (f"{len(alarms)} ALARM(S)" if alarms else "all clear")
    )
    line(f"Newsflash status at {snap['generated_at']}: {verdict}")
    for a in alarms:
        line(f"  ! {a['kind']}: {a['summary']}")
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
            f"{t['name'].removeprefix('newsflash.')} {t['args']}" for t in w["active"]
        )
        line(f"  {w['name']}  [{queues}]  {w['processes']} processes  {running or 'idle'}")
    line()
    rate = snap["delivery_rate"]
    if rate is not None:
        line(
            f"Delivery rate: {rate['per_second']}/s over the last minute "
            f"({rate['delivered']} delivered, {rate['attempts']} attempts)"
        )
    flights = snap["alerts_in_flight"]
    line()
    line("Alerts in flight" + ("" if flights else ": none"))
    for a in flights or []:
        eta = "—" if a["eta_s"] is None else _age(a["eta_s"])
        line(
            f"  #{a['id']:<6} {_bar(a['progress'], 20)} {a['progress'] * 100:5.1f}%  "
            f"{a['done']}/{a['audience']}  {a['rate_per_s']}/s  ETA {eta}  {a['title'][:40]}"
        )
    hosts = snap["push_hosts"]
    if hosts:
        line()
        line("Push services      2xx  404/410   429   4xx   5xx  timeout  breaker")
        for h in hosts:
            n = h["answers"]
            breaker = f"OPEN ({h['breaker']['reason']})" if h["breaker"] else "closed"
            line(
                f"  {h['host'][:16]:<16} {n['2xx']:>5} {n['404/410']:>8} {n['429']:>5} "
                f"{n['4xx']:>5} {n['5xx']:>5} {n['timeout']:>8}  {breaker}"
            )
    errors = snap["recent_errors"] or []
    if errors:
        line()
        line("Last errors")
        for e in errors[:5]:
            answer = f"HTTP {e['status']}" if e["status"] is not None else e["error"]
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


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from core import ops

    kit = _kit(settings)
    try:
        snap = ops.collect(kit.sources, time.time())
        try:
            snap["alarms"] = ops.alarms_json(kit.alarm_store)
        except Exception:
            snap["alarms"] = []
    finally:
        kit.container.engine.dispose()
    if args.json:
        print(json.dumps(snap, indent=2))
    else:
        render_status(snap, sys.stdout)
    return 0 if not snap["alarms"] and all(snap[k]["ok"] for k in ("broker", "database")) else 1


def progress_line(alert: Any, rate: float, now: float) -> str:
    c = alert.counts
    done = c.delivered + c.gone + c.failed
    fraction = done / c.audience if c.audience else (1.0 if alert.status.finished else 0.0)
    eta = "—"
    if c.pending == 0:
        eta = "0 s"
    elif rate > 0:
        eta = _age(c.pending / rate)
    return (
        f"alert {alert.id} {alert.status.value:<9} {_bar(fraction)} {fraction * 100:5.1f}% "
        f"{done}/{c.audience}  {rate:,.0f}/s  ETA {eta}  "
        f"delivered {c.delivered} gone {c.gone} failed {c.failed} pending {c.pending}"
    )


def cmd_alerts_watch(args: argparse.Namespace, settings: Settings) -> int:
    """Redraw one progress line until the alert is sent, failed or cancelled."""
    from core.bootstrap import Container

    container = Container(settings)
    try:
        return _watch(container.store, int(args.id), args)
    finally:
        container.engine.dispose()


def _watch(store: Any, alert_id: int, args: argparse.Namespace) -> int:
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
        first_t, first_done = samples[0]
        rate = (samples[-1][1] - first_done) / (now - first_t) if now > first_t else 0.0
        text = progress_line(alert, rate, time.time())
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
            took = ""
            if alert.started_at and alert.finished_at:
                took = f" in {_age(alert.finished_at - alert.started_at)}"
            print(f"alert {alert_id} {alert.status.value}{took}.", flush=True)
            return 0 if alert.status.value == "sent" else 1
        if deadline is not None and now > deadline:
            print(f"\nstopped watching after {args.timeout:.0f} s", file=sys.stderr)
            return 3
        time.sleep(args.interval)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "status", help="queues, workers, alerts in flight, push hosts, alarms (like /ops)"
    )
    p.add_argument("--json", action="store_true", help="the same facts as /api/v1/ops/queues")
    p.set_defaults(func=cmd_status, needs_keys=False)

    alerts = subparsers.add_parser("alerts", help="follow alerts").add_subparsers(
        dest="alerts_command", required=True, metavar="ACTION"
    )
    p = alerts.add_parser("watch", help="live progress bar (rate, ETA, outcomes) until finished")
    p.add_argument("id", type=int, help="the alert id")
    p.add_argument("--interval", type=float, default=0.5, help="seconds between redraws")
    p.add_argument(
        "--every", type=float, default=2.0, help="seconds between lines when not on a terminal"
    )
    p.add_argument("--timeout", type=float, default=0, help="give up after this many seconds")
    p.set_defaults(func=cmd_alerts_watch, needs_keys=False)
