"""`newsflash status` and `health`: the /ops picture in a terminal.

Both read the database, Redis and the broker directly (like the workers do), so they work on
the machine that runs Newsflash even when the web process is down.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

from cli.args import whole_number
from cli.command import container
from cli.tables import bar, cell, short, table
from config.settings import Settings


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


def render_status(snap: dict[str, Any], out: TextIO) -> None:
    def line(text: str = "") -> None:
        print(text, file=out)

    down = [k for k in ("broker", "database", "redis") if not snap[k]["ok"]]
    alarms = snap.get("alarms") or []
    stale = snap.get("alarms_not_evaluated")
    refusing = refuses_writes(snap)
    if down:
        verdict = f"UNREACHABLE: {', '.join(down)}"
    elif refusing:  # seen by a process or the ping, before beat's next round names it
        verdict = f"DATABASE REFUSES WRITES: {'disk full' if refusing == 'disk' else 'read-only'}"
    elif alarms:
        verdict = f"{len(alarms)} ALARM(S)"
    else:
        verdict = "ALARMS NOT EVALUATED" if stale else "all clear"
    line(f"Newsflash status at {snap['generated_at']}: {verdict}")
    for a in alarms:
        line(f"  ! {a['kind']}: {a['summary']}")
    if stale:
        line(f"  ! alarms not evaluated: {stale}")
    line(backups_line(snap.get("backups")))
    _render_queues_and_workers(snap, line)
    _render_deliveries(snap, line)
    _render_hosts_errors_subscribers(snap, line)


def refuses_writes(snap: dict[str, Any]) -> str | None:
    """disk or read_only while the database refused a write lately (core/ops.py)."""
    refusing = (snap.get("database") or {}).get("refuses_writes") or {}
    return refusing.get("reason")


def backups_line(backups: dict[str, Any] | None) -> str:
    """The scheduled backups in one line: when the last was made and how many are kept, "off"
    while NEWSFLASH_BACKUP_DIR is unset, and a failure newer than the last success."""
    if backups is None:
        return "backups: off"
    last = backups["last_success_at"]
    when = "none yet" if last is None else "last " + _utc(last)
    kept = "?" if backups["kept"] is None else backups["kept"]
    text = f"backups: {when} ({kept} kept in {backups['dir']})"
    failed = backups["last_failure_at"]
    if failed is not None and (last is None or failed > last):
        text += f"; last attempt FAILED at {_utc(failed)} (see the worker log)"
    return text


def _utc(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")


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
            f"  #{a['id']:<6} {bar(a['progress'], 20)} {a['progress'] * 100:5.1f}%  "
            f"{a['done']}/{a['audience']}  {a['pace']['text']}  {short(a['title'], 40)}"
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
            f"  today ({today['day']}, {subs['timezone']}): +{today['new']} new,"
            f" -{today['lost']} lost, {_renewed_text(today)}"
        )


def _renewed_text(day: dict[str, Any]) -> str:
    """A day's renewals as /ops words them: the same readers on a new endpoint, those restored
    after a 404/410 named."""
    restored = day["renewed"]["restored"]
    after = f" ({restored} after 410)" if restored else ""
    return f"{day['renewed_total']} renewed{after}"


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
    from core import ops, ops_alarms
    from core.adapters import backups

    kit = container(settings).ops
    try:
        now = time.time()
        snap = ops.collect(kit.sources, now)
        try:
            snap["alarms"] = ops_alarms.alarms_json(kit.alarm_store)
        except Exception:
            snap["alarms"] = []
        snap["alarms_evaluated_s_ago"], snap["alarms_not_evaluated"] = _not_evaluated(kit, now)
        snap["backups"] = backups.status(settings, backups.RedisBackupState(kit.telemetry.client))
    finally:
        kit.container.engine.dispose()
    if args.json:
        print(json.dumps(snap, indent=2))
    else:
        render_status(snap, sys.stdout)
    healthy = all(snap[k]["ok"] for k in ("broker", "database")) and not refuses_writes(snap)
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
        f" {'moved':>6} {'restored':>8}"
        f" {'/reader/day':>11} {'delivered':>9} {'displayed':>9} {'clicked':>8}",
        file=out,
    )
    for w in reversed(health["weeks"]):
        lost = w["lost"]
        per_day = w["alerts_per_reader_day"]
        print(
            f"{w['week']:<11} {w['gained']:>7} {lost['unsubscribed'] + lost['moved']:>6}"
            f" {lost['gone']:>6} {lost['purged']:>6}"
            f" {w['renewed']['moved']:>6} {w['renewed']['restored']:>8}"
            f" {'—' if per_day is None else f'{per_day:.1f}':>11} {_pct(w['delivered_rate']):>9}"
            f" {_pct(w['displayed_rate']):>9} {_pct(w['click_rate']):>8}",
            file=out,
        )
    print(
        "(moved, restored: renewals, the same readers on a new endpoint, neither gained nor"
        " lost; restored after a 404/410)",
        file=out,
    )
    unseen = ", ".join(f"{u['days']}+ days {_pct(u['share'])}" for u in health["unseen"])
    print(f"\nNot seen ({health['subscribers']} subscriptions): {unseen}", file=out)


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
