"""Browser test helpers: the Chromium path and flags, a skip when a browser is missing, a fake
subscription a browser would post, the reader site a browser test drives (its fixtures are in
tests/browser/conftest.py), phone and desk viewports with checks of what a reader sees (overflow,
cut placeholders, table cells short of their row, text as broken into lines), and Chromium's
stubbed PushManager and our service worker driven over DevTools."""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask
from sqlalchemy import select

from core.adapters import tables as t
from core.base64url import b64url_encode
from tests.support.services import (
    require_service,
)
from tests.support.stack import wait_until

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
# The service worker as the widget registers it: sw.js's VERSION in ?v= (a registration with
# another one is a worker from before a deploy, which the widget replaces).
SW_SCRIPT = "/sw.js?v=2"


def require_browser(name: str, path: str) -> None:
    """Skip locally when the browser is missing; under CI=true that is a failure."""
    found = os.path.exists(path) or shutil.which(path) is not None
    require_service(name, found, f"{path} not installed; apt-get install it")


def fake_browser_subscription(endpoint: str) -> dict[str, Any]:
    """What PushSubscription.toJSON() gives, with real P-256 and auth keys."""
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    raw = key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return {
        "endpoint": endpoint,
        "expirationTime": None,
        "keys": {"p256dh": b64url_encode(raw), "auth": b64url_encode(os.urandom(16))},
    }


@dataclass
class ReaderSite:
    """The Newsflash web app answering real HTTP on 127.0.0.1, with helpers to look inside."""

    base: str
    app: Flask
    engine: Any
    token: str

    def subscription(self, endpoint: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(select(t.subscriptions).where(t.subscriptions.c.endpoint == endpoint))
                .mappings()
                .first()
            )
        if row is None:
            return None
        store = self.app.extensions["newsflash"].container.sql
        return {**row, "topics": list(store.topics.topics_of(row["topic_mask"]))}

    def api(self) -> Any:
        return self.app.test_client()

    def publish(self, **fields: Any) -> str:
        answer = self.api().post(
            "/api/v1/alerts",
            json={"topics": ["breaking"], **fields},
            headers={"Authorization": f"Bearer {self.token}"},
        )
        assert answer.status_code == 202, answer.json
        return str(answer.json["id"])

    def receipt(self, alert_id: str) -> tuple[int, str]:
        """A new subscription and the receipt a push of this alert carries to it."""
        sub = fake_browser_subscription(f"http://127.0.0.1:9/push/{uuid.uuid4().hex}")
        answer = self.api().post("/api/v1/subscriptions", json=sub)
        assert answer.status_code == 201, answer.json
        sub_id = int(answer.json["id"])
        receipts = self.app.extensions["newsflash"].container.receipts
        return sub_id, str(receipts.sign(int(alert_id), sub_id))

    def record_delivered(self, alert_id: str, sub_id: int) -> None:
        """The ledger row the worker writes once the push service accepted the push."""
        from core.model import LedgerStatus
        from core.ports import LedgerEntry

        entry = LedgerEntry(sub_id, LedgerStatus.DELIVERED, 201, 1)
        store = self.app.extensions["newsflash"].container.sql
        store.ledger.record(int(alert_id), [entry], [], time.time())

    def delivered_receipt(self, alert_id: str) -> str:
        """The receipt of a push of this alert to a browser it was recorded delivered to."""
        sub_id, receipt = self.receipt(alert_id)
        self.record_delivered(alert_id, sub_id)
        return receipt

    def alert(self, alert_id: str) -> dict[str, Any]:
        answer = self.api().get(
            f"/api/v1/alerts/{alert_id}", headers={"Authorization": f"Bearer {self.token}"}
        )
        assert answer.status_code == 200
        return dict(answer.json)

    def open_story(self, title: str, **fields: Any) -> str:
        """A followable alert about a developing story, published; the story's key (its tag).
        `fields` adds to the alert (its `translations`, say)."""
        alert_id = self.publish(
            title=title,
            body="Updates as they happen.",
            url=f"{self.base}/live/{uuid.uuid4().hex[:8]}",
            followable=True,
            **fields,
        )
        return str(self.alert(alert_id)["tag"])


