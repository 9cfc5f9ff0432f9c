"""The newsroom in a real Chromium: compose → preview → send → undo, and compose → send → stop,
against the app on a real HTTP server, a live worker and beat, and the push stand-in."""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import screenshot_whole_page
from tests.support.newsroom import (
    EDITOR,
    PASSWORD,
    NewsroomStack,
    served_newsroom,
    topics_env,
)
from tests.support.services import ROOT
from tests.support.stack import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NewsroomStack, str]]:
    tmp = tmp_path_factory.mktemp("newsroom-browser")
    yield from served_newsroom(
        tmp,
        topics_env("undo:Weather", "stop:Traffic", "device:Health", "lang:Nairobi"),
        # Long enough for a loaded machine to click Undo in time, short enough for a test.
        UNDO_WINDOW_S="6",
    )


@pytest.fixture
def page(chromium_browser: Any, site: tuple[NewsroomStack, str]) -> Iterator[Any]:
    _stack, base = site
    context = chromium_browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.goto(base + "/editor/new")
    # Not logged in: the newsroom sends us to the login page first, then back.
    assert "/editor/login" in tab.url
    tab.fill("#email", EDITOR)
    tab.fill("#password", PASSWORD)
    tab.click("button[type=submit]")
    tab.wait_for_url(base + "/editor/new")
    try:
        yield tab
        assert errors == [], f"JavaScript errors: {errors}"
    finally:
        context.close()


def _compose(page: Any, base: str, topic: str, title: str) -> None:
    page.fill("#url", f"{base}/news/{uuid.uuid4().hex[:8]}")
    page.fill("#title", title)
    page.fill("#body", "Residents near the river are told to move to higher ground.")
    page.uncheck("input[name=topics][value=breaking]")
    page.check(f"input[name=topics][value={topic}]")


def test_compose_preview_send_then_undo_delivers_nothing(
    page: Any, site: tuple[NewsroomStack, str], artifacts: Path
) -> None:
    stack, base = site
    for sub in stack.standin.create_subscriptions(3):
        stack.subscribe(sub, ["undo"])
    title = "River bursts its banks <b>tonight</b>"
    _compose(page, base, "undo", title)

    # The previews show the words as typed (as text, never as markup), live, each cut where
    # its platform cuts: Windows shows this headline whole, an iPhone 29 characters and "…".
    preview = page.locator("[data-platform=windows] [data-preview=title]")
    assert preview.text_content() == title
    assert page.locator("[data-preview=title] b").count() == 0
    ios = page.locator("[data-platform=ios] [data-preview=title]").text_content() or ""
    assert ios == title[:29] + "…"
    body = page.locator("[data-platform=android] [data-preview=body]").text_content() or ""
    assert body.startswith("Residents near") and body.endswith("…") and len(body) == 45
    expanded = "[data-platform=android-expanded] [data-preview=body]"
    assert page.locator(expanded).text_content() == (
        "Residents near the river are told to move to higher ground."
    )
    # The site's own name and icon, never its host name or a letter placeholder.
    heads = page.locator(".nf-notif-site").all_text_contents()
    assert set(heads) == {stack.settings.site_name} and len(heads) == 5
    icon = page.locator("[data-platform=macos] img.nf-notif-icon")
    assert icon.get_attribute("src") == "/static/icons/icon-192.png"
    assert page.evaluate("document.querySelector('.nf-notif-icon').naturalWidth") > 0
    assert page.locator("[data-counter-for=title]").text_content() == f"{len(title)} / 120"
    page.fill("#title", "x" * 110)
    counter = page.locator("[data-counter-for=title]")
    assert counter.text_content() == "110 / 120"
    assert "is-near" in (counter.get_attribute("class") or "")
    page.fill("#title", title)
    assert "is-near" not in (counter.get_attribute("class") or "")
    # The audience for the ticked topic, asked of the server as the boxes change.
    wait_until(
        lambda: page.locator("[data-audience]").text_content() == "3", 10, "the audience size"
    )
    page.screenshot(path=str(artifacts / "newsroom-compose.png"), full_page=True)
    page.locator(".nf-preview").screenshot(path=str(artifacts / "newsroom-previews.png"))
    if os.environ.get("NEWSFLASH_DOCS_SCREENSHOTS") == "1":
        shutil.copy(artifacts / "newsroom-previews.png", ROOT / "docs" / "img")

    page.click("#review")
    page.wait_for_selector("#confirm-form")
    assert page.locator("#confirm-audience").text_content() == "3"
    assert page.locator("#confirm-all").count() == 0  # one topic: no extra confirmation
    sent_at = time.time()
    page.click("#send")
    page.wait_for_url(f"{base}/editor/alerts/*")
    alert_id = page.url.rsplit("/", 1)[-1]
    countdown = page.locator("[data-countdown-to]")
    assert int(countdown.text_content() or "0") <= stack.settings.undo_window_s
    page.click("#undo")
    page.wait_for_selector("text=Called off")
    assert time.time() - sent_at < stack.settings.undo_window_s, "undo came too late to count"

    # Past the moment it would have gone, plus a beat tick: still nothing pushed.
    wait_until(lambda: time.time() > sent_at + stack.settings.undo_window_s + 2.0, 30, "the window")
    assert stack.alert(alert_id)["status"] == "cancelled"
    assert stack.payloads(alert_id) == []
    page.reload()
    assert "Called off — nobody received it." in page.locator(".nf-calledoff").text_content()
    assert page.locator("[data-count=pending]").count() == 0
    assert page.locator("[data-count=not_sent]").text_content() == "3"
    assert page.locator("h1 [data-title]").text_content() == title


