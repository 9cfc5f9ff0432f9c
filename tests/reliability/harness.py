"""Reliability rig: a Newsflash stack with killable workers, a private Redis and stand-ins."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import redis as redis_lib
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, func, select

from config.settings import Settings
from core.accounts import Role
from core.adapters import tables as t
from core.adapters.stores_sql import SqlStores
from core.endpoints import push_host
from core.model import LedgerStatus
from standin.server import PushStandin
from tests.support.live_stack import LiveStack, live_stack
from tests.support.services import free_port
from tests.support.stack import Process, wait_until

ORIGIN = "http://127.0.0.1:8000"


class RedisServer:
    """A private redis-server on its own port (AOF on), to kill and restart at will."""

    def __init__(self, root: Path, appendonly: bool = True) -> None:
        self.dir = root
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.appendonly = appendonly
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis_lib.Redis[bytes]:
        return redis_lib.Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=1)

    def start(self) -> RedisServer:
        argv = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.dir),
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--maxmemory-policy",
            "noeviction",
            "--logfile",
            str(self.dir / "redis.log"),
        ]
        self.proc = subprocess.Popen(argv, start_new_session=True)
        wait_until(self._pingable, 20, f"redis-server on port {self.port}", interval_s=0.05)
        return self

    def _pingable(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis_lib.RedisError:
            return False

    def kill(self) -> None:
        """SIGKILL: no shutdown save, clients see the connection drop."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
            self.kills += 1
        self.proc = None

    def wipe(self) -> None:
        """Forget everything on disk: the next start() is an empty Redis."""
        for entry in self.dir.iterdir():
            if entry.name == "redis.log":
                continue
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()

    def freeze(self) -> None:
        """SIGSTOP: the kernel still accepts connections and ACKs what clients send; nothing is
        answered (a hung Redis, as a stalled VM or a fork-heavy save shows it)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        self.thaw()
        self.kill()


class PostgresServer:
    """A private PostgreSQL cluster (initdb as the postgres user, trust auth, loopback only) on
    its own port, to freeze and thaw at will without touching the machine's shared server."""

    BIN = Path("/usr/lib/postgresql")

    def __init__(self) -> None:
        # Its own directory under /tmp: pytest's are private to root, and the server runs as
        # the postgres user.
        self.root = Path(tempfile.mkdtemp(prefix="newsflash-pg-"))
        self.data = self.root / "pg"
        self.port = free_port()

    @classmethod
    def bin_dir(cls) -> Path | None:
        found = sorted(cls.BIN.glob("*/bin/initdb"))
        return found[-1].parent if found else None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, command: str) -> None:
        subprocess.run(["su", "postgres", "-c", command], check=True, capture_output=True)

    def start(self) -> PostgresServer:
        bin_dir = self.bin_dir()
        assert bin_dir is not None
        self.root.chmod(0o777)
        self._as_postgres(f"{bin_dir}/initdb -D {self.data} -A trust -U postgres")
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self._as_postgres(
            f"{bin_dir}/pg_ctl -D {self.data} -o '{options}' -l {self.root}/pg.log -w start"
        )
        return self

    def _processes(self) -> list[psutil.Process]:
        postmaster = psutil.Process(int((self.data / "postmaster.pid").read_text().split()[0]))
        return [postmaster, *postmaster.children(recursive=True)]

    def freeze(self) -> None:
        """SIGSTOP the postmaster and every backend: connections stay open, nothing answers."""
        for proc in self._processes():
            proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        for proc in self._processes():
            proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        bin_dir = self.bin_dir()
        if bin_dir is not None and (self.data / "postmaster.pid").exists():
            with contextlib.suppress(psutil.Error, OSError, ValueError):
                self.thaw()
            self._as_postgres(f"{bin_dir}/pg_ctl -D {self.data} -m immediate stop")
        shutil.rmtree(self.root, ignore_errors=True)


