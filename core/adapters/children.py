"""Child processes that end with the process that started them, however it ends."""

from __future__ import annotations

import shutil


def bound_to_caller() -> list[str]:
    """`setpriv --pdeathsig TERM` to put before a tool, when setpriv (util-linux) is on PATH:
    the kernel sends the child SIGTERM when the thread that started it dies, however it dies
    (a worker's hard time limit, the OOM killer, kill -9), where no handler here could run.
    pg_dump and pg_restore cancel their statement on SIGTERM; `newsflash run`'s web, workers
    and beat stop as on any SIGTERM. Call it from the thread that waits for the child (a
    thread that ends sooner takes the child with it). Not prctl in a preexec_fn: a worker runs
    sender threads, and preexec_fn is unsafe beside threads."""
    found = shutil.which("setpriv")
    return [found, "--pdeathsig", "TERM", "--"] if found else []