# -- layout: a phone and a desk, and what sticks out past the viewport ----------------------
PHONE = {"width": 390, "height": 844}
DESK = {"width": 1280, "height": 900}

# Any element whose right edge is past the viewport, and the document's own scroll width.
OVERFLOW_JS = """() => {
  const w = window.innerWidth, bad = [];
  if (document.documentElement.scrollWidth > w) bad.push("document " + document.documentElement.scrollWidth);
  // A wide table may scroll inside its own box (the /ops cards); the page never does.
  const scrolls = (el) => { for (let p = el.parentElement; p; p = p.parentElement) {
    const o = getComputedStyle(p).overflowX;
    if ((o === "auto" || o === "scroll") && p.getBoundingClientRect().right <= w + 1) return true;
  } return false; };
  for (const el of document.querySelectorAll("body *")) {
    if (scrolls(el)) continue;
    const r = el.getBoundingClientRect();
    if (r.width > 0 && r.height > 0 && r.right > w + 1) {
      bad.push(el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + "." + el.className + " right=" + Math.round(r.right));
    }
  }
  return bad.slice(0, 8);
}"""

# Every shown placeholder whose text is wider than its field's content box: the hint an editor
# cannot read. Measured with the field's own font (Newsflash never styles ::placeholder apart).
CUT_PLACEHOLDERS_JS = """() => {
  const ctx = document.createElement("canvas").getContext("2d"), cut = [];
  for (const el of document.querySelectorAll("input[placeholder], textarea[placeholder]")) {
    if (!el.getClientRects().length || el.value || !el.placeholder) continue;
    const s = getComputedStyle(el);
    ctx.font = s.font;
    const room = el.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight);
    const need = ctx.measureText(el.placeholder).width;
    if (need > room + 0.5) {
      cut.push((el.name || el.id) + ": '" + el.placeholder + "' needs " + Math.ceil(need) + " px, has " + Math.floor(room));
    }
  }
  return cut;
}"""

# Every table row laid out as a row whose cells do not all reach its bottom edge, where the row's
# separator is drawn (a cell made display:flex leaves table-cell layout and stops short).
SHORT_CELLS_JS = """() => {
  const bad = [];
  for (const row of document.querySelectorAll("table tr")) {
    if (getComputedStyle(row).display !== "table-row" || !row.getClientRects().length) continue;
    const bottom = row.getBoundingClientRect().bottom;
    const table = row.closest("table");
    for (const cell of row.cells) {
      const b = cell.getBoundingClientRect().bottom;
      if (Math.abs(b - bottom) > 1) {
        bad.push((table.id || table.className) + " row " + row.rowIndex + " cell " + cell.cellIndex
          + (cell.className ? "." + cell.className : "") + " ends at " + Math.round(b) + ", the row at " + Math.round(bottom));
      }
    }
  }
  return bad.slice(0, 8);
}"""


# Buttons and links drawn as buttons whose label is not in the middle of the button: a link
# with a minimum height keeps its text at the top unless it is laid out as a flex box.
OFF_CENTRE_LABELS_JS = """() => {
  const bad = [];
  for (const el of document.querySelectorAll(".nf-primary, .nf-secondary, .nf-danger")) {
    if (!el.getClientRects().length || !el.textContent.trim()) continue;
    const box = el.getBoundingClientRect(), range = document.createRange();
    range.selectNodeContents(el);
    const text = range.getBoundingClientRect();
    const above = text.top - box.top, below = box.bottom - text.bottom;
    if (Math.abs(above - below) > 3) {
      bad.push(el.tagName.toLowerCase() + " '" + el.textContent.trim() + "' " + Math.round(above)
        + " px above its label, " + Math.round(below) + " below");
    }
  }
  return bad.slice(0, 8);
}"""


