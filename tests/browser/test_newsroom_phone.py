"""Every newsroom page with data in it, in a real Chromium at 390x844 (a phone) and at 1280:
no horizontal overflow, placeholders read whole, cards instead of tables (and at 1280 px table
rows whose cells all reach the row's border), a folded menu, Send/Undo/Stop/Correct under the
thumb, errors in editors' words under their field, and the newsroom's time zone on every page.
Screenshots of both sizes land in var/test-artifacts (phone-*.png); NEWSFLASH_DOCS_SCREENSHOTS=1
copies the documented ones to docs/img."""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import (
    DESK,
    DESK_CHECKS,
    DOCS_IMG,
    PHONE,
    PHONE_CHECKS,
    page_problems,
    screenshot_whole_page,
    sign_in,
)
from tests.support.newsroom import (
    ADMIN,
    EDITOR,
    PASSWORD,
    NewsroomStack,
    served_newsroom,
    topics_env,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

LONG_TITLE = (
    "Floods close Thika road and the Nairobi-Mombasa highway as the river reaches its highest "
    "level since 1961"
)
LONG_WORD = "Kenya" + "x" * 70 + " reports"  # one word wider than a phone: must still wrap
UPDATE_DOCS = os.environ.get("NEWSFLASH_DOCS_SCREENSHOTS") == "1"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NewsroomStack, str]]:
    tmp = tmp_path_factory.mktemp("newsroom-phone")
    yield from served_newsroom(
        tmp,
        topics_env("phone", "slowphone"),
        # Long enough that a newsroom send is still in its undo window when the test looks.
        UNDO_WINDOW_S="300",
        CONCURRENCY="2",
    )


def _publish(stack: NewsroomStack, base: str, topic: str, title: str, **extra: Any) -> int:
    answer = stack.api(
        "POST",
        "/api/v1/alerts",
        json={
            "title": title,
            "body": "Residents near the river are told to move to higher ground now; "
            "roads south of the bridge are closed until further notice.",
            "url": f"{base}/news/2026/11/30/{'very-long-article-slug-' * 4}{time.time_ns()}",
            "topics": [topic],
            **extra,
        },
    )
    assert answer.status_code == 202, answer.json
    return int(answer.json["id"])


@pytest.fixture(scope="module")
def seeded(site: tuple[NewsroomStack, str]) -> Iterator[dict[str, int]]:
    """Sent alerts (long headlines, a word wider than a phone), one sending, one scheduled.

    The sending one must still be sending when the test reaches its report, after a dozen
    pages: 120 readers whose push service answers in 3 s each."""
    stack, base = site
    for sub in stack.standin.create_subscriptions(4):
        stack.subscribe(sub, ["phone"])
    for sub in stack.standin.create_subscriptions(120, "slow", delay_s=3.0):
        stack.subscribe(sub, ["slowphone"])
    ids = {
        "sent": _publish(stack, base, "phone", LONG_TITLE),
        "word": _publish(stack, base, "phone", LONG_WORD),
        "short": _publish(stack, base, "phone", "Parliament passes the budget"),
        "scheduled": _publish(
            stack, base, "phone", "Polls open at six", send_at=time.time() + 3 * 3600
        ),
    }
    for name in ("sent", "word", "short"):
        stack.wait_status(ids[name], "sent")
    ids["sending"] = _publish(stack, base, "slowphone", "Evacuation ordered in Tana River")
    stack.wait_status(ids["sending"], "sending")
    yield ids
    # Stopped, so the worker's warm shutdown does not wait out its 10 s grace on the slow send.
    stack.api("POST", f"/api/v1/alerts/{ids['sending']}/cancel")


def _login(browser: Any, base: str, email: str, artifacts: Path | None = None) -> Any:
    context = browser.new_context(viewport=PHONE, device_scale_factor=1)
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto(base + "/editor/login")
    if artifacts is not None:
        _check_both(page, artifacts, "login")
    sign_in(page, email, PASSWORD)
    return page


def _check_both(
    page: Any,
    artifacts: Path,
    name: str,
    zone_label: bool = True,
    docs: str | None = None,
    docs_whole_page: bool = False,
) -> None:
    """No overflow and no placeholder cut at 390 and 1280 px, every table row's cells down to the
    row's bottom border at 1280 px, the zone named; screenshots at 390 and 1280 px. `docs` names
    the copy in docs/img (with NEWSFLASH_DOCS_SCREENSHOTS=1): the phone's first screen, or with
    `docs_whole_page` the whole page at 390 px."""
    page.set_viewport_size(PHONE)
    page.wait_for_load_state("load")
    problems = page_problems(page, PHONE_CHECKS)
    assert problems == {}, f"{name} at 390 px: {problems}"
    python_words = re.findall(r".{0,30}\b(?:None|True|False)\b.{0,20}", page.inner_text("body"))
    assert python_words == [], f"{name}: Python's words on the page: {python_words}"
    if zone_label:
        zone = page.locator("[data-newsroom-zone]")
        assert "Africa/Nairobi" in (zone.text_content() or ""), f"{name}: time zone not named"
    screenshot_whole_page(page, artifacts / f"phone-{name}-390.png")
    # What the phone's screen shows first, sticky action bar included.
    page.screenshot(path=str(artifacts / f"phone-{name}-390-screen.png"))
    if docs is not None and UPDATE_DOCS:
        shot = f"phone-{name}-390.png" if docs_whole_page else f"phone-{name}-390-screen.png"
        shutil.copy(artifacts / shot, DOCS_IMG / docs)
    page.set_viewport_size(DESK)
    problems = page_problems(page, DESK_CHECKS)
    assert problems == {}, f"{name} at 1280 px: {problems}"
    screenshot_whole_page(page, artifacts / f"phone-{name}-1280.png")
    page.set_viewport_size(PHONE)


