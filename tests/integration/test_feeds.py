"""Alerts from a feed, on SQLite and PostgreSQL: a loopback publisher serves RSS 2.0 and Atom feeds
that change, break and grow too big; the newsroom's feeds page, its review flow and auto sends."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis as redis_lib
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from core.accounts import Role
from core.adapters import migrate
from core.adapters import tables as t
from core.adapters.accounts_sql import SqlAccounts
from core.adapters.sql import make_engine
from core.bootstrap import Container
from service.app import create_app
from tests.support.feedsite import FeedSite, Page, atom, rss
from tests.support.listing import read_table
from tests.support.newsroom import ADMIN, EDITOR, PASSWORD, csrf_of
from tests.support.services import (
    TEST_REDIS_DB,
    engine_database,
    make_env,
    new_vapid_pem,
    settings_from,
)

pytestmark = pytest.mark.timeout(120)


@dataclass
class Rig:
    app: Flask
    site: FeedSite
    engine: Any
    env: dict[str, str]
    sessions: dict[str, FlaskClient] = field(default_factory=dict)

    @property
    def container(self) -> Container:
        return self.app.extensions["newsflash"].container  # type: ignore[no-any-return]

    def login(self, email: str) -> FlaskClient:
        """One session per account for the module (each login pays for a password hash)."""
        if email not in self.sessions:
            self.sessions[email] = self._login(email)
        return self.sessions[email]

    def _login(self, email: str) -> FlaskClient:
        client = self.app.test_client()
        page = client.get("/editor/login")
        answer = client.post(
            "/editor/login",
            data={"email": email, "password": PASSWORD, "csrf_token": csrf_of(page.text)},
        )
        assert answer.status_code == 302, answer.text
        return client

    def count(self, table: Any, *where: Any) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar())


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def rig(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    tmp = tmp_path_factory.mktemp(f"feeds-{request.param}")
    site = FeedSite().start()
    redis_url = f"redis://127.0.0.1:6379/{TEST_REDIS_DB}"
    redis_lib.Redis.from_url(redis_url).flushdb()
    with engine_database(request, tmp) as url:
        env = make_env(
            tmp / "var",
            url,
            redis_url,
            new_vapid_pem(),
            PUBLIC_ORIGINS=site.origin,
            FEED_MIN_GAP_S="1",
            FEED_MAX_BYTES="65536",
            RATE_LIMIT_LOGIN="100000 per minute",
        )
        engine = make_engine(url)
        migrate.upgrade(engine)
        accounts = SqlAccounts(engine)
        accounts.create_user(EDITOR, PASSWORD, Role.EDITOR)
        accounts.create_user(ADMIN, PASSWORD, Role.ADMIN)
        app = create_app(settings_from(env))
        try:
            yield Rig(app, site, engine, env)
        finally:
            app.extensions["newsflash"].container.engine.dispose()
            engine.dispose()
            site.stop()


def _add(rig: Rig, path: str, mode: str = "review", category: str = "Breaking") -> int:
    admin = rig.login(ADMIN)
    page = admin.get("/editor/feeds")
    answer = admin.post(
        "/editor/feeds",
        data={
            "url": f"{rig.site.origin}{path}",
            "category": category,
            "mode": mode,
            "topics": ["breaking"],
            "csrf_token": csrf_of(page.text),
        },
    )
    assert answer.status_code == 302, answer.text
    return max(f.id for f in rig.container.feeds.feeds())


def _poll(rig: Rig, feed_id: int) -> Any:
    from core.usecases.newsroom import Editor

    return rig.container.feeds.poll(Editor("tests"), feed_id)


def _drafts(rig: Rig) -> list[str]:
    return [d.item.title for d in rig.container.feeds.drafts()]


def test_a_changing_rss_feed_makes_exactly_one_draft_per_new_breaking_item(rig: Rig) -> None:
    origin = rig.site.origin
    rig.site.pages["/rss/"] = Page(
        body=rss(("wp-1", "Old news", f"{origin}/old", ["Breaking"])), etag='"v1"'
    )
    feed_id = _add(rig, "/rss/")
    first = _poll(rig, feed_id)
    assert first.new == 0 and first.seen == 1, "items already in the feed are never sent"
    assert _drafts(rig) == []

    rig.site.pages["/rss/"] = Page(
        body=rss(
            ("wp-3", "Bridge closed after crash", f"{origin}/bridge", ["City", "breaking"]),
            ("wp-2", "Weekend weather", f"{origin}/weather", ["Weather"]),
            ("wp-1", "Old news", f"{origin}/old", ["Breaking"]),
        ),
        etag='"v2"',
    )
    changed = _poll(rig, feed_id)
    assert changed.new == 1
    assert _drafts(rig) == ["Bridge closed after crash"]
    again = _poll(rig, feed_id)
    assert again.not_modified, "the second poll sent If-None-Match and got 304"
    assert rig.site.hits("/rss/")[-1].get("If-None-Match") == '"v2"'
    rig.site.pages["/rss/"].etag = None  # a server without ETags: the body is read again
    assert _poll(rig, feed_id).new == 0
    assert _drafts(rig) == ["Bridge closed after crash"]


def test_an_atom_feed_and_the_review_flow_send_an_item_once(rig: Rig) -> None:
    origin = rig.site.origin
    rig.site.pages["/atom"] = Page(body=atom(), content_type="application/atom+xml")
    feed_id = _add(rig, "/atom", category="breaking")
    _poll(rig, feed_id)
    rig.site.pages["/atom"] = Page(
        body=atom(("urn:post:9", "Polls close early", f"{origin}/polls", ["Breaking"])),
        content_type="application/atom+xml",
    )
    assert _poll(rig, feed_id).new == 1

    editor = rig.login(EDITOR)
    page = editor.get("/editor/feeds")
    assert page.status_code == 200 and "Polls close early" in page.text
    form = re.search(r'<form method="post" action="/editor/new">(.*?)</form>', page.text, re.S)
    assert form is not None
    fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', form.group(1)))
    review = editor.post("/editor/new", data={**fields, "action": "review"})
    assert review.status_code == 200 and "Check, then send" in review.text
    confirm = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', review.text))
    assert confirm["key"].startswith("feed:")
    for _ in range(2):  # a double click, or the same draft sent twice
        sent = editor.post("/editor/new", data={**confirm, "topics": "breaking", "action": "send"})
        assert sent.status_code == 302
    assert rig.count(t.alerts, t.alerts.c.title == "Polls close early") == 1
    (alert_id,) = (
        rig.engine.connect()
        .execute(select(t.alerts.c.id).where(t.alerts.c.title == "Polls close early"))
        .scalars()
    )
    after = editor.get("/editor/feeds").text
    drafts, recent = after.split('id="feed-recent"')
    assert "Polls close early" not in drafts, "a sent draft leaves the review list"
    assert f"#{alert_id}</a> Polls close early" in recent


def test_a_broken_feed_records_its_error_on_the_page_and_recovers(rig: Rig) -> None:
    origin = rig.site.origin
    rig.site.pages["/broken"] = Page(body=rss(("b-1", "Fine", f"{origin}/f", ["Breaking"])))
    feed_id = _add(rig, "/broken")
    _poll(rig, feed_id)
    editor = rig.login(EDITOR)
    for page, words in [
        (Page(500, b"oops", "text/html"), "it answered HTTP 500"),
        (Page(body=b"<rss><channel><item><title>cut"), "not well-formed XML"),
    ]:
        rig.site.pages["/broken"] = page
        result = _poll(rig, feed_id)
        assert result.error is not None and words in result.error
        shown = editor.get("/editor/feeds").text
        assert words in shown and "feed-error" in shown
    rig.site.pages["/broken"] = Page(
        body=rss(("b-2", "Back again", f"{origin}/back", ["Breaking"]))
    )
    assert _poll(rig, feed_id).new == 1
    feed = rig.container.feeds_store.get_feed(feed_id)
    assert feed is not None and feed.last_error is None
    row = re.search(rf'data-feed-id="{feed_id}">(.*?)</tr>', editor.get("/editor/feeds").text, re.S)
    assert row is not None and "feed-error" not in row.group(1) and "OK, " in row.group(1)


def _latin_rss(origin: str, key: str, title: str) -> str:
    """RSS as an older CMS writes it: no encoding in the XML declaration, only in the header."""
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Taifa</title>'
        f"<item><title>{title}</title><link>{origin}/{key}</link><guid>{key}</guid>"
        "<category>Breaking</category><description>Habari kamili.</description></item>"
        "</channel></rss>"
    )


@pytest.mark.parametrize(
    ("charset", "title"),
    [
        (
            "windows-1252",
            "\u201cMvua kubwa\u201d: caf\u00e9 ya Nairobi yafungwa \u2014 \u2018rain\u2019",
        ),
        # Served as ISO-8859-1 yet written by Windows tools: the curly quotes are windows-1252's,
        # as browsers (WHATWG) read that label.
        ("ISO-8859-1", "\u201cHabari\u201d kutoka caf\u00e9 ya Mombasa"),
    ],
    ids=["windows-1252", "iso-8859-1"],
)
def test_a_feed_in_the_charset_its_content_type_names_is_read_in_it(
    rig: Rig, charset: str, title: str
) -> None:
    origin = rig.site.origin
    path = f"/latin-{charset}"
    content_type = f"text/xml; charset={charset}"
    rig.site.pages[path] = Page(body=b"<rss version='2.0'><channel/></rss>")
    feed_id = _add(rig, path)
    assert _poll(rig, feed_id).error is None
    body = _latin_rss(origin, f"k-{charset}", title).encode("windows-1252")
    rig.site.pages[path] = Page(body=body, content_type=content_type)
    result = _poll(rig, feed_id)
    assert result.error is None and result.new == 1
    assert title in _drafts(rig)


def test_a_feed_in_an_unknown_charset_names_it_in_its_error(rig: Rig) -> None:
    path = "/charset-unknown"
    rig.site.pages[path] = Page(body=b"<rss version='2.0'><channel/></rss>")
    feed_id = _add(rig, path)
    _poll(rig, feed_id)
    body = _latin_rss(rig.site.origin, "k-x", "Caf\u00e9").encode("windows-1252")
    rig.site.pages[path] = Page(body=body, content_type="application/rss+xml; charset=x-klingon")
    result = _poll(rig, feed_id)
    assert result.error is not None and "x-klingon" in result.error
    assert "not well-formed" not in result.error
    shown = rig.login(EDITOR).get("/editor/feeds").text
    assert "x-klingon" in shown


@pytest.mark.parametrize("chunked", [False, True])
def test_a_huge_feed_is_refused_with_a_clear_error(rig: Rig, chunked: bool) -> None:
    item = ("h-{}", "x" * 200, f"{rig.site.origin}/h", ["Breaking"])
    huge = rss(*[(item[0].format(i), *item[1:]) for i in range(400)])  # type: ignore[misc]
    assert len(huge) > 65536
    path = f"/huge-{int(chunked)}"
    rig.site.pages[path] = Page(body=huge, chunked=chunked)
    feed_id = _add(rig, path)
    result = _poll(rig, feed_id)
    assert result.error is not None and "larger than 64 KB; refused" in result.error
    assert rig.count(t.feed_items, t.feed_items.c.feed_id == feed_id) == 0


@pytest.mark.parametrize("declared", ["\u00b2", "9" * 5000])
def test_a_content_length_int_refuses_is_not_believed_and_the_cap_still_holds(
    rig: Rig, declared: str
) -> None:
    """'²' passes str.isdigit() and int() refuses it (5,000 digits too): the feed is read,
    bounded by the cap as if no length had been declared."""
    path = f"/declared-{len(declared)}"
    rig.site.pages[path] = Page(body=rss(), chunked=True, headers={"Content-Length": declared})
    result = _poll(rig, _add(rig, path))
    assert result.error is None


def test_an_auto_feed_sends_each_item_once_never_faster_than_the_gap(rig: Rig) -> None:
    origin = rig.site.origin
    rig.site.pages["/auto"] = Page(body=rss())
    feed_id = _add(rig, "/auto", mode="auto")
    _poll(rig, feed_id)
    rig.site.pages["/auto"] = Page(
        body=rss(
            ("a-2", "Second flash", f"{origin}/2", ["Breaking"]),
            ("a-1", "First flash", f"{origin}/1", ["Breaking"]),
            ("a-0", "Off the site", "https://elsewhere.example/x", ["Breaking"]),
        )
    )
    time.sleep(1.1)  # the gap since any earlier auto send in this module
    assert _poll(rig, feed_id).new == 2
    first = rig.count(t.alerts, t.alerts.c.created_by == "feed")
    assert first == 1, "one at once; the next waits for the gap"
    assert rig.container.feeds.send_queued() is None, "the gap has not passed"
    time.sleep(1.1)
    assert rig.container.feeds.send_queued() is not None
    for _ in range(3):
        _poll(rig, feed_id)
        rig.container.feeds.send_queued()
    titles = {
        r
        for r in rig.engine.connect()
        .execute(select(t.alerts.c.title).where(t.alerts.c.created_by == "feed"))
        .scalars()
    }
    assert titles == {"First flash", "Second flash"}
    skipped = [i for i in rig.container.feeds.recent() if i.state.value == "skipped"]
    assert [i.title for i in skipped] == ["Off the site"]
    audit = rig.container.accounts.audit_entries(action="alert.send", actor="feed")
    assert len(audit) == 2


def test_only_admins_change_feeds_and_every_change_is_audited(rig: Rig) -> None:
    editor = rig.login(EDITOR)
    page = editor.get("/editor/feeds")
    refused = editor.post(
        "/editor/feeds",
        data={"url": f"{rig.site.origin}/x", "category": "B", "csrf_token": csrf_of(page.text)},
    )
    assert refused.status_code == 403
    bad = rig.login(ADMIN)
    answer = bad.post(
        "/editor/feeds",
        data={
            "url": "https://elsewhere.example/feed",
            "category": "B",
            "csrf_token": csrf_of(bad.get("/editor/feeds").text),
        },
    )
    assert answer.status_code == 400 and "The feed must be an http(s) address on your own" in (
        answer.text
    )
    feed_id = _add(rig, "/to-remove")
    admin = rig.login(ADMIN)
    token = csrf_of(admin.get("/editor/feeds").text)
    assert (
        admin.post(
            f"/editor/feeds/{feed_id}/mode", data={"mode": "auto", "csrf_token": token}
        ).status_code
        == 302
    )
    assert (
        admin.post(f"/editor/feeds/{feed_id}/remove", data={"csrf_token": token}).status_code == 302
    )
    actions = [e["action"] for e in rig.container.accounts.audit_entries(actor=ADMIN)]
    assert {"feed.add", "feed.mode", "feed.remove"} <= set(actions)
    huge = "9" * 30  # ids from a URL that no database integer holds: not found, never a 500
    for path in (f"/editor/feeds/{huge}/remove", f"/editor/feeds/items/{huge}/dismiss"):
        assert admin.post(path, data={"csrf_token": token}).status_code == 404, path
    assert admin.get(f"/editor/alerts/{huge}/gate").json is None
    sent = admin.post(
        f"/api/v1/alerts/{huge}/send-anyway", json={}, headers={"X-CSRF-Token": token}
    )
    assert sent.status_code == 404


FEED_COLUMNS = ["ID", "MODE", "CATEGORY", "TOPICS", "URL", "LAST POLL"]


def test_the_cli_follows_lists_polls_and_removes(
    rig: Rig, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli.main import main

    for name, value in rig.env.items():
        monkeypatch.setenv(name, value)
    rig.site.pages["/cli"] = Page(body=rss())
    url = f"{rig.site.origin}/cli"
    assert main(["feeds", "add", "--url", url, "--category", "Breaking", "--mode", "auto"]) == 0
    feed_id = int(capsys.readouterr().out.split()[2].rstrip(":"))
    assert main(["feeds", "poll", str(feed_id)]) == 0
    assert "0 new breaking item(s)" in capsys.readouterr().out
    rig.site.pages["/cli"] = Page(500, b"down", "text/plain")
    assert main(["feeds", "poll", str(feed_id)]) == 1
    assert capsys.readouterr().out.startswith(f"feed {feed_id}: The feed could not be read")
    assert main(["feeds", "list"]) == 0
    # The module's other tests follow feeds of their own: this one's row among them.
    rows = read_table(capsys.readouterr().out.splitlines(), FEED_COLUMNS, ("ID",))
    [row] = [r for r in rows if r["ID"] == str(feed_id)]
    assert (row["MODE"], row["CATEGORY"], row["URL"]) == ("auto", "Breaking", url)
    assert row["LAST POLL"].startswith("error: The feed could not be read")
    assert main(["feeds", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["feeds"]
    assert [f["id"] for f in listed] == [int(r["ID"]) for r in rows]
    [found] = [f for f in listed if f["id"] == feed_id]
    assert (found["mode"], found["url"]) == ("auto", url)
    assert found["last_error"].startswith("The feed could not be read")
    assert main(["feeds", "add", "--url", "https://elsewhere.example/f", "--category", "B"]) == 2
    assert "feed_url: The feed must be" in capsys.readouterr().err
    assert main(["feeds", "remove", str(feed_id)]) == 0
    actions = [e["action"] for e in rig.container.accounts.audit_entries(actor="cli")]
    assert actions[:2] == ["feed.remove", "feed.add"]
