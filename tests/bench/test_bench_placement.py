"""`bench fanout --placement split`: the delivery workers on half of the cores, the rest of the
stack and the PostgreSQL server behind the bench's database on the other half, and everything
put back when the bench ends, whatever the outcome. Checked on the machine's real PostgreSQL:
its postmaster and backends are moved and moved back; nothing else is."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from sqlalchemy import create_engine, text

from bench import placement
from bench.fanout import Proc
from tests.support.services import create_pg_database, drop_pg_database

pytestmark = pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="split placement needs Linux and two cores",
)


@pytest.fixture
def database(postgres_available: bool) -> Iterator[str]:
    url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


def _postmaster_of(url: str) -> psutil.Process:
    engine = create_engine(url, poolclass=None)
    try:
        with engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
            parent = psutil.Process(pid).parent()  # while the backend lives
    finally:
        engine.dispose()
    assert parent is not None
    return parent


def test_split_pins_the_workers_apart_from_the_rest_and_puts_everything_back(
    database: str,
) -> None:
    own = os.sched_getaffinity(0)
    postmaster = _postmaster_of(database)
    before = set(postmaster.cpu_affinity())
    place = placement.Placement("split")
    assert place.worker_cpus and place.other_cpus
    assert place.worker_cpus.isdisjoint(place.other_cpus)
    assert place.worker_cpus | place.other_cpus == own
    try:
        said = place.start(database)
        assert said == {
            "mode": "split",
            "worker_cpus": sorted(place.worker_cpus),
            "other_cpus": sorted(place.other_cpus),
            "postgresql": "pinned",
        }
        assert os.sched_getaffinity(0) == place.other_cpus  # the bench, and what it starts
        assert set(postmaster.cpu_affinity()) == place.other_cpus
        backend = _postmaster_of(database)  # a backend forked meanwhile: the same server
        assert backend.pid == postmaster.pid
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
        try:
            assert os.sched_getaffinity(child.pid) == place.other_cpus
        finally:
            child.kill()
            child.wait()
    finally:
        place.restore()
    assert os.sched_getaffinity(0) == own
    assert set(postmaster.cpu_affinity()) == before
    assert all(set(p.cpu_affinity()) == before for p in postmaster.children())


def test_a_worker_proc_takes_its_cores_at_once(tmp_path: Path) -> None:
    cpus = {sorted(os.sched_getaffinity(0))[0]}
    proc = Proc("worker0", [sys.executable, "-c", "import time; time.sleep(5)"], {}, tmp_path, cpus)
    try:
        assert os.sched_getaffinity(proc.proc.pid) == cpus
    finally:
        proc.stop(grace_s=1)


def test_shared_moves_nothing(database: str) -> None:
    own = os.sched_getaffinity(0)
    place = placement.Placement("shared")
    assert place.start(database) == {"mode": "shared"}
    assert place.worker_cpus is None and os.sched_getaffinity(0) == own
    place.restore()


def test_a_placement_this_machine_cannot_give_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ValueError, match=r"^--placement: one of shared, split$"):
        placement.check("spread")
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0})
    with pytest.raises(ValueError, match=r"^--placement split needs two cores at least$"):
        placement.check("split")
    placement.check("shared")