def _under_thumb(page: Any, selector: str) -> None:
    """Visible without scrolling on a 390x844 phone, and at least 44 px tall."""
    box = page.locator(selector).bounding_box()
    assert box is not None, f"{selector} not shown"
    assert box["height"] >= 44, f"{selector} is {box['height']} px tall"
    assert box["y"] >= 0 and box["y"] + box["height"] <= PHONE["height"], f"{selector} at {box}"


def test_every_newsroom_page_fits_a_phone(
    chromium_browser: Any,
    site: tuple[NewsroomStack, str],
    seeded: dict[str, int],
    artifacts: Path,
) -> None:
    _stack, base = site
    page = _login(chromium_browser, base, ADMIN, artifacts)

    # History: one card per alert, the menu folded behind one button.
    _check_both(page, artifacts, "history", docs="phone-history.png", docs_whole_page=True)
    assert not page.locator("#history thead").is_visible()
    nav_link = page.locator(".nf-nav a", has_text="Scheduled")
    assert not nav_link.is_visible()
    page.click("[data-menu-toggle]")
    assert nav_link.is_visible()
    page.screenshot(path=str(artifacts / "phone-menu-390.png"))
    page.click("[data-menu-toggle]")
    states = {
        page.locator(f"tr[data-alert-id='{i}'] [data-status-badge]").text_content()
        for i in (seeded["sent"], seeded["scheduled"], seeded["sending"])
    }
    assert states == {"Sent", "Scheduled", "Sending"}

    # Compose, with its errors in editors' words under their field, once.
    page.goto(base + "/editor/new")
    _check_both(page, artifacts, "compose")
    page.fill("#url", f"{base}/news/phone")
    page.fill("#title", "")
    page.fill("#body", "Water is rising.")
    page.check("input[name=when][value=later]")
    page.fill("#send_at", "2020-01-01T10:00")
    page.evaluate("document.getElementById('compose').noValidate = true")
    page.click("#review")
    page.wait_for_selector("[data-field-error]")
    assert page.locator("[data-field-error=title]").text_content() == "Enter a headline."
    assert page.get_attribute("#title", "aria-describedby") == "title-error"
    assert page.locator(".nf-error").count() == 0  # said once, under the field
    page.fill("#title", "x" * 125)
    assert "5 too many" in (page.locator("[data-counter-for=title]").text_content() or "")
    page.evaluate("document.getElementById('compose').noValidate = true")
    page.click("#review")
    page.wait_for_selector("[data-field-error=title]")
    said = page.locator("[data-field-error=title]").text_content() or ""
    assert "125 characters; the limit is 120" in said and "nothing was cut" in said
    assert page.input_value("#title") == "x" * 125  # shown as typed, refused, never cut
    page.fill("#title", "Flood warning for the lower Tana")
    page.evaluate("document.getElementById('compose').noValidate = true")
    page.click("#review")
    page.wait_for_selector("[data-field-error=send_at]")
    said = page.locator("[data-field-error=send_at]").text_content() or ""
    assert said.startswith("Choose a time after now — it is ") and said.endswith(" in Nairobi.")
    _check_both(page, artifacts, "compose-errors")
    page.locator("[data-field-error=send_at]").scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "phone-compose-error-field-390-screen.png"))
    if UPDATE_DOCS:  # the error under its field, as the phone shows it once scrolled there
        shutil.copy(
            artifacts / "phone-compose-error-field-390-screen.png",
            DOCS_IMG / "phone-compose-errors.png",
        )

    # Review: the Send button under the thumb; then the undo window with its big Undo.
    page.check("input[name=when][value=now]")
    page.uncheck("input[name=topics][value=breaking]")
    page.check("input[name=topics][value=phone]")
    page.click("#review")
    page.wait_for_selector("#confirm-form")
    _check_both(page, artifacts, "review", docs="phone-review.png")
    _under_thumb(page, "#send")
    page.click("#send")
    page.wait_for_selector("#undo")
    assert page.locator("h1 [data-status-badge]").text_content() == "Sending soon"
    _check_both(page, artifacts, "undo-window", docs="phone-undo.png")
    _under_thumb(page, "#undo")
    page.click("#undo")
    page.wait_for_selector(".nf-calledoff")
    assert page.locator("h1 [data-status-badge]").text_content() == "Called off"
    _check_both(page, artifacts, "called-off")

    # Reports: sent (Correct under the thumb), a headline wider than the phone, and in flight.
    page.goto(f"{base}/editor/alerts/{seeded['sent']}")
    _check_both(page, artifacts, "report-sent")
    _under_thumb(page, "#correct")
    page.goto(f"{base}/editor/alerts/{seeded['word']}")
    _check_both(page, artifacts, "report-long-word")
    page.goto(f"{base}/editor/alerts/{seeded['sending']}")
    page.wait_for_selector("#stop")
    _under_thumb(page, "#stop")
    _check_both(page, artifacts, "report-sending", docs="phone-report-sending.png")

    # Scheduled list, editing one, the correction form, the audit log in sentences.
    page.goto(base + "/editor/scheduled")
    _check_both(page, artifacts, "scheduled")
    assert page.locator("#scheduled button", has_text="Call off").count() >= 1
    page.goto(f"{base}/editor/alerts/{seeded['scheduled']}/edit")
    _check_both(page, artifacts, "edit-scheduled")
    page.goto(f"{base}/editor/alerts/{seeded['sent']}/correct")
    _check_both(page, artifacts, "correct")
    # The whole long headline is in view on the phone: the field wraps and grows.
    title_box = page.locator("#title").bounding_box()
    assert title_box is not None and title_box["height"] > 60, title_box
    page.focus("#title")
    page.keyboard.press("End")
    page.keyboard.press("Enter")
    assert "\n" not in page.input_value("#title")
    _under_thumb(page, "#review-correction")  # the send itself is on the review page
    page.goto(base + "/editor/audit")
    # The filter's hints are placeholders: _check_both measures that each is readable whole.
    assert page.locator("form[role=search] input[placeholder]").count() == 2
    _check_both(page, artifacts, "audit", docs="phone-audit.png")
    sentences = page.locator("[data-audit-sentence]").all_text_contents()
    assert any(s.startswith(f"{ADMIN} called off 'Flood warning") for s in sentences), sentences
    assert any(f"sent '{LONG_TITLE}' to 4 readers." in s for s in sentences), sentences
    # Details in words: a yes/no is not Python's True/False.
    undone = page.locator("#audit tbody tr", has_text="called off 'Flood warning").first
    details = undone.locator("[data-label=Details]").inner_text()
    assert "undo yes" in details and "True" not in details, details

    # 404s: an unknown alert and an unknown address, styled, with the navigation.
    for name, path in (("404-alert", "/editor/alerts/999999"), ("404", "/editor/no-such-page")):
        answer = page.goto(base + path)
        assert answer is not None and answer.status == 404
        assert page.locator("[data-menu-toggle]").count() == 1
        _check_both(page, artifacts, name)
    page.context.close()

    # 403: an editor is not an admin; the page says so in words, with the navigation.
    page = _login(chromium_browser, base, EDITOR)
    answer = page.goto(base + "/editor/audit")
    assert answer is not None and answer.status == 403
    assert page.locator("[data-error-page='403'] h1").text_content() == "Not for your role"
    assert page.locator(".nf-nav a", has_text="History").count() == 1
    _check_both(page, artifacts, "403")
    page.context.close()


