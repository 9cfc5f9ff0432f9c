"""Per-push-host in-flight windows: one that sizes itself from answer times and errors, one fixed."""

from __future__ import annotations

import math
import time
from typing import Protocol

from core.ports import PushResult

# The window starts at 64 (a push service takes that many requests from one client without
# noticing; from 16, slow start at 60-200 ms answers cost about 0.4 s of a six-second fan-out)
# and doubles per round trip (slow start) until the first sign of congestion, then grows by a
# sixteenth per round trip (at least one request per round trip): a fan-out lasts
# seconds, not the minutes TCP Reno's one request per round trip would take to win back a cut
# (350 to 700 at 70 ms: 25 s). The answer-time guards below stop the growth, not its pace.
INITIAL_WINDOW = 64
AVOIDANCE_GROWTH = 1 / 16
MIN_WINDOW = 4
# Answer time is judged against the lowest one seen over the last two periods, so a host whose
# base latency moves for good is re-learnt within two periods instead of shrunk for ever.
MIN_RTT_PERIOD_S = 10.0
# "Near its minimum": up to twice the minimum plus a slack. The slack covers what the sender
# itself adds (its own event loop queue) on a loopback push service answering in 0.2 ms.
GROW_FACTOR = 2.0
SHRINK_FACTOR = 4.0
SLACK_S = 0.02
# The smoothed answer time follows 1/64 of each sample, each capped at eight times the minimum:
# a slow tail (one answer in a hundred taking 2 s) is not a queue, and uncapped it would hold
# the mean far above the minimum (the last answers of every batch are the slow ones).
RTT_GAIN = 1 / 64
SAMPLE_CAP = 8.0
# 5xx answers count as congestion once they are more than a few percent of the recent answers;
# a stray 503 in two hundred is an error to retry, not a reason to halve the window. Averaged
# over ~128 answers: over 64, four stray 503s close together (0.5 % of answers) crossed the
# limit in one of twenty 17,000-answer stretches and halved a window that was fine.
ERROR_GAIN = 1 / 128
ERROR_RATE_LIMIT = 0.05
# The sender's own event loop lag (how late it runs what is due) says whether this process has
# the CPU for more requests in flight. Past LAG_GROW_LIMIT no window grows: more requests out
# would only wait longer for the loop and cost more CPU each (docs/capacity.md, "Measured on
# 1 December"); past LAG_SHRINK_LIMIT the windows give back a tenth per round trip.
LAG_GROW_LIMIT = 0.05
LAG_SHRINK_LIMIT = 0.1
HARD_CUT = 0.5  # 429, timeouts and too many 5xx: multiplicative decrease
SOFT_CUT = 0.9  # answers queueing up (smoothed answer time far above the minimum)


class Window(Protocol):
    """How many requests may be in flight to one push host; told how each answer went."""

    @property
    def size(self) -> int: ...

    def answered(self, rtt_s: float, in_flight: int, now: float, lag_s: float = 0.0) -> None: ...

    def throttled(self, now: float) -> None: ...

    def failed(self, now: float) -> None: ...