class SmallDisk:
    """A tmpfs of its own (root only, as tests run here): a disk to fill up, or to remount
    read-only as the kernel does after a disk error."""

    def __init__(self, size_mb: int, path: Path | None = None) -> None:
        self.path = path or Path(tempfile.mkdtemp(prefix="newsflash-disk-"))
        self.size_mb = size_mb
        self.filler = self.path / "filler"

    def __enter__(self) -> SmallDisk:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={self.size_mb}m,mode=0777", "tmpfs", self.path],
            check=True,
        )
        return self

    def __exit__(self, *_exc: object) -> None:
        subprocess.run(["umount", "-l", self.path], check=True)
        shutil.rmtree(self.path, ignore_errors=True)

    def fill(self) -> None:
        """Every free byte taken by one file (as logs or backups would)."""
        chunk = b"\0" * 65536
        with contextlib.suppress(OSError), self.filler.open("wb", buffering=0) as out:
            while out.write(chunk):  # until ENOSPC
                pass

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def read_only(self, on: bool) -> None:
        mode = "ro" if on else "rw"
        subprocess.run(["mount", "-o", f"remount,{mode}", self.path], check=True)


def send_through_a_stall(
    r: Rig, stalled: RedisServer | PostgresServer, stall_s: float, audience: int
) -> tuple[dict[str, Any], float, Counter[str]]:
    """Publish to everyone, freeze `stalled` (SIGSTOP) once a quarter of the audience has the
    alert, thaw it stall_s later: the alert once `sent`, the seconds from the thaw to `sent`,
    and how often each reader got it."""
    alert_id = r.publish()
    wait_until(
        lambda: len(received_tokens(r.standin, alert_id)) >= audience // 4,
        60,
        "a quarter of the audience",
        interval_s=0.02,
    )
    stalled.freeze()
    time.sleep(stall_s)
    stalled.thaw()
    back = time.monotonic()
    final = r.wait_status(alert_id, "sent", 120)
    return final, time.monotonic() - back, received_tokens(r.standin, alert_id)


def bulk_subscribe(store: SqlStores, subs: Iterable[dict[str, Any]], topics: list[str]) -> int:
    """Insert stand-in subscriptions straight into the table (20,000 POSTs would take minutes),
    then rebuild the audience counters the way an operator repairs them."""
    mask = store.topics.mask_of(topics)
    now = time.time()
    rows = [
        {
            "endpoint": s["endpoint"],
            "p256dh": s["keys"]["p256dh"],
            "auth": s["keys"]["auth"],
            "topic_mask": mask,
            "push_host": push_host(s["endpoint"]),
            "created_at": now,
            "last_seen_at": now,
        }
        for s in subs
    ]
    with store.engine.begin() as conn:
        for start in range(0, len(rows), 5000):
            conn.execute(t.subscriptions.insert(), rows[start : start + 5000])
    store.subscriptions.recount_masks()
    return len(rows)


def token_of(endpoint: str) -> str:
    return endpoint.rstrip("/").rsplit("/", 1)[-1]


def received_tokens(standin: PushStandin, alert_id: str) -> Counter[str]:
    """How often each subscription got this alert (decrypted, answered 2xx)."""
    return Counter(
        r.token
        for r in standin.received
        if r.payload is not None and r.payload.get("id") == alert_id
    )


