"""When an alert is finished is decided in core/ from counts; the store only writes it."""

from __future__ import annotations

import dataclasses

from core.completion import finish_if_done, finished_status
from core.model import AlertStatus
from core.ports import AlertProgress
from tests.support.fakes import FakeDeliveryStore

DONE = AlertProgress(
    status=AlertStatus.SENDING,
    planned=True,
    batches_total=3,
    batches_done=3,
    waiting=False,
    delivered=5,
    failed=1,
)


def test_an_alert_is_sent_once_planned_every_batch_done_and_nothing_waits() -> None:
    assert finished_status(DONE) is AlertStatus.SENT
    assert finished_status(dataclasses.replace(DONE, planned=False)) is None
    assert finished_status(dataclasses.replace(DONE, batches_done=2)) is None
    assert finished_status(dataclasses.replace(DONE, waiting=True)) is None
    assert finished_status(dataclasses.replace(DONE, status=AlertStatus.CANCELLED)) is None


def test_failed_only_when_nothing_was_delivered_and_something_failed() -> None:
    assert finished_status(dataclasses.replace(DONE, delivered=0)) is AlertStatus.FAILED
    nobody = dataclasses.replace(DONE, delivered=0, failed=0)
    assert finished_status(nobody) is AlertStatus.SENT  # no audience, or all gone: nobody owed


def test_the_decision_is_written_once_and_not_over_new_work() -> None:
    store = FakeDeliveryStore()
    alert_id = store.add_alert(status=AlertStatus.SENDING)
    row = store.alerts[alert_id]
    row.planned = True
    seen = store.alert_progress(alert_id)
    assert seen is not None
    row.batches_total += 1  # a retry batch arrived after the counts were read
    assert not store.finish_alert(alert_id, AlertStatus.SENT, seen, 1.0)
    row.batches_done = row.batches_total
    assert finish_if_done(store, alert_id, 2.0) is AlertStatus.SENT
    assert finish_if_done(store, alert_id, 3.0) is None  # already finished: nothing to do