# Every box that scrolls sideways because its content is wider: on a phone the way /ops shows a
# wide table, on a desk a card cut short (its last column reachable only by scrolling).
SIDEWAYS_SCROLL_JS = """() => {
  const bad = [];
  for (const el of document.querySelectorAll("body *")) {
    const o = getComputedStyle(el).overflowX;
    if ((o === "auto" || o === "scroll") && el.scrollWidth > el.clientWidth + 1) {
      bad.push(el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + "." + el.className + " ("
        + (el.getAttribute("aria-labelledby") || "") + ") " + el.scrollWidth + " px wide in " + el.clientWidth);
    }
  }
  return bad.slice(0, 8);
}"""


# Every newsroom time ("Thu 03 Dec 13:45:55 EAT") the browser broke anywhere but between its
# date and its clock: "EAT" alone under the clock, or "Dec" under "Thu 03". Its spaces may be
# no-break ones (\s matches both), and it may span several text nodes of one element.
BROKEN_TIMES_JS = """() => {
  const bad = [], time = /(?:[A-Z][a-z]{2}\\s\\d{2}\\s[A-Z][a-z]{2}\\s)?\\d{2}:\\d{2}:\\d{2}\\s[A-Z+\\-0-9]{2,6}/g;
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const texts = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) texts.push(node);
  // A time may span text nodes (a span per part): read each element's text as one string.
  const seen = new Set();
  for (const node of texts) {
    const el = node.parentElement.closest("td, dd, p, li, div, span, strong, small, time");
    if (!el || seen.has(el) || !el.getClientRects().length) continue;
    seen.add(el);
    const chars = [], w = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    for (let n = w.nextNode(); n; n = w.nextNode()) for (let i = 0; i < n.length; i++) chars.push([n, i]);
    const text = chars.map(([n, i]) => n.data[i]).join("");
    for (const m of text.matchAll(time)) {
      const tops = [];
      for (let k = m.index; k < m.index + m[0].length; k++) {
        const [n, i] = chars[k];
        if (!n.data[i].trim()) { tops.push(null); continue; }
        const range = document.createRange();
        range.setStart(n, i);
        range.setEnd(n, i + 1);
        const rect = range.getClientRects()[0];
        tops.push(rect ? rect.top : null);
      }
      const clock = m[0].search(/\\d{2}:/);
      const shown = tops.filter(t => t !== null);
      const lines = shown.filter((t, i) => i === 0 || t > shown[i - 1] + 2).length;
      const before = tops.slice(0, clock).filter(t => t !== null);
      const after = tops.slice(clock).filter(t => t !== null);
      const whole = (ts) => ts.every(t => Math.abs(t - ts[0]) <= 2);
      if (lines > 2 || !whole(before) || !whole(after)) bad.push("'" + m[0] + "' broken in " + el.tagName.toLowerCase() + "." + el.className);
    }
  }
  return bad.slice(0, 8);
}"""


# Every card or warning box whose first shown child starts below its padding: a paragraph's own
# margin added to the box's ("Replaces #3 …" 16 px lower than the card's sides).
LOOSE_BOX_TOPS_JS = """() => {
  const bad = [];
  for (const box of document.querySelectorAll(".nf-card, .nf-warn-box")) {
    if (!box.getClientRects().length) continue;
    const first = [...box.children].find(c => c.getClientRects().length
      && !["absolute", "fixed"].includes(getComputedStyle(c).position));
    if (!first) continue;
    const s = getComputedStyle(box), inner = box.getBoundingClientRect().top
      + parseFloat(s.borderTopWidth) + parseFloat(s.paddingTop);
    const gap = first.getBoundingClientRect().top - inner;
    if (gap > 1) bad.push((box.id || box.className) + ": " + first.tagName.toLowerCase() + " "
      + Math.round(gap) + " px below its padding");
  }
  return bad.slice(0, 8);
}"""


