"""Ops probes: Celery worker inspection and the kit of ops sources the dashboard and alarms read."""

from __future__ import annotations

import atexit
import json
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from celery import Celery
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from config.settings import Settings
from core import ops
from core.adapters.broker import BrokerUnreachable, queue_probe
from core.adapters.celery_queue import ALL_QUEUES
from core.adapters.ops_sql import SqlOpsQueries
from core.adapters.sql import make_engine
from core.adapters.telemetry import RedisTelemetry, fast_failing_client
from core.adapters.telemetry_writer import TelemetryWriter
from core.alarms import FallbackAlarmStore, Thresholds
from core.model import Alert

if TYPE_CHECKING:
    from core.bootstrap import Container


PROBE_CONNECT_TIMEOUT_S = 3


# -- worker inspection (Celery remote control, short timeouts) -----------------------------
class CeleryWorkerProbe:
    """Workers online, their queues, pool processes and running tasks: three broadcasts sent in
    parallel, each waiting at most timeout_s for replies."""

    def __init__(self, app: Celery, timeout_s: float) -> None:
        self.app = app
        self.timeout_s = timeout_s

    def _ask(self, command: str) -> dict[str, Any]:
        with self.app.connection_for_write() as conn:
            try:
                conn.ensure_connection(max_retries=1, interval_start=0, timeout=self.timeout_s)
            except Exception as exc:
                raise BrokerUnreachable(type(exc).__name__) from None
            inspector = self.app.control.inspect(timeout=self.timeout_s, connection=conn)
            answer: dict[str, Any] = getattr(inspector, command)() or {}
            return answer

    def names(self) -> list[str]:
        """The workers answering a ping (one broadcast); BrokerUnreachable as `_ask`."""
        return sorted(self._ask("ping"))

    def workers(self) -> list[ops.WorkerInfo]:
        with ThreadPoolExecutor(max_workers=3, thread_name_prefix="inspect") as pool:
            futures = {c: pool.submit(self._ask, c) for c in ("active_queues", "stats", "active")}
            answers = {c: f.result(timeout=self.timeout_s + 5) for c, f in futures.items()}
        names = sorted(set(answers["active_queues"]) | set(answers["stats"]))
        found = []
        for name in names:
            stats = answers["stats"].get(name) or {}
            pool_info = stats.get("pool") or {}
            pids = tuple(int(p) for p in pool_info.get("processes") or [])
            found.append(
                ops.WorkerInfo(
                    name=name,
                    queues=tuple(
                        sorted(q["name"] for q in answers["active_queues"].get(name) or [])
                    ),
                    processes=int(pool_info.get("max-concurrency") or len(pids)),
                    pids=pids,
                    active=tuple(running_task(t) for t in answers["active"].get(name) or []),
                )
            )
        return found


def running_task(task: dict[str, Any]) -> ops.RunningTask:
    """One entry of Celery's `inspect active` answer. A task without arguments (beat's sweeps)
    has none to show, rather than a bare `[]` after its name."""
    args = task.get("args")
    return ops.RunningTask(
        id=str(task.get("id")),
        name=str(task.get("name")),
        queue=(task.get("delivery_info") or {}).get("routing_key"),
        started_at=_wall_clock(task.get("time_start")),
        args=json.dumps(args)[:80] if args else "",
    )


def _wall_clock(value: Any) -> float | None:
    # Celery reports time_start from time.monotonic() on older versions, time.time() on newer.
    if not isinstance(value, int | float):
        return None
    now = time.time()
    if value > now - 10 * 365 * 86400:
        return float(value)
    return now - (time.monotonic() - float(value))


def sqlite_read_only(url: str) -> bool:
    """A SQLite file this process may not write (SQLITE_READONLY at the first write)."""
    path = make_url(url).database
    if not path or path == ":memory:" or not os.path.exists(path):
        return False
    return not os.access(path, os.W_OK)


