"""A renewed push subscription whose move cannot reach our server, in a real Chromium: the
service worker keeps the move (IndexedDB) and finishes it at the next chance (the next page of
the site, the next push, Background Sync), so the reader keeps their topics, language, quiet
hours and cap; a move already made whose answer was lost is finished once; and the worker never
moves a record without the proof of ownership the API asks for.

Our server is down for the worker: it is registered as a site whose API is on another port
registers it (`data-api`, so `/sw.js?api=...`), and nothing listens on that port until the test
serves the same app (the same database) there."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from core.adapters import tables as t
from tests.support.browser import (
    LiveWorker,
    ReaderSite,
    fake_browser_subscription,
    new_endpoint,
    register_worker,
    widget_state,
)
from tests.support.live import serve
from tests.support.services import free_port
from tests.support.stack import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]

# The browser renews the subscription: the worker's PushManager now holds `next` (Chromium here
# has no push service, so the worker's getSubscription and subscribe are stubbed at that
# boundary), remembered `old` as the one the server knows, and the event is handled with short
# waits between its attempts. `given`: whether the event brings the new subscription along.
RENEW = """async ([old, next, given]) => {
  MOVE_WAITS_MS = [50, 50];
  await kv('subscription', { endpoint: old.endpoint, auth: old.keys.auth });
  const sub = { endpoint: next.endpoint, toJSON: () => JSON.parse(JSON.stringify(next)) };
  self.registration.pushManager.getSubscription = async () => sub;
  self.registration.pushManager.subscribe = async () => sub;
  return resubscribe(null, given ? sub : null);
}"""
QUIET = {"start": "22:00", "end": "06:00", "timeZone": "Africa/Nairobi"}


@pytest.fixture
def api_port() -> Iterator[int]:
    """A port where our API will answer, once the test serves it; nothing listens before."""
    yield free_port()


def kiswahili_reader(site: ReaderSite) -> dict[str, Any]:
    """A reader's subscription as the server has it: topics, language, quiet hours and a cap."""
    sub = fake_browser_subscription(new_endpoint())
    api = site.api()
    made = api.post(
        "/api/v1/subscriptions", json={**sub, "topics": ["politics", "sport"], "lang": "sw"}
    )
    assert made.status_code == 201, made.json
    proof = {"endpoint": sub["endpoint"], "auth": sub["keys"]["auth"]}
    prefs = api.put(
        "/api/v1/subscriptions/preferences", json={**proof, "quietHours": QUIET, "dailyCap": 3}
    )
    assert prefs.status_code == 200, prefs.json
    return sub


def renewed_while_down(
    chromium: Any, site: ReaderSite, port: int, given: bool = True
) -> tuple[LiveWorker, dict[str, Any], dict[str, Any]]:
    """The browser renews the reader's subscription while our server cannot be reached: every
    attempt within the event fails, and the reader's record stays where it was."""
    # As Chrome has it for every site unless the reader blocks it.
    chromium.grant_permissions(["notifications", "background-sync"], origin=site.base)
    live = register_worker(chromium, site, api=f"http://127.0.0.1:{port}")
    old, new = kiswahili_reader(site), fake_browser_subscription(new_endpoint())
    assert live.worker.evaluate(RENEW, [old, new, given]) == 0, "no answer from the server"
    assert site.subscription(new["endpoint"]) is None
    kept = site.subscription(old["endpoint"])
    assert kept is not None and kept["topics"] == ["politics", "sport"]
    pending = live.worker.evaluate("kv('move')")
    assert pending["from"] == [{"endpoint": old["endpoint"], "auth": old["keys"]["auth"]}]
    if given:
        assert pending["to"] == {"endpoint": new["endpoint"], "auth": new["keys"]["auth"]}
    # Chromium's Background Sync is asked to call again once the network is back.
    assert "newsflash-move" in live.worker.evaluate("self.registration.sync.getTags()")
    return live, old, new


def assert_moved(
    live: LiveWorker, site: ReaderSite, old: dict[str, Any], new: dict[str, Any]
) -> None:
    """The reader's record is on the new subscription, whole, once; the worker is done."""
    moved = wait_until(lambda: site.subscription(new["endpoint"]), 10, "the move to be made")
    assert site.subscription(old["endpoint"]) is None
    assert (moved["topics"], moved["lang"]) == (["politics", "sport"], "sw")
    assert (moved["quiet_zone"], moved["daily_cap"]) == ("Africa/Nairobi", 3)
    assert rows_of(site, new["endpoint"]) == 1
    wait_until(lambda: live.worker.evaluate("kv('move')") is None, 5, "the move to be done")
    remembered = live.worker.evaluate("kv('subscription')")
    assert remembered == {"endpoint": new["endpoint"], "auth": new["keys"]["auth"]}


