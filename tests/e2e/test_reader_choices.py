"""Readers' choices end to end (HTTP → broker → live worker and beat → push stand-in), with the
test clock every process reads (NEWSFLASH_TEST_CLOCK_FILE): a routine alert waits out a reader's
quiet hours and arrives when they end while breaking news goes straight through; a followed
story's updates reach its followers only, with the story's tag and Topic, until it closes."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
from flask.testing import FlaskClient

from core.accounts import Role
from standin.server import PushStandin
from tests.support.live_stack import live_stack
from tests.support.newsroom import EDITOR, PASSWORD, csrf_of
from tests.support.services import (
    TEST_REDIS_DB,
    create_pg_database,
    drop_pg_database,
    new_vapid_pem,
)
from tests.support.stack import Process, wait_until

pytestmark = pytest.mark.timeout(240)
ORIGIN = "http://127.0.0.1:8000"


@dataclass
class Rig:
    client: FlaskClient
    token: str
    standin: PushStandin
    clock_file: Path
    worker: Process
    beat: Process

    def now(self) -> float:
        return time.time() + float(self.clock_file.read_text() or 0)

    def move_clock_to(self, when: float) -> None:
        shift = when - time.time()
        self.clock_file.write_text(repr(shift))

    def call(self, method: str, path: str, body: Any = None, editor: bool = False) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if editor else {}
        return self.client.open(path, method=method, json=body, headers=headers)

    def reader(self, topics: list[str]) -> dict[str, Any]:
        sub = self.standin.create_subscription()
        answer = self.call("POST", "/api/v1/subscriptions", {**sub, "topics": topics})
        assert answer.status_code == 201, answer.json
        return dict(sub)

    def publish(self, **fields: Any) -> str:
        body = {
            "title": "Alert " + uuid.uuid4().hex[:6],
            "body": "Words.",
            "url": f"{ORIGIN}/news/{uuid.uuid4().hex[:6]}",
            **fields,
        }
        answer = self.call("POST", "/api/v1/alerts", body, editor=True)
        assert answer.status_code == 202, answer.json
        return str(answer.json["id"])

    def alert(self, alert_id: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/api/v1/alerts/{alert_id}", editor=True).json)

    def got(self, alert_id: str) -> dict[str, Any]:
        """Who received this alert: token → (payload, headers)."""
        return {
            r.token: r
            for r in self.standin.received
            if r.payload is not None and r.payload.get("id") == alert_id
        }


def token_of(sub: dict[str, Any]) -> str:
    return str(sub["endpoint"]).rsplit("/", 1)[-1]


def proof(sub: dict[str, Any]) -> dict[str, str]:
    return {"endpoint": sub["endpoint"], "auth": sub["keys"]["auth"]}


def _rig(database_url: str, tmp: Path) -> Iterator[Rig]:
    redis_url = f"redis://127.0.0.1:6379/{TEST_REDIS_DB}"
    redis_lib.Redis.from_url(redis_url).flushdb()
    clock_file = tmp / "clock"
    clock_file.write_text("0")
    with live_stack(
        tmp,
        database_url,
        redis_url,
        new_vapid_pem(),
        TEST_CLOCK_FILE=str(clock_file),
        BATCH_SIZE="20",
        STALE_AFTER_S="3600",
        RATE_LIMIT_SUBSCRIBE="10000 per minute",
        TOPICS="breaking:Breaking news:default,politics,sport",
    ) as live:
        token = live.token("choices-e2e", Role.EDITOR)
        live.create_user(EDITOR, PASSWORD, Role.EDITOR)
        assert live.beat is not None
        yield Rig(live.client, token, live.standin, clock_file, live.worker, live.beat)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def rig(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    tmp = tmp_path_factory.mktemp(f"choices-{request.param}")
    if request.param == "sqlite":
        yield from _rig(f"sqlite:///{tmp}/newsflash.db", tmp)
        return
    request.getfixturevalue("postgres_available")
    url = create_pg_database()
    try:
        yield from _rig(url, tmp)
    finally:
        drop_pg_database(url)


def test_routine_alert_waits_for_quiet_hours_while_breaking_news_goes_through(rig: Rig) -> None:
    awake, asleep = rig.reader(["politics"]), rig.reader(["politics"])
    # Quiet hours around the current minute (UTC), ending an hour from now.
    minute = int(rig.now() // 60) % 1440
    start, end = (minute - 60) % 1440, (minute + 60) % 1440
    quiet = {
        "start": f"{start // 60:02d}:{start % 60:02d}",
        "end": f"{end // 60:02d}:{end % 60:02d}",
    }
    answer = rig.call(
        "PUT",
        "/api/v1/subscriptions/preferences",
        {**proof(asleep), "quietHours": {**quiet, "timeZone": "UTC"}, "dailyCap": None},
    )
    assert answer.status_code == 200, answer.json

    published = rig.now()
    routine = rig.publish(topics=["politics"], urgency="normal", ttl=4 * 3600)
    wait_until(lambda: token_of(awake) in rig.got(routine), 30, "the awake reader's alert")
    held = wait_until(
        lambda: (a := rig.alert(routine))["counts"]["held"] == a["counts"]["delivered"] == 1 and a,
        10,
        "the hold and the delivery counted",
    )
    assert held["status"] == "sending" and held["counts"]["pending"] == 1
    breaking = rig.publish(topics=["politics"], urgency="high")
    wait_until(lambda: len(rig.got(breaking)) == 2, 30, "breaking news to both readers")
    assert token_of(asleep) not in rig.got(routine), "delivered during quiet hours"

    # The quiet hours end: the beat releases the held alert within a few seconds.
    release = (int(rig.now() // 86400) * 86400) + end * 60
    if release <= rig.now():
        release += 86400
    rig.move_clock_to(release + 1)
    got = wait_until(lambda: rig.got(routine).get(token_of(asleep)), 30, "the released alert")
    # The TTL counts from the alert's release (core/ttl.py): the push asks the service to keep
    # it only for what is left of the editor's four hours, not four hours more.
    left = 4 * 3600 - (release + 1 - published)
    assert left - 30 <= int(got.headers["ttl"]) <= left + 5  # published before it was stored
    done = wait_until(
        lambda: (a := rig.alert(routine))["status"] == "sent" and a, 30, "the alert to finish"
    )
    assert (done["counts"]["held"], done["counts"]["released"]) == (1, 1)
    assert done["counts"]["delivered"] == 2 and done["counts"]["pending"] == 0
    assert len([r for r in rig.standin.received if r.payload and r.payload["id"] == routine]) == 2


def test_story_updates_reach_followers_only_with_its_tag_and_topic_until_closed(rig: Rig) -> None:
    follower, bystander = rig.reader(["sport"]), rig.reader(["sport"])
    opened = rig.publish(topics=["sport"], urgency="high", followable=True, title="Live: the final")
    wait_until(lambda: len(rig.got(opened)) == 2, 30, "the story's first alert")
    assert token_of(bystander) in rig.got(opened)
    first = rig.got(opened)[token_of(follower)]
    key = rig.alert(opened)["tag"]
    assert first.payload["follow"] is True and first.payload["tag"] == key
    assert first.headers["topic"] == key

    followed = rig.call("POST", f"/api/v1/stories/{key}/follow", proof(follower))
    assert followed.status_code == 200, followed.json
    posted = rig.call(
        "POST", f"/api/v1/stories/{key}/updates", {"title": "GOAL! 1-0", "body": "23'"}, editor=True
    )
    assert posted.status_code == 202, posted.json
    update = str(posted.json["id"])
    wait_until(lambda: rig.alert(update)["status"] == "sent", 30, "the update to be sent")
    got = rig.got(update)
    assert set(got) == {token_of(follower)}, "the update reached someone who did not follow"
    (only,) = got.values()
    assert only.payload["tag"] == key and only.headers["topic"] == key
    assert only.payload["title"] == "GOAL! 1-0" and "follow" not in only.payload
    listed = rig.call("GET", "/api/v1/stories", editor=True).json["stories"]
    assert [(s["followers"], s["updates"]) for s in listed if s["key"] == key] == [(1, 1)]

    # The newsroom's Stories page shows the follower count and closes the story.
    newsroom = rig.client.application.test_client()
    login = newsroom.get("/editor/login")
    newsroom.post(
        "/editor/login",
        data={"email": EDITOR, "password": PASSWORD, "csrf_token": csrf_of(login.text)},
    )
    page = newsroom.get("/editor/stories")
    assert page.status_code == 200 and "Live: the final" in page.text
    assert "Send update to 1 follower<" in page.text
    closed = newsroom.post(f"/editor/stories/{key}/close", data={"csrf_token": csrf_of(page.text)})
    assert closed.status_code == 302, closed.text
    after = newsroom.get(closed.headers["Location"])
    assert "Closed “Live: the final”: its 1 followers get no more updates." in after.text
    assert "Close story" not in after.text
    refused = rig.call(
        "POST", f"/api/v1/stories/{key}/updates", {"title": "2-0", "body": "80'"}, editor=True
    )
    assert refused.status_code == 409 and refused.json["error"]["field"] == "story"