# Every table cell (laid out as one) holding a short value of two or three words, such as
# "Review first", that the browser broke over lines: on a desk a short value keeps its line and
# a longer prose column beside it wraps instead.
WRAPPED_SHORT_VALUES_JS = """() => {
  const bad = [];
  for (const td of document.querySelectorAll("td")) {
    if (getComputedStyle(td).display !== "table-cell" || !td.getClientRects().length) continue;
    const text = td.textContent.trim().replace(/\\s+/g, " "), words = text.split(" ").length;
    if (words < 2 || words > 3 || text.length > 20) continue;
    const tops = [], walker = document.createTreeWalker(td, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (let i = 0; i < node.length; i++) {
        if (!node.data[i].trim()) continue;
        const range = document.createRange();
        range.setStart(node, i);
        range.setEnd(node, i + 1);
        const rect = range.getClientRects()[0];
        if (rect && !tops.some(t => Math.abs(t - rect.top) < rect.height / 2)) tops.push(rect.top);
      }
    }
    if (tops.length > 1) bad.push((td.closest("table").id || "table") + " '" + text + "' on " + tops.length + " lines");
  }
  return bad.slice(0, 8);
}"""


# Every phone card row (a cell laid out beside its data-label, drawn by ::before) whose label
# does not sit on its value's baseline: the small grey label a few px above the value's line.
# The label is drawn by a stand-in element with the pseudo-element's style (a pseudo-element has
# no range to measure); each baseline is a glyph box's bottom less the font's descent.
LABELS_OFF_BASELINE_JS = """() => {
  const bad = [], ctx = document.createElement("canvas").getContext("2d");
  const baseline = (node, i) => {
    const range = document.createRange();
    range.setStart(node, i);
    range.setEnd(node, i + 1);
    const rect = range.getClientRects()[0], s = getComputedStyle(node.parentElement);
    ctx.font = s.fontSize + " " + s.fontFamily;
    return rect ? rect.bottom - ctx.measureText(node.data[i]).fontBoundingBoxDescent : null;
  };
  const firstText = (el, skip) => {
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      if (skip.contains(n)) continue;
      const i = n.data.search(/\\S/);
      if (i >= 0 && n.parentElement.getClientRects().length) return [n, i];
    }
    return null;
  };
  const hide = document.createElement("style");
  hide.textContent = "[data-baseline-probe]::before { display: none !important; }";
  document.head.appendChild(hide);
  for (const td of document.querySelectorAll("td[data-label]")) {
    const s = getComputedStyle(td), label = getComputedStyle(td, "::before");
    if (!td.getClientRects().length || !s.display.includes("flex") || label.content === "none") continue;
    const probe = document.createElement("span");
    for (const p of ["font-size", "font-family", "font-weight", "line-height", "flex", "margin",
                     "padding", "display", "align-self"]) probe.style.setProperty(p, label.getPropertyValue(p));
    probe.textContent = td.dataset.label;
    // One more child must not bring in the rules of a cell of several boxes (label above them).
    const first = td.firstElementChild, margin = first && getComputedStyle(first).marginTop;
    const kept = [td.style.display, first && first.style.marginTop], display = s.display;
    td.setAttribute("data-baseline-probe", "");
    td.prepend(probe);
    td.style.display = display;
    if (first) first.style.marginTop = margin;
    const value = firstText(td, probe);
    if (value) {
      const a = baseline(probe.firstChild, 0), b = baseline(...value);
      if (a !== null && b !== null && Math.abs(a - b) > 1) {
        bad.push((td.closest("table").id || "table") + " '" + td.dataset.label + "' "
          + (b - a).toFixed(1) + " px above '" + value[0].data.trim().slice(0, 20) + "'");
      }
    }
    probe.remove();
    td.removeAttribute("data-baseline-probe");
    td.style.display = kept[0];
    if (first) first.style.marginTop = kept[1];
  }
  hide.remove();
  return bad.slice(0, 8);
}"""