def rows_of(site: ReaderSite, endpoint: str) -> int:
    s = t.subscriptions
    with site.engine.connect() as conn:
        return int(conn.execute(select(func.count()).where(s.c.endpoint == endpoint)).scalar_one())


def test_a_move_that_failed_while_the_server_was_down_is_made_at_the_next_visit(
    chromium: Any, reader_site: ReaderSite, api_port: int
) -> None:
    live, old, new = renewed_while_down(chromium, reader_site, api_port)
    page = live.page
    # The page sees the renewed subscription, and its daily check-in is due: that check-in
    # must not sign the new subscription up afresh before the worker has moved the record.
    page.evaluate(
        "s => { localStorage.setItem('test:subscription', JSON.stringify(s));"
        " localStorage.setItem('newsflash:syncedAt', String(Date.now() - 2 * 864e5)); }",
        new,
    )
    with serve(reader_site.app, api_port):
        page.reload()
        assert widget_state(page) == "subscribed"
        assert_moved(live, reader_site, old, new)
        wait_until(
            lambda: (
                page.evaluate("localStorage.getItem('newsflash:syncedAt')") is not None
                and page.evaluate("Date.now() - Number(localStorage.getItem('newsflash:syncedAt'))")
                < 60_000
            ),
            10,
            "the page's check-in after the move",
        )
    assert reader_site.subscription(new["endpoint"])["topics"] == ["politics", "sport"]  # type: ignore[index]


def test_a_move_left_over_is_made_when_the_next_push_arrives(
    chromium: Any, reader_site: ReaderSite, api_port: int
) -> None:
    """Offline, the worker could not even fetch the server key to subscribe again; the next
    push it gets finishes the move."""
    live, old, new = renewed_while_down(chromium, reader_site, api_port, given=False)
    with serve(reader_site.app, api_port):
        live.push({"id": "1", "title": "Storm warning", "body": "Heavy rain tonight.", "ts": 1})
        assert_moved(live, reader_site, old, new)


def test_a_move_whose_answer_was_lost_is_finished_once_by_background_sync(
    chromium: Any, reader_site: ReaderSite, api_port: int
) -> None:
    live, old, new = renewed_while_down(chromium, reader_site, api_port)
    # The server made the move; its answer never reached the phone.
    made = reader_site.api().post(
        "/api/v1/subscriptions/change",
        json={"oldEndpoint": old["endpoint"], "oldAuth": old["keys"]["auth"], "subscription": new},
    )
    assert made.status_code == 201
    with serve(reader_site.app, api_port):
        live.cdp.send(
            "ServiceWorker.dispatchSyncEvent",
            {
                "origin": live.origin,
                "registrationId": live.registration_id,
                "tag": "newsflash-move",
                "lastChance": False,
            },
        )
        assert_moved(live, reader_site, old, new)


def test_the_worker_never_moves_a_record_without_its_secret(
    chromium: Any, reader_site: ReaderSite, api_port: int
) -> None:
    """A pending move naming someone else's endpoint with a guessed secret (all a stranger has)
    moves nothing: the worker signs its own subscription up with the default topics."""
    live = register_worker(chromium, reader_site, api=f"http://127.0.0.1:{api_port}")
    victim, mine = kiswahili_reader(reader_site), fake_browser_subscription(new_endpoint())
    guessed = fake_browser_subscription(victim["endpoint"])["keys"]["auth"]
    with serve(reader_site.app, api_port):
        status = live.worker.evaluate(
            """async ([victim, guessed, mine]) => {
              const sub = { endpoint: mine.endpoint, toJSON: () => JSON.parse(JSON.stringify(mine)) };
              self.registration.pushManager.getSubscription = async () => sub;
              await kv('move', { from: [{ endpoint: victim.endpoint, auth: guessed }], to: null });
              return settle();
            }""",
            [victim, guessed, mine],
        )
    assert status == 201
    kept = reader_site.subscription(victim["endpoint"])
    assert kept is not None and kept["auth"] == victim["keys"]["auth"]
    assert kept["topics"] == ["politics", "sport"] and kept["daily_cap"] == 3
    fresh = reader_site.subscription(mine["endpoint"])
    assert fresh is not None and fresh["topics"] == ["breaking"]
    assert live.worker.evaluate("kv('move')") is None
