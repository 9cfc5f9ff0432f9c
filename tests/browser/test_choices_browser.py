"""Readers' choices in a real Chromium: quiet hours in the browser's own time zone and a daily
cap on /manage, following a story from /manage, from the article page and from the
notification's action button (screenshots for docs/reader-choices.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core.adapters import tables as t
from core.payload import payload_dict
from tests.support.browser import (
    ReaderSite,
    fake_browser_subscription,
    keep,
    new_endpoint,
    notifications,
    register_worker,
    subscribed_page,
)
from tests.support.stack import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]


def followers(site: ReaderSite, key: str) -> list[int]:
    f = t.story_follows
    with site.engine.connect() as conn:
        return list(conn.execute(select(f.c.subscription_id).where(f.c.story_key == key)).scalars())


def test_manage_sets_quiet_hours_and_a_cap_and_follows_a_story(
    chromium: Any, reader_site: ReaderSite, artifacts: Path
) -> None:
    key = reader_site.open_story("Live: Nairobi budget speech")
    page = subscribed_page(chromium, reader_site)
    sub = page.__sub
    page.goto(reader_site.base + "/manage")
    choices = page.locator("#nf-choices")
    choices.wait_for()
    assert "Africa/Nairobi" in page.locator("#nf-zone").inner_text()
    page.get_by_label("Use quiet hours").check()
    page.get_by_label("From").fill("22:00")
    page.get_by_label("until").fill("06:30")
    page.get_by_label("At most this many routine alerts a day").select_option("3")
    page.get_by_role("button", name="Save quiet hours and limit").click()
    page.get_by_text("Saved. Quiet from 22:00 to 06:30. At most 3 routine alerts a day.").wait_for()
    row = reader_site.subscription(sub["endpoint"])
    assert row is not None
    assert (row["quiet_zone"], row["quiet_start_utc"], row["quiet_end_utc"]) == (
        "Africa/Nairobi",
        19 * 60,
        3 * 60 + 30,
    )
    assert row["daily_cap"] == 3

    story = page.locator("#nf-story-list li", has_text="Live: Nairobi budget speech")
    story.get_by_role("button", name="Follow: Live: Nairobi budget speech").click()
    story.get_by_text("Following", exact=True).wait_for()
    assert followers(reader_site, key) == [row["id"]]
    page.set_viewport_size({"width": 1280, "height": 900})
    keep(page, artifacts, "manage-quiet-hours-follow-desktop.png")
    page.set_viewport_size({"width": 390, "height": 844})
    keep(page, artifacts, "manage-quiet-hours-follow-390.png")

    page.reload()
    page.locator("#nf-choices").wait_for()
    assert page.get_by_label("Use quiet hours").is_checked()
    assert page.get_by_label("until").input_value() == "06:30"
    page.get_by_label("Use quiet hours").uncheck()
    page.get_by_label("At most this many routine alerts a day").select_option("")
    page.get_by_role("button", name="Save quiet hours and limit").click()
    page.get_by_text("Saved. No quiet hours. No daily limit.").wait_for()
    cleared = reader_site.subscription(sub["endpoint"])
    assert (
        cleared is not None and cleared["quiet_start_utc"] is None and cleared["daily_cap"] is None
    )
    page.locator("#nf-story-list li", has_text="Nairobi budget").get_by_role(
        "button", name="Stop following: Live: Nairobi budget speech"
    ).click()
    page.locator("#nf-story-list li", has_text="Nairobi budget").get_by_role(
        "button", name="Follow: Live: Nairobi budget speech"
    ).wait_for()
    assert followers(reader_site, key) == []


def test_a_kiswahili_manage_page_lists_a_story_by_its_kiswahili_title(
    chromium: Any, reader_site: ReaderSite
) -> None:
    """Before, every story was listed by its main (English) title on a Kiswahili page; a story
    the newsroom did not write in Kiswahili keeps its English title, marked lang="en"."""
    both = reader_site.open_story(
        "Floods in Kisumu",
        translations={"sw": {"title": "Mafuriko Kisumu", "body": "Habari zinaendelea."}},
    )
    reader_site.open_story("Live: Nakuru by-election")
    page = subscribed_page(chromium, reader_site, lang="sw")
    # The open stories are cached for a minute: an earlier test's list would hide these two.
    chromium.new_cdp_session(page).send("Network.clearBrowserCache")
    page.goto(reader_site.base + "/manage?lang=sw")
    swahili = page.locator("#nf-story-list li", has_text="Mafuriko Kisumu")
    swahili.get_by_role("button", name="Fuatilia: Mafuriko Kisumu").click()
    swahili.get_by_role("button", name="Acha kufuatilia: Mafuriko Kisumu").wait_for()
    assert swahili.locator("span").get_attribute("lang") is None
    assert followers(reader_site, both) == [reader_site.subscription(page.__sub["endpoint"])["id"]]  # type: ignore[index]
    english = page.locator("#nf-story-list li", has_text="Nakuru by-election")
    assert english.locator("span").get_attribute("lang") == "en"
    assert page.locator("#nf-story-list", has_text="Floods in Kisumu").count() == 0


def test_an_article_page_that_names_the_story_offers_to_follow_it(
    chromium: Any, reader_site: ReaderSite, artifacts: Path
) -> None:
    key = reader_site.open_story("Live: the cup final")
    page = subscribed_page(chromium, reader_site)
    article = f"""<!doctype html><html lang="en"><head><title>Live: the cup final</title></head>
      <body><h1>Live: the cup final</h1><p>Kick-off at eight.</p><div id="newsflash-follow"></div>
      <script src="/newsflash.js" data-story="{key}"></script></body></html>"""
    page.route("**/live/final", lambda route: route.fulfill(body=article, content_type="text/html"))
    page.goto(reader_site.base + "/live/final")
    button = page.get_by_role("button", name="Follow this story")
    button.wait_for()
    button.click()
    page.get_by_role("button", name="Following this story \u2713").wait_for()
    assert page.locator(".nf-follow").get_attribute("aria-pressed") == "true"
    sub_id = reader_site.subscription(page.__sub["endpoint"])["id"]  # type: ignore[index]
    assert followers(reader_site, key) == [sub_id]
    page.set_viewport_size({"width": 390, "height": 500})
    keep(page, artifacts, "article-follow-this-story-390.png")


def test_the_notifications_follow_button_follows_with_this_browsers_subscription(
    chromium: Any, reader_site: ReaderSite
) -> None:
    key = reader_site.open_story("Live: election results")
    sub = fake_browser_subscription(new_endpoint())
    assert reader_site.api().post("/api/v1/subscriptions", json=sub).status_code == 201
    live = register_worker(chromium, reader_site)
    # The worker's own subscription is the one the server knows (no real push service here).
    live.worker.evaluate(
        "s => { self.registration.pushManager.getSubscription = async () =>"
        " ({ endpoint: s.endpoint, toJSON: () => s }); }",
        sub,
    )
    live.push(
        {
            "id": "1",
            "title": "Live: election results",
            "body": "Counting starts",
            "url": reader_site.base + "/live",
            "tag": key,
            "ts": 1,
            "follow": True,
        }
    )
    actions = live.page.evaluate(
        "tag => navigator.serviceWorker.ready.then(r => r.getNotifications({tag}))"
        ".then(ns => ns.map(n => n.actions.map(a => [a.action, a.title])))",
        key,
    )
    assert actions == [[["follow", "Follow this story"]]]
    live.worker.evaluate(
        "async tag => { const [n] = await self.registration.getNotifications({tag});"
        " await followStory(n); }",
        key,
    )
    sub_id = reader_site.subscription(sub["endpoint"])["id"]  # type: ignore[index]
    assert followers(reader_site, key) == [sub_id]
    shown = wait_until(
        lambda: [n for n in notifications(live.page, key) if "You follow" in n["body"]],
        10,
        "the confirmation",
    )
    assert shown[0]["tag"] == key


@pytest.mark.parametrize(
    ("case", "says", "again"),
    [
        # The server does not know this browser (its record was purged): worth another tap later.
        (
            "unknown",
            "Hatukuweza kufuatilia habari hii sasa hivi.",
            [["follow", "Fuatilia habari hii"]],
        ),
        # The newsroom closed the story: another tap could never work.
        ("closed", "Habari hii imefikia mwisho", []),
    ],
)
def test_a_follow_from_the_notification_that_fails_says_so_in_the_readers_language(
    chromium: Any, reader_site: ReaderSite, case: str, says: str, again: list[list[str]]
) -> None:
    """Before, a failed Follow closed the notification and said nothing: the reader believed
    they followed the story. The alert came in English (it had no Kiswahili text): the answer's
    words are Kiswahili and so is its `lang` (it said en before)."""
    key = reader_site.open_story(f"Live: Kisumu floods ({case})")
    sub = fake_browser_subscription(new_endpoint())
    if case == "closed":
        assert reader_site.api().post("/api/v1/subscriptions", json=sub).status_code == 201
        closed = reader_site.api().post(
            f"/api/v1/stories/{key}/close", headers={"Authorization": f"Bearer {reader_site.token}"}
        )
        assert closed.status_code == 200, closed.json
    live = register_worker(chromium, reader_site)
    live.worker.evaluate(
        "s => { self.registration.pushManager.getSubscription = async () =>"
        " ({ endpoint: s.endpoint, toJSON: () => s }); return kv('lang', 'sw'); }",
        sub,
    )
    # What the workers send (declarative, `lang` en) for an alert with no Kiswahili text.
    message = payload_dict(
        "1", "Floods in Kisumu", "Reports are coming in", reader_site.base + "/live", key, 1
    )
    live.push({**message, "follow": True})
    live.worker.evaluate(
        "async tag => { const [n] = await self.registration.getNotifications({tag});"
        " n.close(); await followStory(n); }",
        key,
    )
    shown = wait_until(
        lambda: [n for n in notifications(live.page, key) if says in n["body"]],
        10,
        "the answer to the tap",
    )
    assert shown[0]["lang"] == "sw"
    actions = live.page.evaluate(
        "tag => navigator.serviceWorker.ready.then(r => r.getNotifications({tag}))"
        ".then(ns => ns.map(n => n.actions.map(a => [a.action, a.title])))",
        key,
    )
    assert actions == [again]
    assert followers(reader_site, key) == []


@pytest.mark.parametrize(
    ("lang", "zone", "said"),
    [
        ("sw", "Africa/Nairobi", "Saa za Afrika Mashariki (Africa/Nairobi)"),
        ("en", "Africa/Nairobi", "East Africa Time (Africa/Nairobi)"),
        ("sw", "Europe/London", "Saa za Greenwich (Europe/London)"),
    ],
)
def test_the_time_zone_of_quiet_hours_is_named_in_the_pages_language(
    chromium: Any, reader_site: ReaderSite, lang: str, zone: str, said: str
) -> None:
    """Before, the page showed the zone's id alone ("Africa/Nairobi"), in no reader's words."""
    page = subscribed_page(chromium, reader_site, zone=zone, lang=lang)
    page.goto(f"{reader_site.base}/manage?lang={lang}")
    page.locator("#nf-choices").wait_for()
    assert said in page.locator("#nf-zone").inner_text()


UNKNOWN_ZONE = """(() => {
  // A browser that names its zone with an id the tz database does not have.
  const own = Intl.DateTimeFormat.prototype.resolvedOptions;
  Intl.DateTimeFormat.prototype.resolvedOptions = function () {
    const options = own.call(this);
    options.timeZone = 'Etc/Unknown';
    return options;
  };
})();"""


def test_a_browser_zone_the_server_does_not_know_saves_as_the_same_clock(
    chromium: Any, reader_site: ReaderSite
) -> None:
    """Before, a browser naming a zone outside the tz database (some Android WebViews say
    "Etc/Unknown") got 'Please try again later' on every Save of quiet hours, which could never
    work. The page now saves the same clock as a fixed offset (Nairobi is UTC+3: Etc/GMT-3),
    and quiet hours fall on the reader's own night."""
    page = subscribed_page(chromium, reader_site)
    sub = page.__sub
    page.add_init_script(UNKNOWN_ZONE)
    page.goto(reader_site.base + "/manage")
    page.locator("#nf-choices").wait_for()
    assert "Etc/Unknown" in page.locator("#nf-zone").inner_text()
    page.get_by_label("Use quiet hours").check()
    page.get_by_label("From").fill("22:00")
    page.get_by_label("until").fill("06:30")
    page.get_by_role("button", name="Save quiet hours and limit").click()
    page.get_by_text("Saved. Quiet from 22:00 to 06:30.").wait_for()
    row = reader_site.subscription(sub["endpoint"])
    assert row is not None
    assert (row["quiet_zone"], row["quiet_start_utc"], row["quiet_end_utc"]) == (
        "Etc/GMT-3",
        19 * 60,
        3 * 60 + 30,
    )
    assert "Etc/GMT-3" in page.locator("#nf-zone").inner_text()


def test_a_zone_with_no_whole_hour_offset_says_what_to_do_not_try_again_later(
    chromium: Any, reader_site: ReaderSite
) -> None:
    """Where the clock is not a whole number of hours from UTC (India, UTC+5:30), no fixed-offset
    zone names it: the page says the zone is not known and what the reader can do, in their
    language, and the button stays usable."""
    page = subscribed_page(chromium, reader_site, zone="Asia/Kolkata", lang="sw")
    page.add_init_script(UNKNOWN_ZONE)
    page.goto(reader_site.base + "/manage?lang=sw")
    page.locator("#nf-choices").wait_for()
    page.locator("#nf-quiet-on").check()
    page.locator("#nf-quiet-start").fill("22:00")
    page.locator("#nf-quiet-end").fill("06:30")
    page.locator("#nf-choices-save").click()
    said = page.locator("#nf-choices-message")
    said.get_by_text("Hatutambui saa za eneo za kivinjari chako (Etc/Unknown)").wait_for()
    assert "baadaye" not in said.inner_text()  # not "try again later"
    assert page.locator("#nf-choices-save").is_enabled()