class DeferredSql:
    """The database side of the ops picture, looked up at each call rather than when the kit
    is built: the SQL stores read the topics table when first built, so a process that started
    while the database was down would otherwise fail to report anything at all (a /metrics
    500 instead of newsflash_up{dependency="database"} 0, no alarm round, no `status`)."""

    def __init__(self, container: Container) -> None:
        self.container = container
        self._probe: Engine | None = None

    @property
    def _ops(self) -> SqlOpsQueries:
        return self.container.sql.ops

    def alerts_by_status(self) -> dict[str, int]:
        return self._ops.alerts_by_status()

    def subscription_total(self) -> int:
        return self._ops.subscription_total()

    def churn_since(self, since: float) -> list[tuple[int, int, int, int, int]]:
        return self._ops.churn_since(since)

    def oldest_pending_at(self, now: float) -> float | None:
        return self._ops.oldest_pending_at(now)

    def subscribers_per_topic(self) -> dict[str, int]:
        return self._ops.subscribers_per_topic()

    def ping(self) -> bool:
        """A bare connection check (it must not need the stores: they need the database), and
        whether the database takes writes. PostgreSQL's answer on a new connection covers a
        standby and a database or role set `default_transaction_read_only`; SQLite's file
        without write permission. A read-only filesystem fails SQLite's ping itself."""
        url = self.container.settings.database_url
        with self._probe_engine().connect() as conn:
            if not url.startswith("postgresql"):
                conn.exec_driver_sql("SELECT 1")
                return sqlite_read_only(url)
            said = conn.exec_driver_sql("SELECT current_setting('transaction_read_only')")
            return said.scalar() == "on"

    def _probe_engine(self) -> Engine:
        """On PostgreSQL, a new connection per ping that gives up after PROBE_CONNECT_TIMEOUT_S:
        a pooled connection to a server that stopped answering would wait as long as TCP lets
        it, and the app's connect timeout alone is most of a scrape's 10 s. SQLite: the app's."""
        url = self.container.settings.database_url
        if url.startswith("sqlite"):
            return self.container.engine
        if self._probe is None:
            probe_url = make_url(url).update_query_dict(
                {"connect_timeout": str(PROBE_CONNECT_TIMEOUT_S)}
            )
            self._probe = make_engine(probe_url.render_as_string(hide_password=False), pooled=False)
        return self._probe

    def list_alerts(
        self, limit: int = 50, before_id: int | None = None, statuses: Sequence[str] = ()
    ) -> list[Alert]:
        return self.container.sql.alerts.list_alerts(
            limit=limit, before_id=before_id, statuses=statuses
        )


@dataclass
class OpsKit:
    """The ops sources over one container's store and hosts; built once per process, without
    touching the database (see DeferredSql)."""

    settings: Settings
    container: Container
    app: Celery
    pid: int = field(init=False)
    telemetry: RedisTelemetry = field(init=False)
    writer: TelemetryWriter = field(init=False)  # what workers write and nobody waits for
    alarm_store: FallbackAlarmStore = field(init=False)
    sources: ops.OpsSources = field(init=False)
    _drains_at_exit: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        s = self.settings
        self.pid = os.getpid()
        self.telemetry = RedisTelemetry(fast_failing_client(s.redis_url))
        self.writer = TelemetryWriter(self.telemetry)
        self.alarm_store = FallbackAlarmStore(self.telemetry)
        deferred = DeferredSql(self.container)
        self.sources = ops.OpsSources(
            queues=queue_probe(s.broker_url),
            workers=CeleryWorkerProbe(self.app, s.inspect_timeout_s),
            telemetry=self.telemetry,
            queries=deferred,
            alerts=deferred,
            hosts=self.container.hosts,
            queue_names=ALL_QUEUES,
            timezone=s.timezone,
        )

    def note_refused(self, reason: str) -> None:
        """The database refused a write (db_errors.witness, on the container's engine): noted
        in Redis by the writer's thread (never waited for), where /ops and beat's alarms read
        it. A command that ends at once still gives the thread half a second to write it."""
        self.writer.note_refused(reason, time.time())
        if not self._drains_at_exit:
            self._drains_at_exit = True
            atexit.register(self.writer.drain)

    @property
    def queries(self) -> SqlOpsQueries:
        """The SQL ops queries (raises while the database cannot be reached)."""
        return self.container.sql.ops

    @property
    def thresholds(self) -> Thresholds:
        s = self.settings
        return Thresholds(
            stall_s=s.alarm_stall_s,
            pending_s=s.alarm_pending_s,
            for_s=s.alarm_for_s,
            min_rate_per_s=s.alarm_min_rate_per_s,
            pending_max_s=s.alarm_pending_max_s,
        )
