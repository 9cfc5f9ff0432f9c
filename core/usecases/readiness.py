"""The Readiness use cases: hold an alert for its article, check it (beat), let an editor send anyway."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from core import alerts as alert_rules
from core.errors import Conflict, DomainError, NotFound
from core.model import Alert, AlertDraft, AlertKind, AlertStatus
from core.ports import AlertStore, AuditLog, TaskQueue
from core.readiness import CHECK_EVERY_S, Gate, GateState, answer_words

log = logging.getLogger("newsflash.readiness")


class GateStore(Protocol):
    def open(self, alert_id: int, now: float) -> None: ...
    def get(self, alert_id: int) -> Gate | None: ...
    def holds(self, alert_id: int) -> bool: ...
    def due(
        self, now: float, limit: int, alert_id: int | None = None
    ) -> list[tuple[Gate, str]]: ...
    def claim_check(self, gate: Gate, now: float, next_check_at: float) -> bool: ...
    def record_answer(self, alert_id: int, answer: str) -> None: ...
    def release(self, alert_id: int, state: GateState, now: float, by: str | None) -> bool: ...


class ArticleProbe(Protocol):
    def status(self, url: str, field: str = "url") -> int: ...


@dataclass(frozen=True)
class ReadinessPolicy:
    enabled: bool = True
    wait_s: float = 60.0
    check_every_s: float = CHECK_EVERY_S
    per_round: int = 10


class Readiness:
    """The gate between "queued" and the fan-out; Newsroom opens it, beat checks it."""

    def __init__(
        self,
        gates: GateStore,
        alerts: AlertStore,
        queue: TaskQueue,
        probe: ArticleProbe,
        audit: AuditLog,
        policy: ReadinessPolicy,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.gates = gates
        self.alerts = alerts
        self.queue = queue
        self.probe = probe
        self.audit_log = audit
        self.policy = policy
        self.clock = clock

    # -- Newsroom and Delivery ask -----------------------------------------------------------
    def applies(self, draft: AlertDraft, wanted: bool) -> bool:
        return self.policy.enabled and wanted and draft.kind is AlertKind.NORMAL

    def open(self, alert: Alert, now: float) -> None:
        self.gates.open(alert.id, now)

    def holds(self, alert_id: int) -> bool:
        """The plan task asks first: while this is True it plans nothing.

        A waiting gate is checked once right here (one bounded fetch, a few seconds at most),
        so an alert whose article is already up goes without waiting for beat's next round.
        """
        if not self.gates.holds(alert_id):
            return False
        now = self.clock()
        for gate, url in self.gates.due(now, 1, alert_id=alert_id):
            return not self._check(gate, url, now, enqueue=False)
        return True

    def gate(self, alert_id: int) -> Gate | None:
        return self.gates.get(alert_id)

    # -- beat ------------------------------------------------------------------------------------
    def check_due(self) -> int:
        """One bounded fetch per waiting alert that is due; release those that are ready."""
        now = self.clock()
        return sum(
            self._check(gate, url, now, enqueue=True)
            for gate, url in self.gates.due(now, self.policy.per_round)
        )

    def _check(self, gate: Gate, url: str, now: float, enqueue: bool) -> bool:
        """Fetch the article once (if no one else is); True if this released the gate."""
        if not self.gates.claim_check(gate, now, now + self.policy.check_every_s):
            return False
        started = gate.started_at if gate.started_at is not None else now
        try:
            status: int | None = self.probe.status(url)
            error = None
        except DomainError as exc:
            status, error = None, exc.message
        answer = answer_words(status, error)
        self.gates.record_answer(gate.alert_id, answer)
        if status is not None and 200 <= status < 300:
            return self._release(gate.alert_id, GateState.LIVE, None, enqueue)
        if self.clock() >= started + self.policy.wait_s:
            log.warning(
                "article not ready in time; sending",
                extra={"alert_id": gate.alert_id, "answer": answer},
            )
            return self._release(gate.alert_id, GateState.TIMED_OUT, None, enqueue)
        return False

    # -- the editor ------------------------------------------------------------------------------
    def send_anyway(self, editor_name: str | None, alert_id: int) -> Alert:
        alert = self.alerts.get_alert(alert_id)
        if alert is None:
            raise NotFound("no such alert", "id")
        if alert.status not in (AlertStatus.QUEUED, AlertStatus.SCHEDULED):
            raise Conflict(f"alert is already {alert.status.value}", "status")
        if not self._release(alert_id, GateState.SENT_ANYWAY, editor_name):
            raise Conflict("this alert is not waiting for its article", "status")
        gate = self.gates.get(alert_id)
        detail = {"checks": gate.checks if gate else 0, "last_answer": gate and gate.last_answer}
        self.audit_log.audit(editor_name, "alert.send_anyway", str(alert_id), detail)
        return self.alerts.get_alert(alert_id) or alert

    def _release(
        self, alert_id: int, state: GateState, by: str | None, enqueue: bool = True
    ) -> bool:
        if not self.gates.release(alert_id, state, self.clock(), by):
            return False
        alert = self.alerts.get_alert(alert_id)
        # A scheduled alert (in its undo window) is planned by fire_scheduled when it fires;
        # the plan task that released it plans it itself.
        if enqueue and alert is not None and alert.status is AlertStatus.QUEUED:
            alert_rules.enqueue_plan(alert, self.queue)
        return True
