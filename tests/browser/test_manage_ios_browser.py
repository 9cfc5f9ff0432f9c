"""The manage page on an iPhone too old for web push: no Add to Home Screen steps that cannot
work, the same rule the widget follows (iOS and iPadOS 16.4 and later push to Home Screen apps)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.browser import ReaderSite, widget_state

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]


def _iphone_tab(ios: str) -> str:
    major, minor = ios.split(".")
    agent = (
        f"Mozilla/5.0 (iPhone; CPU iPhone OS {major}_{minor} like Mac OS X) AppleWebKit/605.1.15 "
        f"(KHTML, like Gecko) Version/{ios} Mobile/15E148 Safari/604.1"
    )
    return f"""
    Object.defineProperty(navigator, 'userAgent', {{ get: () => {agent!r} }});
    Object.defineProperty(navigator, 'maxTouchPoints', {{ get: () => 5 }});
    delete window.PushManager; delete window.Notification;
    """


@pytest.mark.parametrize(("ios", "steps"), [("15.8", False), ("16.3", False), ("16.4", True)])
def test_manage_gives_home_screen_steps_only_where_they_lead_to_alerts(
    chromium: Any, reader_site: ReaderSite, ios: str, steps: bool
) -> None:
    page = chromium.pages[0]
    page.add_init_script(_iphone_tab(ios))
    page.goto(reader_site.base + "/")
    assert widget_state(page) == ("homescreen" if steps else "unsupported")

    page.goto(reader_site.base + "/manage")
    state = page.locator("#nf-state")
    if steps:
        state.get_by_text("added to your Home Screen").wait_for()
        assert page.locator("#nf-steps li").count() == 3
    else:
        state.get_by_text("This browser can't receive news alerts from us.").wait_for()
        assert page.locator("#nf-steps").count() == 0