@dataclass
class Rig:
    """One test stack (a live_stack without stand-ins or processes): database, Flask app (test
    client), an editor token; live worker processes are added by the test."""

    live: LiveStack
    store: SqlStores
    token: str

    @property
    def tmp(self) -> Path:
        return self.live.logs.parent

    @property
    def env(self) -> dict[str, str]:
        return self.live.env

    @property
    def settings(self) -> Settings:
        return self.live.settings

    @property
    def engine(self) -> Engine:
        return self.live.engine

    @property
    def app(self) -> Flask:
        return self.live.app

    @property
    def client(self) -> FlaskClient:
        return self.live.client

    @property
    def processes(self) -> list[Process]:
        return self.live.processes

    @property
    def standin(self) -> PushStandin:
        return self.live.standin

    # -- processes ---------------------------------------------------------------------
    def start(self, workers: dict[str, int], beat: bool = True) -> dict[str, Process]:
        """Workers (name -> concurrency, every queue) and beat, started side by side."""
        specs = [(name, None, concurrency) for name, concurrency in workers.items()]
        return self.live.start_processes(specs, beat, ready_timeout_s=90)

    def stop_processes(self) -> None:
        self.live.stop_processes(grace_s=5)

    # -- API ---------------------------------------------------------------------------
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def publish(self, **fields: Any) -> str:
        body = {
            "title": "Breaking: " + uuid.uuid4().hex[:8],
            "body": "Something important happened.",
            "url": f"{ORIGIN}/news/{uuid.uuid4().hex[:6]}",
            "topics": ["breaking"],
            **fields,
        }
        answer = self.client.post("/api/v1/alerts", json=body, headers=self.auth())
        assert answer.status_code == 202, answer.json
        return str(answer.json["id"])

    def alert(self, alert_id: str) -> dict[str, Any]:
        answer = self.client.get(f"/api/v1/alerts/{alert_id}", headers=self.auth())
        assert answer.status_code == 200, answer.json
        return dict(answer.json)

    def cancel(self, alert_id: str) -> None:
        self.client.post(f"/api/v1/alerts/{alert_id}/cancel", json={}, headers=self.auth())

    def wait_status(self, alert_id: str, status: str, timeout_s: float) -> dict[str, Any]:
        return wait_until(
            lambda: (a := self.alert(alert_id))["status"] == status and a,
            timeout_s,
            f"alert {alert_id} to be {status}",
            interval_s=0.5,
        )

    # -- database ----------------------------------------------------------------------
    def ledger(self, alert_id: str) -> Counter[int]:
        d = t.deliveries
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(d.c.status, func.count())
                .where(d.c.alert_id == int(alert_id))
                .group_by(d.c.status)
            ).all()
        return Counter({int(s): int(n) for s, n in rows})

    def final_count(self, alert_id: str) -> int:
        ledger = self.ledger(alert_id)
        return sum(n for s, n in ledger.items() if LedgerStatus(s).final)

    def batch_states(self, alert_id: str) -> Counter[str]:
        b = t.batches
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(b.c.status, func.count())
                .where(b.c.alert_id == int(alert_id))
                .group_by(b.c.status)
            ).all()
        return Counter({str(s): int(n) for s, n in rows})

    def subscription_count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(t.subscriptions)).scalar_one())


@contextlib.contextmanager
def rig(
    tmp: Path,
    database_url: str,
    redis_url: str,
    vapid_pem: str,
    standin: bool = False,
    **extra: str,
) -> Iterator[Rig]:
    """A migrated database, the Flask app and an editor token; processes are added by the test.
    With standin, a push stand-in on 127.0.0.1 (r.standin); else the test brings its own."""
    settings_extra: dict[str, Any] = {"RATE_LIMIT_SUBSCRIBE": "100000 per minute", **extra}
    with live_stack(
        tmp,
        database_url,
        redis_url,
        vapid_pem,
        workers=(),
        beat=False,
        standin=standin,
        grace_s=5,
        **settings_extra,
    ) as live:
        store = SqlStores.build(live.engine, live.settings.topics)
        yield Rig(live, store, live.token("reliability", Role.EDITOR))


def pool_children(proc: Process) -> list[psutil.Process]:
    """The prefork pool's children of a worker's main process."""
    return psutil.Process(proc.pid).children(recursive=False)


def broker_messages(client: redis_lib.Redis[bytes], queues: Iterable[str]) -> list[dict[str, Any]]:
    """Every task message the Redis broker holds: waiting in a queue or delivered but unacked."""
    messages: list[dict[str, Any]] = []
    for queue in queues:
        for raw in client.lrange(queue, 0, -1):
            messages.append(json.loads(raw))
    for raw in client.hvals("unacked"):
        messages.append(json.loads(raw)[0])
    return messages


def os_pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
