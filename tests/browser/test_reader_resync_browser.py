"""A subscribed reader's later visits in a real Chromium: the widget tells the server this
browser is still here (so the purge of stale subscriptions spares it), once a day, topics kept."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import update

from core.adapters import tables as t
from tests.support.browser import (
    PUSH_STUB,
    ReaderSite,
    fake_browser_subscription,
    new_endpoint,
    widget_state,
)
from tests.support.stack import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]
DAY_S = 86_400


def _opt_in(page: Any, reader_site: ReaderSite, topics: list[str]) -> str:
    page.add_init_script(PUSH_STUB)
    page.goto(reader_site.base + "/")
    assert widget_state(page) == "prompt"
    sub = fake_browser_subscription(new_endpoint())
    page.evaluate("s => { window.__nextSubscription = s; }", sub)
    page.get_by_role("button", name="Choose topics").click()
    for name in topics:
        page.get_by_label(name).check()
    page.get_by_role("button", name="Yes, Thanks").click()
    page.get_by_role("status").get_by_text("You're signed up").wait_for()
    return str(sub["endpoint"])


def _age(reader_site: ReaderSite, endpoint: str, days: int) -> float:
    with reader_site.engine.begin() as conn:
        conn.execute(
            update(t.subscriptions)
            .where(t.subscriptions.c.endpoint == endpoint)
            .values(last_seen_at=t.subscriptions.c.last_seen_at - days * DAY_S)
        )
    row = reader_site.subscription(endpoint)
    assert row is not None
    return float(row["last_seen_at"])


def test_a_subscribed_reader_who_comes_back_is_not_purged_and_keeps_their_topics(
    chromium: Any, reader_site: ReaderSite
) -> None:
    page = chromium.pages[0]
    endpoint = _opt_in(page, reader_site, ["Sport"])
    assert reader_site.subscription(endpoint)["topics"] == ["breaking", "sport"]  # type: ignore[index]
    posts: list[str] = []
    page.on(
        "request",
        lambda r: posts.append(r.url) if r.method == "POST" and "/subscriptions" in r.url else None,
    )

    # Later the same day: nothing to tell the server.
    page.reload()
    assert widget_state(page) == "subscribed"
    page.wait_for_timeout(500)
    assert posts == []

    # Months later (the last visit two days ago): the visit refreshes the subscription.
    page.evaluate("localStorage.setItem('newsflash:syncedAt', String(Date.now() - 2 * 864e5))")
    aged = _age(reader_site, endpoint, 170)
    page.reload()
    assert widget_state(page) == "subscribed"
    wait_until(
        lambda: reader_site.subscription(endpoint)["last_seen_at"] > aged + 169 * DAY_S,  # type: ignore[index]
        10,
        "the visit to refresh the subscription",
    )
    assert reader_site.subscription(endpoint)["topics"] == ["breaking", "sport"]  # type: ignore[index]
    reader_site.app.extensions["newsflash"].container.delivery.purge()
    assert reader_site.subscription(endpoint) is not None

    # Once a day is enough.
    sent = len(posts)
    page.reload()
    assert widget_state(page) == "subscribed"
    page.wait_for_timeout(500)
    assert len(posts) == sent == 1
