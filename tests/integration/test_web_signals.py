"""`newsflash web --workers 2` stopped by a signal sent to its parent alone, as a service
manager's `kill $MAINPID` or an ExecReload's `kill -HUP` does: the parent stops its server
processes and exits, and the port is free for the next start. SIGHUP once ended the parent on
the spot and left its server processes serving, the port held."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import pytest

from tests.support.services import free_port, make_env, port_open
from tests.support.stack import Process, child_pids, running, wait_until


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_to_the_parent_alone_stops_every_server_process(
    tmp_path: Path, redis_url: str, vapid_pem: str, stop: signal.Signals
) -> None:
    env = make_env(tmp_path / "var", f"sqlite:///{tmp_path}/nf.db", redis_url, vapid_pem)
    upgrade = Process("db-upgrade", ["db", "upgrade"], env, tmp_path / "logs")
    assert upgrade.proc.wait(timeout=60) == 0, upgrade.output()
    upgrade.stop()
    port = free_port()
    web = Process("web", ["web", "--port", str(port), "--workers", "2"], env, tmp_path / "logs")
    servers: list[int] = []
    try:
        wait_until(lambda: web.output().count("serving on") >= 2 or not web.alive(), 60, "web")
        assert web.alive(), web.output()
        servers = child_pids(web.proc.pid)
        assert len(servers) == 2, servers
        os.kill(web.proc.pid, stop)  # the parent alone, not its process group
        assert web.proc.wait(timeout=30) == 0, web.output()
        wait_until(lambda: not any(running(pid) for pid in servers), 15, "the server processes")
        assert not port_open("127.0.0.1", port)
        assert "Traceback" not in web.output()
    finally:
        for pid in servers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        web.stop()