# Every shown column header whose words the browser broke over more than two lines: a header
# read a word at a time down the column ("Alerts" / "/" / "reader" / "/ day").
TALL_HEADERS_JS = """() => {
  const bad = [];
  for (const th of document.querySelectorAll("th")) {
    if (!th.getClientRects().length || !th.textContent.trim()) continue;
    const tops = [], walker = document.createTreeWalker(th, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (let i = 0; i < node.length; i++) {
        if (!node.data[i].trim()) continue;
        const range = document.createRange();
        range.setStart(node, i);
        range.setEnd(node, i + 1);
        const rect = range.getClientRects()[0];
        if (rect && !tops.some(t => Math.abs(t - rect.top) < rect.height / 2)) tops.push(rect.top);
      }
    }
    if (tops.length > 2) {
      bad.push((th.closest("table").id || th.closest("table").className) + " '"
        + th.textContent.trim() + "' on " + tops.length + " lines");
    }
  }
  return bad.slice(0, 8);
}"""


# A function for the scripts below: calls fn(char, rect) for each laid-out character of el.
EACH_CHAR_JS = """
  const eachChar = (el, fn) => {
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (let i = 0; i < node.length; i++) {
        const range = document.createRange();
        range.setStart(node, i);
        range.setEnd(node, i + 1);
        const rect = range.getClientRects()[0];
        if (rect) fn(node.data[i], rect);
      }
    }
  };"""


# Every <code> (a tag, an attribute, a setting's name an editor copies) the browser broke right
# after a hyphen: "data-" at a line's end reads as a word cut in two, and the copy looks like
# two pieces. Code may break at a space, or anywhere when it cannot fit at all (overflow-wrap).
CODE_BROKEN_AT_HYPHEN_JS = (
    "() => {"
    + EACH_CHAR_JS
    + """
  const bad = [];
  for (const code of document.querySelectorAll("code")) {
    if (!code.getClientRects().length) continue;
    let last = null, text = "";
    eachChar(code, (char, rect) => {
      if (last && last.char === "-" && rect.top > last.top + last.height / 2) {
        bad.push("'" + code.textContent.trim() + "' broken after '" + text.slice(-12) + "'");
      }
      last = { char, top: rect.top, height: rect.height };
      text += char;
    });
  }
  return bad.slice(0, 8);
}"""
)


# The checks every newsroom page passes, by what they find, at a phone's and a desk's width.
PHONE_CHECKS = {
    "wider than the phone": OVERFLOW_JS,
    "placeholders cut": CUT_PLACEHOLDERS_JS,
    "button labels off centre": OFF_CENTRE_LABELS_JS,
    "column headers over more than two lines": TALL_HEADERS_JS,
    "times broken inside": BROKEN_TIMES_JS,
    "card labels off their value's line": LABELS_OFF_BASELINE_JS,
    "a box's first line lower than its padding": LOOSE_BOX_TOPS_JS,
    "code broken at a hyphen": CODE_BROKEN_AT_HYPHEN_JS,
}
DESK_CHECKS = {
    "wider than the window": OVERFLOW_JS,
    "placeholders cut": CUT_PLACEHOLDERS_JS,
    "cells short of their row's border": SHORT_CELLS_JS,
    "column headers over more than two lines": TALL_HEADERS_JS,
    "times broken inside": BROKEN_TIMES_JS,
    "short values broken over lines": WRAPPED_SHORT_VALUES_JS,
    "boxes scrolling sideways": SIDEWAYS_SCROLL_JS,
    "code broken at a hyphen": CODE_BROKEN_AT_HYPHEN_JS,
}


def page_problems(page: Any, checks: dict[str, str]) -> dict[str, Any]:
    """What each of `checks` finds on the page as it is now (only the ones that find something);
    {} for a page that passes them all."""
    found = {name: page.evaluate(script) for name, script in checks.items()}
    return {name: what for name, what in found.items() if what}


