"""The Newsroom use cases: publish, schedule, cancel, correct, test-send; each writes its audit row."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from core import alerts as alert_rules
from core import corrections, duplicates, readiness, webhooks
from core import newsroom as rules
from core import stories as story_rules
from core import subscriptions as subs
from core.errors import NotFound, ValidationError
from core.model import Alert, AlertDraft, AlertKind, AlertStatus, Lane
from core.ports import AlertStore, AuditLog, SubscriptionStore, TaskQueue
from core.templates import TemplateStore, apply_to_body

CMS_ACTOR = "cms"


class NewsroomStore(Protocol):
    """The newsroom's own storage: schedule edits, test devices and webhook receipts."""

    def edit_scheduled(self, alert_id: int, draft: AlertDraft, article_id: str | None) -> bool: ...
    def corrections_of(self, alert_id: int) -> list[Alert]: ...
    def test_device_count(self, user_id: int) -> int: ...
    def set_test_device(self, sub_id: int, user_id: int | None) -> None: ...
    def record_webhook(self, webhook_id: str, now: float, keep_s: float) -> bool: ...
    def forget_webhook(self, webhook_id: str) -> None: ...


@dataclass(frozen=True)
class Editor:
    """Who acts in the newsroom: a name for the audit log, a user id for test devices."""

    name: str | None
    user_id: int | None = None


class ArticleGate(Protocol):
    """The publish-readiness gate (core/usecases/readiness.py)."""

    def applies(self, draft: AlertDraft, wanted: bool) -> bool: ...
    def open(self, alert: Alert, now: float) -> None: ...


class _Held:
    """A TaskQueue that plans nothing: a gated alert is planned when its gate opens."""

    def enqueue_plan(self, alert_id: int, lane: Lane) -> None:
        pass

    def enqueue_batch(self, batch_id: int, alert_id: int, lane: Lane) -> None:
        pass


class NeedsConfirmation(ValidationError):
    """The send is valid but reaches everyone: the newsroom asks the editor to confirm it."""


@dataclass(frozen=True)
class Published:
    alert: Alert
    created: bool  # False: the same article or Idempotency-Key was already published
    scheduled: bool  # the editor chose a later time (not only the undo window)


@dataclass(frozen=True)
class Cancelled:
    alert: Alert
    was: AlertStatus
    undo: bool  # called off inside the undo window


NO_TEST_DEVICE = (
    "You have no test device yet: open the reader's Manage alerts page (/manage) in the browser "
    "you test with, while logged in, and choose 'Use this browser as my test device'."
)