def test_compose_send_then_stop_mid_fanout_with_a_live_report(
    page: Any, site: tuple[NewsroomStack, str], artifacts: Path
) -> None:
    stack, base = site
    audience = 80
    for sub in stack.standin.create_subscriptions(audience, "slow", delay_s=0.5):
        stack.subscribe(sub, ["stop"])
    _compose(page, base, "stop", "Evacuation ordered in Tana River")
    page.click("#review")
    page.wait_for_selector("#confirm-form")
    page.click("#send")
    page.wait_for_url(f"{base}/editor/alerts/*")
    alert_id = page.url.rsplit("/", 1)[-1]

    # The page follows the alert by itself: undo window → sending, counts rising live.
    stop = page.locator("#stop")
    stop.wait_for(state="visible", timeout=20_000)
    delivered = page.locator(".nf-count [data-count=delivered]")
    wait_until(
        lambda: int(delivered.text_content() or "0") >= 6, 30, "live delivered count to rise"
    )
    page.screenshot(path=str(artifacts / "newsroom-live-report.png"), full_page=True)
    stopped_at = time.time()
    stop.click()
    page.wait_for_selector("#stopped", timeout=15_000)

    def settled() -> int | None:
        reached = len(stack.received(alert_id))
        time.sleep(0.6)
        same = (
            reached == len(stack.received(alert_id)) == stack.alert(alert_id)["counts"]["delivered"]
        )
        return reached if same else None

    reached = wait_until(settled, 20, "the stopped send to settle")
    last = max(r.at for r in stack.received(alert_id))
    assert last <= stopped_at + 2.0, f"pushes kept starting {last - stopped_at:.2f} s after Stop"
    assert 6 <= reached < audience
    page.reload()
    assert f"{reached} of {audience} subscribers were reached before the stop" in " ".join(
        page.locator("#stopped").text_content().split()
    )
    assert stack.alert(alert_id)["status"] == "cancelled"


# Chromium here has no push service to subscribe with: the browser's PushManager is replaced at
# the boundary by one that holds a subscription minted by the push stand-in.
_PUSH_STUB = """
(() => {
  const json = %s;
  const sub = { endpoint: json.endpoint, toJSON: () => JSON.parse(JSON.stringify(json)) };
  const reg = { scope: location.origin + '/', pushManager: { getSubscription: async () => sub } };
  ServiceWorkerContainer.prototype.getRegistration = async function () { return reg; };
})();
"""


def test_mark_this_browser_as_a_test_device_then_send_test(
    page: Any, site: tuple[NewsroomStack, str]
) -> None:
    stack, base = site
    mine = stack.standin.create_subscription()
    reader = stack.standin.create_subscription()
    sub_id = stack.subscribe(mine, ["device"])
    stack.subscribe(reader, ["device"])
    page.add_init_script(_PUSH_STUB % json.dumps(mine))
    page.goto(base + "/manage")
    box = page.locator("#nf-test-device")
    box.get_by_role("button", name="Use this browser as my test device").click()
    wait_until(
        lambda: (
            "now one of your test devices"
            in (box.locator("[data-test-device-status]").text_content() or "")
        ),
        10,
        "the test-device confirmation",
    )
    store = stack.app.extensions["newsflash"].container.sql
    assert store.subscriptions.get_subscription(sub_id).test_device_user_id == stack.users[EDITOR]

    page.goto(base + "/editor/new")
    _compose(page, base, "device", "Dam alert drill")
    page.click("#send-test")
    page.wait_for_selector("text=Test sent to your test devices only")
    got = wait_until(lambda: stack.standin.deliveries_for(mine["endpoint"]), 30, "the test push")
    assert [r.payload["title"] for r in got] == ["[TEST] Dam alert drill"]
    time.sleep(1.0)
    assert stack.standin.deliveries_for(reader["endpoint"]) == []


