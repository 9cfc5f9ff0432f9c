"""An automated accessibility audit of every screen in a real Chromium: axe-core (the copy the
axe-playwright-python package ships, no browser download) checks the WCAG 2.0 and 2.1 A and AA
rules on the reader pages (the demo article with the opt-in prompt and its topic chooser, in
English and in Kiswahili; /manage subscribed and turned off), the newsroom (login, compose,
review, history, an alert's report) and /ops with its audience-health card, each at 1280 px and
at 390 px. Any violation fails the test, listed with the rule, the element and axe's summary."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from pprint import pformat
from typing import Any

import pytest
import redis as redis_lib
from sqlalchemy import select

from core.accounts import Role
from core.adapters import tables as t
from core.adapters.accounts_sql import SqlAccounts
from core.adapters.telemetry import CACHE_PREFIX
from tests.support.audience import seed_falling_engagement
from tests.support.browser import (
    DESK,
    PHONE,
    PUSH_STUB,
    ReaderSite,
    fake_browser_subscription,
    keep,
    new_endpoint,
    sign_in,
    widget_state,
)
from tests.support.newsroom import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

ADMIN = "a11y-admin@news.example"
WCAG_A_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
# Only the rules of those levels, and only what fails them (no passes or incomplete lists: they
# are large and slow to carry back).
AXE_OPTIONS = {
    "runOnly": {"type": "tag", "values": WCAG_A_AA},
    "resultTypes": ["violations"],
}


def _axe_source() -> str:
    from axe_playwright_python.sync_playwright import Axe

    return str(Axe().axe_script)


AXE_JS = _axe_source()


def violations(page: Any) -> list[str]:
    """axe's WCAG A/AA violations on the page as it is now: "rule: element: what is wrong".

    axe is evaluated over DevTools, which the pages' Content-Security-Policy does not govern
    (the newsroom's forbids inline and foreign scripts)."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(AXE_JS)
    found = page.evaluate("options => axe.run(document, options)", AXE_OPTIONS)
    said = []
    for rule in found["violations"]:
        for node in rule["nodes"]:
            summary = " ".join((node.get("failureSummary") or "").split())
            said.append(f"{rule['id']}: {' '.join(node['target'])}: {summary[:300]}")
    return said


# The focused element's ring, judged as WCAG 2.4.7 and 1.4.11 ask: an outline at least 2 px wide
# whose colour has 3:1 contrast with what is behind it (the nearest opaque background around the
# element, where an outline is drawn). Chromium's own ring (outline-style auto) is two-toned, dark
# and light, and shows on any background. Null when the ring is good; else what is wrong.
FOCUS_RING = """() => {
  const el = document.activeElement;
  const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
    .reduce((s, v, i) => s + v * [0.2126, 0.7152, 0.0722][i], 0);
  const behind = (node) => {
    for (let p = node; p; p = p.parentElement) {
      const c = rgb(getComputedStyle(p).backgroundColor);
      if (c.length === 3 || c[3] === 1) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const cs = getComputedStyle(el);
  const what = el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
    (el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\\s+/).join('.') : '') +
    ' "' + (el.getAttribute('aria-label') || el.textContent || el.value || '').trim().slice(0, 30) + '"';
  if (cs.outlineStyle === 'auto') return null;
  const width = parseFloat(cs.outlineWidth);
  if (cs.outlineStyle === 'none' || width < 2) return what + ': no focus ring';
  const ring = lum(rgb(cs.outlineColor).slice(0, 3));
  const back = lum(behind(cs.outlineOffset.startsWith('-') ? el : el.parentElement || el));
  const ratio = (Math.max(ring, back) + 0.05) / (Math.min(ring, back) + 0.05);
  return ratio >= 3 ? null : what + ': focus ring ' + cs.outlineColor + ' has contrast ' + ratio.toFixed(2) + ' with what is behind it';
}"""


def weak_focus_rings(page: Any, stops: int = 80) -> list[str]:
    """Tab through the page as a keyboard user does (at most `stops` times, or until the focus
    comes round again) and judge each focused element's ring."""
    page.evaluate("document.activeElement && document.activeElement.blur()")
    seen: list[str] = []
    weak: list[str] = []
    for _ in range(stops):
        page.keyboard.press("Tab")
        key = page.evaluate(
            "() => { const e = document.activeElement; return e === document.body ? '' :"
            " e.outerHTML.slice(0, 200); }"
        )
        if not key or key in seen:
            break
        seen.append(key)
        said = page.evaluate(FOCUS_RING)
        if said and said not in weak:
            weak.append(f"focus-ring: {said}")
    page.evaluate("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)")
    assert seen, "no element took the focus"
    return weak


def shots(page: Any, artifacts: Path, name: str) -> None:
    """Screenshots at 390 px and at 1280 px (var/test-artifacts/a11y-*.png), to look at what a fix
    changed."""
    page.set_viewport_size(PHONE)
    keep(page, artifacts, f"a11y-{name}-390.png")
    page.set_viewport_size(DESK)
    keep(page, artifacts, f"a11y-{name}-desktop.png")


def audit(page: Any, found: dict[str, list[str]], where: str) -> None:
    """The page audited with axe at 1280 px and at 390 px (layouts, type sizes and colours
    differ), and its focus rings at 1280 px (the newsroom folds its menu on a phone)."""
    for name, size in (("desktop", DESK), ("390", PHONE)):
        page.set_viewport_size(size)
        bad = violations(page) + (weak_focus_rings(page) if size == DESK else [])
        if bad:
            found[f"{where} @ {name}"] = bad


@pytest.fixture(scope="module")
def audited_site(reader_site: ReaderSite) -> Iterator[dict[str, int]]:
    """The reader site with an admin (newsroom and /ops), weeks of sent alerts behind the
    audience-health card, and one story readers can follow; ids of what the pages show."""
    SqlAccounts(reader_site.engine).create_user(ADMIN, PASSWORD, Role.ADMIN)
    container = reader_site.app.extensions["newsflash"].container
    seed_falling_engagement(container.sql, time.time(), container.settings.timezone)
    client = redis_lib.Redis.from_url(str(container.settings.redis_url))
    for key in client.scan_iter(CACHE_PREFIX + "audience_health*"):
        client.delete(key)  # another test's answer, cached for a minute
    with reader_site.engine.connect() as conn:
        sent = conn.execute(select(t.alerts.c.id).order_by(t.alerts.c.id.desc())).scalar()
    assert sent is not None
    reader_site.open_story("Live: floods on the lower Tana")  # on /manage, and in flight on /ops
    yield {"sent": int(sent)}


def widget_in(page: Any, lang: str) -> None:
    """The English demo article embedding the widget with data-lang: the prompt speaks `lang`
    inside an English page, so it must say so itself (lang= on what it shows)."""

    def serve(route: Any) -> None:
        answer = route.fetch()
        body = answer.text().replace("<script src=", f'<script data-lang="{lang}" src=', 1)
        route.fulfill(response=answer, body=body)

    page.route("**/", serve)


@pytest.mark.parametrize("lang", ["en", "sw"])
def test_the_reader_pages_pass_axe(
    chromium: Any, reader_site: ReaderSite, audited_site: dict[str, int], artifacts: Path, lang: str
) -> None:
    page = chromium.pages[0]
    page.add_init_script(PUSH_STUB)
    widget_in(page, lang)
    found: dict[str, list[str]] = {}

    page.goto(reader_site.base + "/")
    assert widget_state(page) == "prompt"
    page.locator(".nf-yes").wait_for()
    # A screen reader speaks the prompt in its own language, the article around it in English.
    assert page.get_attribute("html", "lang") == "en"
    assert page.get_attribute("section.nf", "lang") == lang
    audit(page, found, "article with the prompt")
    page.locator(".nf-more").click()
    page.locator(".nf input[type=checkbox]").first.wait_for()
    audit(page, found, "article with the topic chooser")
    shots(page, artifacts, f"prompt-topics-{lang}")

    page.evaluate(
        "s => { window.__nextSubscription = s; }", fake_browser_subscription(new_endpoint())
    )
    page.locator(".nf-yes").click()
    page.locator(".nf-status a").wait_for()
    audit(page, found, "article, signed up")

    page.goto(f"{reader_site.base}/manage?lang={lang}")
    page.locator("#nf-story-list button").first.wait_for()
    assert page.get_attribute("html", "lang") == lang
    audit(page, found, "/manage, subscribed")
    shots(page, artifacts, f"manage-{lang}")

    page.locator("#nf-off-button").click()
    page.locator("#nf-on").wait_for()
    audit(page, found, "/manage, turned off")
    shots(page, artifacts, f"manage-off-{lang}")

    assert found == {}, pformat(found, width=120)


def test_the_newsroom_and_ops_pages_pass_axe(
    chromium: Any, reader_site: ReaderSite, audited_site: dict[str, int], artifacts: Path
) -> None:
    base = reader_site.base
    page = chromium.pages[0]
    found: dict[str, list[str]] = {}

    page.goto(base + "/editor/login")
    audit(page, found, "login")
    sign_in(page, ADMIN, PASSWORD)

    page.goto(base + "/editor/")
    page.locator("#history").wait_for()
    audit(page, found, "history")

    page.goto(base + "/editor/new")
    audit(page, found, "compose")
    shots(page, artifacts, "compose")
    page.fill("#url", f"{base}/news/2026/floods")
    page.fill("#title", "Floods close Thika road")
    page.fill("#body", "Residents near the river are told to move to higher ground now.")
    page.check("input[name=topics][value=politics]")
    page.click("#review")
    page.locator("#confirm-form").wait_for()
    audit(page, found, "review")
    shots(page, artifacts, "review")

    page.goto(f"{base}/editor/alerts/{audited_site['sent']}")
    page.locator("h1 [data-status-badge]").wait_for()
    audit(page, found, "alert report (sent)")
    shots(page, artifacts, "report")

    page.goto(base + "/ops")
    page.wait_for_function("document.getElementById('updated').textContent !== '—'")
    page.locator("#audience .audience-warnings").wait_for()
    audit(page, found, "/ops with audience health")
    shots(page, artifacts, "ops")

    assert found == {}, pformat(found, width=120)


def test_the_audit_sees_what_it_is_for(chromium: Any, reader_site: ReaderSite) -> None:
    """The checks themselves: a page with a nameless field, an image without words, grey on
    grey and a focus ring taken away is not passed."""
    page = chromium.pages[0]
    page.goto(reader_site.base + "/editor/login")
    page.evaluate(
        """() => document.querySelector('main').insertAdjacentHTML('beforeend',
          '<input id="nameless"><img src="data:," width="9" height="9">' +
          '<p style="color:#aaa;background:#bbb">faint</p>' +
          '<a href="#x" style="outline:none">no ring</a>')"""
    )
    rules = {line.split(":")[0] for line in violations(page)}
    assert {"label", "image-alt", "color-contrast"} <= rules, rules
    page.focus("#nameless")
    assert any('"no ring": no focus ring' in said for said in weak_focus_rings(page))
