"""One batch inside the push sender (`webpush.Http11PushSender`): its count of pushes still
queued and still unanswered, and the events its worker thread waits on."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable

from core.adapters.http11 import Route
from core.adapters.push_client import Heads
from core.ports import PushMessage, PushResult

# A batch whose remaining pushes have waited this long for full windows, while request slots
# sit idle, is handed off before all its pushes have started (see Http11PushSender._watch).
HAND_OFF_AFTER_S = 0.5

Item = tuple["SendJob", PushMessage, Route | None, str]


class SendJob:
    """One batch in the sender: its results go to `on_result` on the sender's thread as they
    arrive. `handed_off` is set once every message has been taken by a request slot (or its
    last ones have waited HAND_OFF_AFTER_S for full windows while slots were idle: a slow host
    does not keep the process from its next batch), `done` once every
    message has a result or was dropped because `should_stop` said so."""

    __slots__ = (
        "context",
        "done",
        "enqueued",
        "error",
        "handed_off",
        "heads",
        "left",
        "on_result",
        "queued",
        "should_stop",
        "stopped",
    )

    def __init__(
        self,
        count: int,
        on_result: Callable[[PushResult], None],
        should_stop: Callable[[], bool],
    ) -> None:
        self.on_result = on_result
        self.should_stop = should_stop
        # The submitting task's context (its request id for the logs) around each on_result.
        self.context = contextvars.copy_context()
        self.left = count  # messages without a result yet
        self.queued = count  # messages not yet taken by a slot
        self.stopped = False
        self.enqueued = 0.0  # when its pushes went into the hosts' queues (monotonic)
        self.error: BaseException | None = None
        # Header blocks (VAPID included) are built once per batch, push host and message kind.
        self.heads: Heads = {}
        self.handed_off = threading.Event()
        self.done = threading.Event()

    def wait_handed_off(self) -> None:
        self.handed_off.wait()

    def wait(self) -> None:
        """Until every message has its result; raises what `on_result` raised."""
        self.done.wait()
        if self.error is not None:
            raise self.error