def test_compose_in_two_languages_and_review_the_split(
    page: Any, site: tuple[NewsroomStack, str], artifacts: Path
) -> None:
    stack, base = site
    for sub, lang in zip(stack.standin.create_subscriptions(3), ["sw", "sw", "en"], strict=True):
        answer = stack.client().post(
            "/api/v1/subscriptions", json={**sub, "topics": ["lang"], "lang": lang}
        )
        assert answer.status_code == 201, answer.json
    _compose(page, base, "lang", "Floods close the Thika road")
    page.click("#translation summary")
    page.fill("#title_tr", "Mafuriko yafunga barabara ya Thika")
    page.fill("#body_tr", "Wakazi karibu na mto waende sehemu za juu.")
    assert page.locator("#title_tr").get_attribute("lang") == "sw"
    shots = [("newsroom-compose-kiswahili-desktop.png", 1280)]
    shots.append(("newsroom-compose-kiswahili-390.png", 390))
    for name, width in shots:
        page.set_viewport_size({"width": width, "height": 900})
        screenshot_whole_page(page, artifacts / name)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.click("#review")
    page.wait_for_selector("#confirm-form")
    split = page.locator("#audience-by-language li").all_inner_texts()
    assert split == ["1 read English", "2 read Kiswahili"]
    facts = page.locator(".nf-facts").inner_text()
    assert "Mafuriko yafunga barabara ya Thika" in facts
    # Two readers in three get the Kiswahili words: the review previews them too, cut per
    # platform where those words are cut, and marked as Kiswahili for a screen reader.
    sw = page.locator("figure[data-preview-lang=sw]")
    assert sw.get_attribute("aria-label") == "Notification previews in Kiswahili"
    assert "Preview in Kiswahili" in (sw.locator("figcaption").text_content() or "")
    for platform in ("android", "ios", "windows"):
        card = sw.locator(f"[data-platform={platform}] .nf-notif-text")
        assert card.get_attribute("lang") == "sw"
        title = card.locator("[data-preview=title]").text_content() or ""
        assert title.rstrip("…") and "Mafuriko yafunga barabara ya Thika".startswith(
            title.rstrip("…")
        ), title
    english = page.locator("figure.nf-preview:not([data-preview-lang])")
    assert "Floods close the Thika road" in english.inner_text()
    page.screenshot(path=str(artifacts / "newsroom-review-languages.png"), full_page=True)
    if os.environ.get("NEWSFLASH_DOCS_SCREENSHOTS") == "1":
        docs = Path(__file__).resolve().parents[2] / "docs" / "img"
        for name in ("newsroom-compose-kiswahili-390.png", "newsroom-review-languages.png"):
            shutil.copy(artifacts / name, docs / name)


def test_the_counters_count_characters_as_the_server_does_emoji_too(
    page: Any, site: tuple[NewsroomStack, str]
) -> None:
    """An emoji is one character to the server's limit (and two UTF-16 units to JavaScript)."""
    _stack, base = site
    # 120 characters exactly: the server takes it, so the counter must not say "too many".
    title = ("🚨 Mafuriko: barabara ya Thika imefungwa " * 3)[:119] + "🌊"
    assert len(title) == 120
    _compose(page, base, "undo", title)
    counter = page.locator("[data-counter-for=title]")
    assert counter.text_content() == "120 / 120"
    assert "is-over" not in (counter.get_attribute("class") or "")
    assert page.get_attribute("#title", "aria-invalid") is None
    body = "Wakazi waondoke sasa 🙏"
    page.fill("#body", body)
    assert page.locator("[data-counter-for=body]").text_content() == f"{len(body)} / 300"
    page.click("#review")
    page.wait_for_selector("#confirm-form")