def newsroom_phone(
    browser: Any, base: str, email: str, password: str, user_agent: str | None = None
) -> Any:
    """A page in a new 390 px context (its own cookies: one device), logged in to the newsroom
    as `email`; `user_agent` names the device the way a phone's browser does."""
    options: dict[str, Any] = {"viewport": PHONE, "device_scale_factor": 1}
    if user_agent is not None:
        options["user_agent"] = user_agent
    context = browser.new_context(**options)
    context.set_default_timeout(15_000)
    page = context.new_page()
    sign_in(page, email, password, base)
    return page


def checked_shots(page: Any, artifacts: Path, name: str, docs: tuple[str, ...] = ()) -> None:
    """The page passes PHONE_CHECKS at 390 px and DESK_CHECKS at 1280 px; a whole-page shot at
    each (`<name>-390.png`, `<name>-desktop.png`), copied to docs/img for the labels in `docs`
    ("390", "desktop") with NEWSFLASH_DOCS_SCREENSHOTS=1. Leaves the page at 390 px."""
    for size, label in ((PHONE, "390"), (DESK, "desktop")):
        page.set_viewport_size(size)
        page.wait_for_load_state("load")
        problems = page_problems(page, PHONE_CHECKS if size is PHONE else DESK_CHECKS)
        assert problems == {}, (name, label, problems)
        shot = artifacts / f"{name}-{label}.png"
        screenshot_whole_page(page, shot)
        if os.environ.get("NEWSFLASH_DOCS_SCREENSHOTS") == "1" and label in docs:
            shutil.copy(shot, DOCS_IMG / shot.name)
    page.set_viewport_size(PHONE)


def rendered_lines(element: Any) -> list[str]:
    """The element's text (a Playwright locator) as the browser broke it into lines."""
    script = (
        "el => {"
        + EACH_CHAR_JS
        + """
  const lines = [];
  let top = null;
  eachChar(el, (char, rect) => {
    if (top === null || rect.top > top + 2) { lines.push(""); top = rect.top; }
    lines[lines.length - 1] += char;
  });
  return lines.map(l => l.trim());
}"""
    )
    return list(element.evaluate(script))


# -- Chromium's push boundary and our service worker ----------------------------------------
# Chromium cannot reach its push service from here (a real subscribe() hangs), so the page's
# PushManager is replaced at the browser boundary: subscribe() hands out the subscription the
# test put in window.__nextSubscription, remembered in localStorage like a browser would.
PUSH_STUB = """
(() => {
  const KEY = 'test:subscription';
  const wrap = (json) => ({
    endpoint: json.endpoint, expirationTime: null, options: { userVisibleOnly: true },
    toJSON: () => JSON.parse(JSON.stringify(json)),
    unsubscribe: async () => { localStorage.removeItem(KEY); localStorage.setItem('test:unsubscribed', json.endpoint); return true; },
  });
  PushManager.prototype.subscribe = async function (options) {
    const key = new Uint8Array(options.applicationServerKey);
    window.__subscribeCalls = (window.__subscribeCalls || []).concat([
      { userVisibleOnly: options.userVisibleOnly, key: btoa(String.fromCharCode(...key)) },
    ]);
    const json = window.__nextSubscription;
    if (!json) throw new DOMException('no push service here', 'AbortError');
    localStorage.setItem(KEY, JSON.stringify(json));
    return wrap(json);
  };
  PushManager.prototype.getSubscription = async function () {
    const saved = localStorage.getItem(KEY);
    return saved ? wrap(JSON.parse(saved)) : null;
  };
})();
"""


def sign_in(page: Any, email: str, password: str, base: str | None = None) -> None:
    """The newsroom's login form filled in as an editor does: from `base`'s login page, or from
    the one the page is already on; returns once the browser has left it."""
    if base is not None:
        page.goto(base + "/editor/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/editor/login" not in url)


def screenshot_whole_page(page: Any, path: Path) -> None:
    """The whole page as a reader scrolling through it sees it: the viewport made as tall as the
    document first, because Chromium's full-page capture leaves a sticky action bar where the
    first screen puts it, over the fields it would scroll past."""
    size = page.viewport_size
    height = page.evaluate("document.documentElement.scrollHeight")
    page.set_viewport_size({"width": size["width"], "height": max(height, size["height"])})
    try:
        page.screenshot(path=str(path), full_page=True)
    finally:
        page.set_viewport_size(size)