class FixedWindow:
    """NEWSFLASH_CONCURRENCY_MODE=fixed: the per-host maximum, whatever the answers."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        self.size = size

    def answered(self, rtt_s: float, in_flight: int, now: float, lag_s: float = 0.0) -> None:
        pass

    def throttled(self, now: float) -> None:
        pass

    def failed(self, now: float) -> None:
        pass


class AdaptiveWindow:
    """A congestion window per push host (multiplicative decrease with a latency gradient, as Vegas).

    Little's law sizes what a host needs: rate times answer time in flight. The window grows while
    answers stay near the host's minimum answer time and the window is actually used (at least
    half of it in flight), shrinks by a tenth per round trip when answers queue up (smoothed
    answer time beyond four times the minimum), and halves on 429, on timeouts and when 5xx
    answers pile up, at most once per round trip so one burst of errors is one cut. The sender's
    own loop lag stops the growth (past LAG_GROW_LIMIT) or shrinks the window (past
    LAG_SHRINK_LIMIT): a process out of CPU gains nothing from more requests in flight.
    Pure: the caller passes the clock; about a microsecond per answer.
    """

    __slots__ = (
        "_current_min",
        "_cut_until",
        "_period_end",
        "_previous_min",
        "error_rate",
        "limit",
        "maximum",
        "minimum",
        "smoothed_rtt",
        "threshold",
    )

    def __init__(self, maximum: int, initial: int = INITIAL_WINDOW, minimum: int = MIN_WINDOW):
        self.maximum = float(max(1, maximum))
        self.minimum = float(max(1, min(minimum, maximum)))
        self.limit = float(max(self.minimum, min(initial, maximum)))
        self.threshold = self.maximum  # slow start until the first congestion signal
        self.smoothed_rtt = 0.0
        self.error_rate = 0.0
        self._previous_min = math.inf
        self._current_min = math.inf
        self._period_end = -math.inf
        self._cut_until = -math.inf

    @property
    def size(self) -> int:
        return int(self.limit)

    @property
    def min_rtt(self) -> float:
        return min(self._previous_min, self._current_min)

    def answered(self, rtt_s: float, in_flight: int, now: float, lag_s: float = 0.0) -> None:
        """A 2xx/4xx answer after `rtt_s`, with `in_flight` requests out when it was sent and
        the sender's loop running `lag_s` late."""
        if now >= self._period_end:
            self._previous_min, self._current_min = self._current_min, rtt_s
            self._period_end = now + MIN_RTT_PERIOD_S
        elif rtt_s < self._current_min:
            self._current_min = rtt_s
        base = self._previous_min if self._previous_min < self._current_min else self._current_min
        sample = rtt_s if rtt_s < base * SAMPLE_CAP else base * SAMPLE_CAP
        if self.smoothed_rtt == 0.0:
            self.smoothed_rtt = sample
        else:
            self.smoothed_rtt += (sample - self.smoothed_rtt) * RTT_GAIN
        self.error_rate -= self.error_rate * ERROR_GAIN
        if self.smoothed_rtt > base * SHRINK_FACTOR + SLACK_S or lag_s > LAG_SHRINK_LIMIT:
            self._cut(SOFT_CUT, now)
        elif (
            rtt_s <= base * GROW_FACTOR + SLACK_S
            and in_flight * 2 >= self.limit
            and lag_s < LAG_GROW_LIMIT
        ):
            limit = self.limit
            if limit < self.threshold:
                grown = limit + 1.0
            else:
                grown = limit + max(AVOIDANCE_GROWTH, 1.0 / limit)
            self.limit = grown if grown < self.maximum else self.maximum

    def throttled(self, now: float) -> None:
        """429 or a timeout: the host asks for less (or cannot keep up)."""
        self._cut(HARD_CUT, now)
        self.threshold = self.limit

    def failed(self, now: float) -> None:
        """A 5xx answer or a broken connection."""
        self.error_rate += (1.0 - self.error_rate) * ERROR_GAIN
        if self.error_rate > ERROR_RATE_LIMIT:
            self.throttled(now)

    def _cut(self, factor: float, now: float) -> None:
        if now < self._cut_until:
            return  # one cut per round trip: the answers already on their way say the same
        self.limit = max(self.minimum, self.limit * factor)
        self._cut_until = now + max(self.smoothed_rtt, 0.001)


def judge(window: Window, result: PushResult, in_flight: int, lag_s: float = 0.0) -> None:
    """Feed a host's window what one answer says about its load (and the sender's lag)."""
    now = time.monotonic()
    status, error = result.status, result.error
    if status is not None:
        if status == 429:
            window.throttled(now)
        elif status >= 500:
            window.failed(now)
        else:
            window.answered(result.elapsed_s, in_flight, now, lag_s)
    elif error == "timeout":
        window.throttled(now)
    elif error == "connect":
        window.failed(now)
