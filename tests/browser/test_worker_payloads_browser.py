"""Pushes the service worker cannot fully read, in a real Chromium: the reader still gets a
notification in plain words, never a JavaScript value's name ("[object Object]")."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.browser import ReaderSite, notifications, register_worker

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]


@pytest.mark.parametrize(
    "payload",
    [
        {"title": {"text": "Floods"}, "body": ["Thika road closed"], "url": 7},
        {"web_push": 8030, "notification": {"title": ["x"], "body": {"a": 1}, "navigate": 5}},
        {"title": 42, "body": None},
    ],
)
def test_fields_of_the_wrong_type_are_left_out_not_shown_as_code(
    chromium: Any, reader_site: ReaderSite, payload: dict[str, Any]
) -> None:
    live = register_worker(chromium, reader_site)
    live.push(payload)
    shown = notifications(live.page)
    assert [(n["title"], n["body"], n["data"]["url"]) for n in shown] == [("News alert", "", "")]
    live.cdp.detach()