def gap_below(page: Any, upper: str, lower: str) -> float:
    """The space in px between the bottom of the first element and the top of the second."""
    a, b = page.locator(upper).bounding_box(), page.locator(lower).bounding_box()
    assert a is not None and b is not None, (upper, lower)
    return float(b["y"] - (a["y"] + a["height"]))


def keep(page: Any, artifacts: Path, name: str, full_page: bool = True) -> None:
    """A screenshot for the test run; into docs/img too only when NEWSFLASH_DOCS_SCREENSHOTS=1,
    so a test run never changes tracked files."""
    if full_page:
        screenshot_whole_page(page, artifacts / name)
    else:
        page.screenshot(path=str(artifacts / name))
    if os.environ.get("NEWSFLASH_DOCS_SCREENSHOTS") == "1":
        DOCS_IMG.mkdir(exist_ok=True)
        shutil.copy(artifacts / name, DOCS_IMG / name)


def new_endpoint() -> str:
    # Loopback endpoints are allowed in tests (NEWSFLASH_ALLOW_LOOPBACK_PUSH); nothing is sent.
    return f"http://127.0.0.1:9/push/{uuid.uuid4().hex}"


def open_page(chromium: Any, url: str, stub: bool = True) -> Any:
    page = chromium.pages[0] if chromium.pages else chromium.new_page()
    if stub:
        page.add_init_script(PUSH_STUB)
    page.goto(url)
    return page


def widget_state(page: Any) -> str:
    page.wait_for_selector("html[data-newsflash]", state="attached")
    return str(page.get_attribute("html", "data-newsflash"))


@dataclass
class LiveWorker:
    """Our service worker running in Chromium, and a way to push to it as a push service would."""

    page: Any
    cdp: Any
    worker: Any
    registration_id: str
    origin: str

    def pushes_seen(self) -> int:
        return int(self.worker.evaluate("self.__pushesSeen || 0"))

    def shown(self) -> list[list[Any]]:
        """(tag, title) of every showNotification call of the worker that resolved."""
        return list(self.worker.evaluate("self.__shown || []"))

    def push(self, payload: Any) -> None:
        """Deliver a push as a push service would, and wait until the worker has shown its
        notification and the browser lists it.

        Our worker must call showNotification and see it resolve for every push, or the test
        fails. The browser is asked for its notifications only after that: while the test
        polled getNotifications() as the worker's showNotification was still in flight,
        headless Chromium 156 resolved showNotification and then kept no notification (no
        notificationclose either) in about one run in four. Should the browser still not list
        a notification the worker showed, the push is delivered again, at most twice.
        """
        data = payload if isinstance(payload, str) else json.dumps(payload)
        for _attempt in range(3):
            before = len(self.shown())
            self.deliver(data)
            wait_until(
                lambda n=before: len(self.shown()) > n, 10, "the worker to show a notification"
            )
            tag, title = self.shown()[before]
            try:
                wait_until(
                    lambda t=tag, h=title: any(
                        n["title"] == h for n in notifications(self.page, t)
                    ),
                    3,
                    "the browser to list the notification",
                )
                return
            except AssertionError:
                print(f"Chromium kept no notification for {tag!r}: delivering the push again")
        raise AssertionError("Chromium kept none of three notifications the worker showed")

    def deliver(self, data: str) -> None:
        """Hand the push to the worker without waiting for its notification.

        DevTools delivery is fire-and-forget, and on a loaded machine it now and then never
        reaches the worker: only then is it delivered again."""
        before = self.pushes_seen()
        for _attempt in range(3):
            self.cdp.send(
                "ServiceWorker.deliverPushMessage",
                {"origin": self.origin, "registrationId": self.registration_id, "data": data},
            )
            try:
                wait_until(lambda: self.pushes_seen() > before, 5, "the push event")
                return
            except AssertionError:
                print("push not seen by the service worker within 5 s: delivering it again")
        raise AssertionError("DevTools never delivered the push to the service worker")


