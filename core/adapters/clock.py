"""The clock every use case reads: the real one, or (tests only) one shifted by a file's number.

End-to-end tests move time for the web, worker and beat processes at once by writing a number
of seconds into the file named by NEWSFLASH_TEST_CLOCK_FILE; nothing patches `time`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable


class FileShiftedClock:
    """time.time() plus the seconds written in a file, re-read when the file changes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._shift = 0.0

    def shift(self) -> float:
        try:
            st = os.stat(self.path)
        except OSError:
            return self._shift
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            try:
                with open(self.path, encoding="ascii") as f:
                    self._shift = float(f.read().strip() or 0)
                self._stamp = stamp
            except (OSError, ValueError):
                pass  # half-written: keep the last shift and read it again next time
        return self._shift

    def __call__(self) -> float:
        return time.time() + self.shift()


def make_clock(test_clock_file: str | None) -> Callable[[], float]:
    return time.time if not test_clock_file else FileShiftedClock(test_clock_file)