def test_the_ops_page_fits_a_phone(
    chromium_browser: Any,
    site: tuple[NewsroomStack, str],
    seeded: dict[str, int],
    artifacts: Path,
) -> None:
    _stack, base = site
    page = _login(chromium_browser, base, ADMIN)
    page.goto(base + "/ops")
    # Filled in by its own polling: wait for the first answer before measuring.
    page.wait_for_function("document.getElementById('updated').textContent !== '—'")
    _check_both(page, artifacts, "ops", zone_label=False)
    page.context.close()


def test_the_stories_page_fits_a_phone(
    chromium_browser: Any,
    site: tuple[NewsroomStack, str],
    seeded: dict[str, int],
    artifacts: Path,
) -> None:
    """An open story (its Close button, its update form) after the other pages were shot, so
    their screenshots do not change with it."""
    stack, base = site
    _publish(stack, base, "phone", "River Tana bursts its banks", followable=True)
    page = _login(chromium_browser, base, ADMIN)
    page.goto(base + "/editor/stories")
    assert page.locator("#stories button", has_text="Close story").count() == 1
    # The update's fields look and stretch like every other newsroom field.
    update = page.locator("#stories form.nf-form").first
    for size in (PHONE, DESK):
        page.set_viewport_size(size)
        form, field = update.bounding_box(), update.locator("input[name=body]").bounding_box()
        assert form is not None and field is not None
        assert field["width"] > 0.9 * form["width"], (size, field, form)
    _check_both(page, artifacts, "stories")
    page.context.close()