def register_worker(
    chromium: Any, reader_site: ReaderSite, api: str | None = None, script: str = SW_SCRIPT
) -> LiveWorker:
    """Register /sw.js as the widget does (or as `script`), and wait until it is activated; with
    `api`, the worker calls the Newsflash API there (the widget's data-api), which need not
    answer."""
    page = open_page(chromium, reader_site.base + "/")
    cdp = chromium.new_cdp_session(page)
    registrations: dict[str, str] = {}
    cdp.on(
        "ServiceWorker.workerRegistrationUpdated",
        lambda event: registrations.update(
            {r["scopeURL"]: r["registrationId"] for r in event["registrations"]}
        ),
    )
    cdp.send("ServiceWorker.enable")
    with chromium.expect_event("serviceworker") as started:
        page.evaluate(
            "script => navigator.serviceWorker.register(script, {scope: '/'})"
            ".then(() => navigator.serviceWorker.ready)",
            script + (("&" if "?" in script else "?") + f"api={api}" if api else ""),
        )
    worker = started.value
    registration_id = wait_until(
        lambda: registrations.get(reader_site.base + "/"), 10, "the worker's registration id"
    )
    # Pushes reach only an activated worker; it caches the publisher's origins on the way.
    wait_until(
        lambda: page.evaluate(
            "navigator.serviceWorker.ready.then(r => r.active && r.active.state === 'activated')"
        ),
        10,
        "the worker to be activated",
    )
    if api is None:
        assert worker.evaluate("kv('config').then(c => c.origins)") == [reader_site.base]
    # Count push events next to the worker's own handler, and record each notification the
    # worker's handler shows once the browser has resolved it (test instrumentation only).
    worker.evaluate(
        "self.addEventListener('push', () => { self.__pushesSeen = (self.__pushesSeen || 0) + 1; })"
    )
    worker.evaluate(
        """(() => {
          const registration = self.registration;
          const show = registration.showNotification.bind(registration);
          self.__shown = [];
          registration.showNotification = (title, options) => show(title, options).then(r => {
            self.__shown.push([(options && options.tag) || null, title]);
            return r;
          });
        })()"""
    )
    return LiveWorker(page, cdp, worker, registration_id, reader_site.base)


def notifications(page: Any, tag: str | None = None) -> list[dict[str, Any]]:
    return list(
        page.evaluate(
            """tag => navigator.serviceWorker.ready
              .then(r => r.getNotifications(tag ? {tag} : {}))
              .then(ns => ns.map(n => ({title: n.title, body: n.body, tag: n.tag,
                                        data: n.data, renotify: n.renotify,
                                        lang: n.lang, dir: n.dir})))""",
            tag,
        )
    )


def subscribed_page(
    chromium: Any, site: ReaderSite, zone: str = "Africa/Nairobi", lang: str = "en"
) -> Any:
    """A page of a reader who said Yes, Thanks, in a browser set to the given time zone, whose
    alerts are in `lang` (the manage page speaks it)."""
    page = chromium.pages[0] if chromium.pages else chromium.new_page()
    page.add_init_script(PUSH_STUB)
    cdp = chromium.new_cdp_session(page)
    cdp.send("Emulation.setTimezoneOverride", {"timezoneId": zone})
    page.goto(site.base + "/")
    assert widget_state(page) == "prompt"
    sub = fake_browser_subscription(new_endpoint())
    page.evaluate("s => { window.__nextSubscription = s; }", sub)
    page.get_by_role("button", name="Yes, Thanks").click()
    page.get_by_role("status").get_by_text("You're signed up").wait_for()
    if lang != "en":
        saved = site.api().put(
            "/api/v1/subscriptions", json={**sub, "topics": ["breaking"], "lang": lang}
        )
        assert saved.status_code == 200, saved.json
    page.__sub = sub  # type: ignore[attr-defined]
    return page
