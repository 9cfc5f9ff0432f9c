"""Room for the sender's connections under the process's open-files limit.

Each request in flight holds a connection (a file descriptor), and kept-alive idle ones stay
open for the next push to the same host, so a process may hold up to about twice its request
slots. Many systems start processes with a soft limit of 1,024 open files: the sender lifts the
soft limit toward the hard one, and if that is still too low it runs fewer request slots
(and says so once) instead of failing connects with "too many open files" mid-send.
"""

from __future__ import annotations

import logging

log = logging.getLogger("newsflash.webpush")

# Kept for everything else a worker opens: database and Redis connections, the broker, logs.
RESERVED_FILES = 256
FILES_PER_SLOT = 2  # the request in flight and an idle kept-alive connection


def slots_that_fit(wanted: int) -> int:
    """Request slots this process can run (at most `wanted`), lifting the soft limit if needed."""
    try:
        import resource
    except ImportError:  # not on POSIX: nothing to check
        return wanted
    need = wanted * FILES_PER_SLOT + RESERVED_FILES
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    infinite = resource.RLIM_INFINITY
    if soft != infinite and soft < need:
        lifted = need if hard == infinite else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (lifted, hard))
            soft = lifted
        except (ValueError, OSError):
            pass
    if soft == infinite or soft >= need:
        return wanted
    fit = max(1, (soft - RESERVED_FILES) // FILES_PER_SLOT)
    log.warning(
        "open-files limit too low for NEWSFLASH_CONCURRENCY: running fewer request slots",
        extra={"wanted": wanted, "slots": fit, "open_files_limit": soft},
    )
    return fit
