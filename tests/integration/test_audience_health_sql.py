"""The audience-health questions on SQLite and PostgreSQL, over weeks written by the store."""

from __future__ import annotations

import time
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from config.settings import Topic
from core import audience_health
from core.adapters.health_sql import SqlHealthQueries
from core.adapters.stores_sql import SqlStores
from tests.support.audience import MOVED, RESTORED, seed_falling_engagement

TZ = ZoneInfo("Africa/Nairobi")


def test_weeks_of_falling_engagement_and_rising_410s_warn(engine: Engine) -> None:
    store = SqlStores.build(engine, [Topic("breaking", "Breaking", True)])
    now = time.time()
    seed_falling_engagement(store, now, TZ)
    health = audience_health.report(SqlHealthQueries(engine), now, TZ)
    weeks = health["weeks"]
    last, before = weeks[-2], weeks[-3]
    assert before["alerts"] == 7 and last["alerts"] == 21
    assert before["lost"]["gone"] == 0 and last["lost"]["gone"] > 0
    assert last["lost"]["unsubscribed"] == 4 and last["lost"]["purged"] == 3
    # The ledger's 410s are the losses, but for the readers renewed from their tombstones.
    assert last["renewed"] == {"moved": MOVED, "restored": RESTORED}
    assert last["gone"] == last["lost"]["gone"] + RESTORED
    hosts = {h["host"] for h in last["push_hosts"]}
    assert hosts == {
        "fcm.googleapis.com",
        "updates.push.services.mozilla.com",
        "web.push.apple.com",
    }
    assert 0.85 <= before["displayed_rate"] <= 0.95
    assert before["click_rate"] > 3 * last["click_rate"]
    assert last["alerts_per_reader_day"] > 2.5 * before["alerts_per_reader_day"]
    rules = [w["rule"] for w in health["warnings"]]
    assert rules == ["volume_up_clicks_down", "gone_rising"]
    assert health["unseen"][1] == {
        "days": 90,
        "count": 1,
        "share": round(1 / health["subscribers"], 4),
    }
    assert weeks[0]["gained"] == 0 and sum(w["gained"] for w in weeks) == 60
    assert sum(w["renewed_total"] for w in weeks) == MOVED + RESTORED
    # Renewals are neither gains nor losses: the weeks' net change is the audience's.
    net = sum(w["gained"] - w["lost_total"] for w in weeks)
    assert net == health["subscribers"] - 4  # four signed up months before the weeks shown
