"""Where the fan-out bench's processes run (`newsflash bench fanout --placement`).

- `shared` (the default): every process on every core, as one machine runs everything.
- `split`: the delivery workers on the first half of the cores; on the other half everything
  else: the sink that stands in for the push services, the web server, beat, the maintenance
  worker, the private Redis, the bench itself, and the local PostgreSQL server's processes
  (moved back when the bench ends). That is a deployment where the workers have machines of
  their own and the push services are other companies' machines: the workers' rate is then set
  by the workers' own CPU, not by how much of it the stand-ins' jitter timers and the
  database's extra rows take from them on a shared core.

Linux only (sched_setaffinity); split needs two cores at least.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import psutil
from sqlalchemy.engine import make_url

MODES = ("shared", "split")
LOCAL_HOSTS = {None, "", "127.0.0.1", "localhost", "::1"}


def check(mode: str) -> None:
    """ValueError (one line) for a placement this machine cannot give."""
    if mode not in MODES:
        raise ValueError(f"--placement: one of {', '.join(MODES)}")
    if mode == "split":
        if not hasattr(os, "sched_setaffinity"):
            raise ValueError("--placement split needs Linux (sched_setaffinity)")
        if len(os.sched_getaffinity(0)) < 2:
            raise ValueError("--placement split needs two cores at least")


class Placement:
    """Pins this process (what it starts inherits it) and a local PostgreSQL; the delivery
    workers' Proc takes `worker_cpus`."""

    def __init__(self, mode: str) -> None:
        check(mode)
        self.mode = mode
        self.worker_cpus: set[int] | None = None
        self.other_cpus: set[int] | None = None
        self._own: set[int] | None = None
        self._postgres: dict[int, set[int]] = {}
        self._postmaster: psutil.Process | None = None
        if mode == "split":
            cores = sorted(os.sched_getaffinity(0))
            half = len(cores) // 2
            self.worker_cpus, self.other_cpus = set(cores[:half]), set(cores[half:])

    def start(self, database_url: str) -> dict[str, Any]:
        """Pin the bench (its children inherit it) and a local PostgreSQL; the report's part."""
        if self.other_cpus is None:
            return {"mode": self.mode}
        self._own = os.sched_getaffinity(0)
        os.sched_setaffinity(0, self.other_cpus)
        database = "elsewhere"
        if database_url.startswith("postgresql") and make_url(database_url).host in LOCAL_HOSTS:
            pinned = self._pin_postgres(database_url, self.other_cpus)
            database = "pinned" if pinned else "not pinned"
        return {
            "mode": self.mode,
            "worker_cpus": sorted(self.worker_cpus or ()),
            "other_cpus": sorted(self.other_cpus),
            "postgresql": database,
        }

    def _pin_postgres(self, database_url: str, cpus: set[int]) -> bool:
        """The server behind `database_url`: its postmaster and backends (new backends inherit
        the postmaster's cores). Found through our own backend, so no other server is moved."""
        import psycopg

        url = make_url(database_url).set(drivername="postgresql")
        try:
            with psycopg.connect(url.render_as_string(hide_password=False)) as conn:
                row = conn.execute("SELECT pg_backend_pid()").fetchone()
                # While the connection is open: once closed, the backend exits.
                postmaster = psutil.Process(int(row[0]) if row else 0).parent()
        except (psycopg.Error, psutil.Error, ValueError):
            return False
        if postmaster is None:
            return False
        for proc in [postmaster, *postmaster.children()]:
            with contextlib.suppress(psutil.Error):
                before = set(proc.cpu_affinity())
                proc.cpu_affinity(sorted(cpus))
                self._postgres[proc.pid] = before
        self._postmaster = postmaster
        return bool(self._postgres)

    def restore(self) -> None:
        """Everything back where it was: the server's processes (backends started meanwhile
        get the cores the bench had), then the bench itself."""
        everyone = self._own or set(range(os.cpu_count() or 1))
        if self._postmaster is not None:
            with contextlib.suppress(psutil.Error):
                for proc in [self._postmaster, *self._postmaster.children()]:
                    with contextlib.suppress(psutil.Error):
                        proc.cpu_affinity(sorted(self._postgres.get(proc.pid, everyone)))
        self._postgres, self._postmaster = {}, None
        if self._own is not None:
            os.sched_setaffinity(0, self._own)
            self._own = None