class Newsroom:
    """Everything an editor (or the CMS) does to alerts, with the rules and the audit row."""

    def __init__(
        self,
        alerts: AlertStore,
        subscriptions: SubscriptionStore,
        queue: TaskQueue,
        newsroom: NewsroomStore,
        audit: AuditLog,
        alert_rules: alert_rules.AlertRules,
        undo_window_s: int,
        clock: Callable[[], float] = time.time,
        *,
        recent: duplicates.RecentAlerts | None = None,
        duplicate_window_s: int = 0,
        templates: TemplateStore | None = None,
        gate: ArticleGate | None = None,
        stories: story_rules.StoryStore | None = None,
        story_open_days: float = 3.0,
    ) -> None:
        self.stories = stories
        self.story_open_s = story_open_days * 86400
        self.alerts = alerts
        self.gate = gate
        self.subscriptions = subscriptions
        self.queue = queue
        self.store = newsroom
        self.audit_log = audit
        self.rules = alert_rules
        self.undo_window_s = undo_window_s
        self.clock = clock
        self.recent = recent
        self.duplicate_window_s = duplicate_window_s
        self.templates = templates

    # -- reading -----------------------------------------------------------------------------
    def draft(self, editor: Editor, body: object, idempotency_key: str | None = None) -> AlertDraft:
        """Validate an alert request without publishing it (the review page shows this)."""
        draft = alert_rules.parse_alert_request(
            self._with_template(body),
            self.rules,
            self.clock(),
            idempotency_key=idempotency_key,
            created_by=editor.name,
        )
        return story_rules.mark_followable(draft, body) if self.stories else draft

    def _with_template(self, body: object) -> object:
        """`"template": "<name>"` fills what the body leaves out (an unknown name is a 400)."""
        if not isinstance(body, Mapping) or body.get("template") in (None, ""):
            return body
        name = body["template"]
        found = (
            self.templates.template_named(name.strip().lower())
            if isinstance(name, str) and self.templates is not None and len(name) <= 64
            else None
        )
        if found is None:
            have = [t.name for t in self.templates.list_templates()] if self.templates else []
            raise ValidationError(
                f"no template named {str(name)[:64]!r} (have: {', '.join(have) or 'none'})",
                "template",
            )
        # A topic dropped from the settings since the template was saved is left out.
        found = replace(found, topics=tuple(x for x in found.topics if x in self.rules.topics))
        return apply_to_body(body, found)

    def alert(self, alert_id: int) -> Alert:
        found = self.alerts.get_alert(alert_id)
        if found is None:
            raise NotFound("no such alert", "id")
        return found

    def reaches_every_topic(self, topics: Sequence[str]) -> bool:
        return len(self.rules.topics) > 1 and set(topics) >= self.rules.topics

    def duplicate_of(self, draft: AlertDraft) -> duplicates.DuplicateAlert | None:
        """The recent alert this draft repeats (the review page asks the editor to confirm).

        A retry of the same request (its article id or Idempotency-Key) is no duplicate: it
        answers with the first alert.
        """
        if self.recent is None or self.duplicate_window_s <= 0:
            return None
        if self.alerts.find_alert(
            article_id=draft.article_id, idempotency_key=draft.idempotency_key
        ):
            return None
        try:
            duplicates.check_not_duplicate(
                draft, self.recent, self.clock(), self.duplicate_window_s
            )
        except duplicates.DuplicateAlert as found:
            return found
        return None

    # -- publish -----------------------------------------------------------------------------
    def publish(
        self,
        editor: Editor,
        body: object,
        *,
        idempotency_key: str | None = None,
        undo_window: bool = False,
        confirmed_everyone: bool = True,
    ) -> Published:
        """Validate, store, enqueue; the same article or key returns the first alert.

        `undo_window`: a newsroom send waits out the undo window as a scheduled alert.
        `confirmed_everyone=False` refuses a send to every topic (NeedsConfirmation).
        """
        now = self.clock()
        draft = self.draft(editor, body, idempotency_key)
        wait = readiness.wants_wait(body)
        if not confirmed_everyone and self.reaches_every_topic(draft.topics):
            raise NeedsConfirmation(
                "This goes to every topic: tick the box to confirm you mean everyone.",
                "confirm_all",
            )
        return self._publish(editor.name, draft, now, undo_window, _duplicate_ok(body), wait)

    def _publish(
        self,
        actor: str | None,
        draft: AlertDraft,
        now: float,
        undo: bool,
        duplicate_ok: bool,
        wait: bool = True,
    ) -> Published:
        duplicate = self.duplicate_of(draft)
        if duplicate is not None and not duplicate_ok:
            raise duplicate
        scheduled = draft.send_at is not None
        window = self.undo_window_s if undo and not scheduled else 0
        if window:
            draft = rules.with_undo_window(draft, now, window)
        # A gated alert is planned only once its gate is open (a crash before the gate is opened
        # leaves it queued, and the reconciler sends it without waiting).
        gated = self.gate is not None and self.gate.applies(draft, wait)
        queue: TaskQueue = _Held() if gated else self.queue
        alert, created = alert_rules.publish(draft, self.alerts, self.subscriptions, queue, now)
        if created and gated and self.gate is not None:
            self.gate.open(alert, now)
            if alert.status is AlertStatus.QUEUED:
                # The plan task checks the article once at once; beat keeps checking after.
                alert_rules.enqueue_plan(alert, self.queue)
        if created and alert.kind is AlertKind.STORY and self.stories is not None:
            self.stories.open_story(
                alert.story_key, alert.title, alert.url, alert.id, now, now + self.story_open_s
            )
        if created:
            detail: dict[str, Any] = {
                "title": alert.title,
                "topics": list(alert.topics),
                "send_at": alert.send_at,
                "undo_window_s": window,
            }
            if alert.article_id is not None:
                detail["article_id"] = alert.article_id
            if duplicate is not None:
                detail["duplicate_of"] = duplicate.earlier.id
            action = "alert.schedule" if scheduled else "alert.send"
            self.audit_log.audit(actor, action, str(alert.id), detail)
        return Published(alert, created, scheduled)

    def receive_cms(self, webhook_id: str, payload: object) -> Published | None:
        """A verified CMS article event: an alert if the article is flagged breaking, else None.

        The webhook-id is recorded first (a replay is refused); if anything then fails, it is
        forgotten again, so a corrected retry of the same message is not refused as a replay.
        """
        now = self.clock()
        if not self.store.record_webhook(webhook_id, now, webhooks.RECEIPT_KEEP_S):
            raise webhooks.WebhookReplayed("this webhook-id was already received", "webhook-id")
        try:
            body = webhooks.alert_request(payload, self.rules.topics, self.rules.default_topics)
            if body is None:
                return None
            draft = self.draft(Editor(CMS_ACTOR), body)
            return self._publish(CMS_ACTOR, draft, now, False, _duplicate_ok(body))
        except Exception:
            self.store.forget_webhook(webhook_id)
            raise

    def edit_scheduled(self, editor: Editor, alert_id: int, body: object) -> Alert:
        """New words or time for a scheduled alert; "now" hands it to the beat at once."""
        alert = rules.check_editable(self.alerts.get_alert(alert_id))
        now = self.clock()
        draft = self.draft(editor, body)
        if draft.send_at is None:  # "now": the beat picks it up within a second
            draft = replace(draft, send_at=now)
        if not self.store.edit_scheduled(alert_id, draft, alert.article_id):
            raise ValidationError("too late: it fired while you were editing", "send_at")
        self.audit_log.audit(
            editor.name,
            "alert.schedule.edit",
            str(alert_id),
            {"title": draft.title, "topics": list(draft.topics), "send_at": draft.send_at},
        )
        return self.alert(alert_id)

    # -- stop, correct, test -----------------------------------------------------------------
    def cancel(self, editor: Editor, alert_id: int) -> Cancelled:
        """Undo (in the window), cancel a schedule, or stop a send in flight: one action."""
        before = self.alert(alert_id)
        now = self.clock()
        undo = rules.in_undo_window(before, now, self.undo_window_s)
        alert = alert_rules.cancel(alert_id, self.alerts, now)
        detail = {"was": before.status.value, "undo": undo, "delivered": alert.counts.delivered}
        self.audit_log.audit(editor.name, "alert.cancel", str(alert_id), detail)
        return Cancelled(alert, before.status, undo)

    def draft_correction(
        self, editor: Editor, alert_id: int, body: Mapping[str, Any]
    ) -> tuple[Alert, AlertDraft]:
        """The alert a correction would replace (the latest in its chain) and the validated
        correction; nothing is sent (the correction's review page shows this)."""
        target = self.correction_target(alert_id)
        return target, alert_rules.correction_draft(target, body, self.rules, editor.name)

    def correction_target(self, alert_id: int) -> Alert:
        """The alert a correction of `alert_id` replaces: the latest live one in its chain."""
        target = corrections.latest_in_chain(self.alert(alert_id), self.store.corrections_of)
        corrections.check_correctable(target)
        return target

    def correct(
        self,
        editor: Editor,
        alert_id: int,
        body: Mapping[str, Any],
        *,
        undo_window: bool = False,
        idempotency_key: str | None = None,
    ) -> Alert:
        """New words to the readers the latest alert in the chain reached, with its tag.

        Correcting an alert that was corrected already corrects the latest correction. Only a
        sending or sent alert (else Conflict). `undo_window`: a newsroom correction waits out
        the undo window like a send. The same `idempotency_key` again returns the first
        correction, even once it is the latest in the chain (a resent form corrects nothing).
        """
        earlier = alert_rules.earlier_send(
            self.alerts, idempotency_key, lambda found: self._same_correction(found, alert_id, body)
        )
        if earlier is not None:
            return earlier
        now = self.clock()
        target = self.correction_target(alert_id)
        draft = alert_rules.correction_draft(target, body, self.rules, editor.name, idempotency_key)
        window = self.undo_window_s if undo_window else 0
        draft = rules.with_undo_window(draft, now, window)
        alert, created = alert_rules.publish(
            draft, self.alerts, self.subscriptions, self.queue, now, story=target.story_key
        )
        if not created:
            return alert
        detail = {
            "corrects": target.id,
            "requested": alert_id,
            "title": alert.title,
            "topics": list(alert.topics),
            "send_at": alert.send_at,
            "undo_window_s": window,
            "before": {"title": target.title, "body": target.body, "url": target.url},
            "after": {"title": alert.title, "body": alert.body, "url": alert.url},
        }
        self.audit_log.audit(editor.name, "alert.correct", str(alert.id), detail)
        return alert

    def _same_correction(self, found: Alert, alert_id: int, body: Mapping[str, Any]) -> bool:
        chain = {a.id for a in self.chain(self.alert(alert_id))}
        return (
            found.kind is AlertKind.CORRECTION
            and found.id in chain
            and alert_rules.same_words(found, body)
        )

    def chain(self, alert: Alert) -> list[Alert]:
        """The original and all its corrections, oldest first (every report in it shows this)."""
        return corrections.chain_of(alert, self.alerts.get_alert, self.store.corrections_of)

    def test_send(self, editor: Editor, body: object) -> Alert:
        """Only to the editor's own test devices, labelled "[TEST]" once, never the real send."""
        if editor.user_id is None:
            raise ValidationError(
                "test sends go to a logged-in editor's test devices; log in", "Authorization"
            )
        if self.store.test_device_count(editor.user_id) == 0:
            raise ValidationError(NO_TEST_DEVICE, "test")
        now = self.clock()
        draft = rules.as_test_send(self.draft(editor, body), editor.user_id)
        alert, _ = alert_rules.publish(draft, self.alerts, self.subscriptions, self.queue, now)
        self.audit_log.audit(editor.name, "alert.test", str(alert.id), {"title": draft.title})
        return alert

    def mark_test_device(self, editor: Editor, endpoint: str, auth: str, on: bool) -> int:
        """Make (or stop making) a browser's subscription one of the editor's test devices.

        The browser proves the subscription is its own with the auth secret, by the same rule
        as every reader action. Returns how many test devices the editor now has.
        """
        if editor.user_id is None:
            raise ValidationError("log in to the newsroom in this browser first")
        found = subs.owned_subscription(self.subscriptions, endpoint, auth)
        self.store.set_test_device(found.id, editor.user_id if on else None)
        action = "test_device.set" if on else "test_device.unset"
        self.audit_log.audit(editor.name, action, str(found.id))
        return self.store.test_device_count(editor.user_id)


def _duplicate_ok(body: object) -> bool:
    """`"duplicate_ok": true` says the repeat is intended (the guard then only audits it)."""
    value = body.get("duplicate_ok", False) if isinstance(body, Mapping) else False
    if not isinstance(value, bool):
        raise ValidationError("duplicate_ok must be true or false", "duplicate_ok")
    return value
