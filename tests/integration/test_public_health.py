"""The public /readyz: readiness and a short reason per check, never a path or a secret; the ops
detail (open alarms, broker warnings) only for a caller holding the /metrics credentials."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from core.accounts import Role
from core.adapters.accounts_sql import SqlAccounts
from tests.support.reader_api import build_api, dispose_api

_SHORT_REASON = re.compile(r"^(ok|[a-z][a-z ]*(: [A-Za-z0-9_. ]+)?)$")


def test_readyz_names_a_broken_vapid_key_without_its_path(
    tmp_path: Path, vapid_pem: str, clean_redis: str
) -> None:
    var = tmp_path / "secret-keys-of-the-newsroom"
    var.mkdir()
    (var / "vapid_private.pem").write_text("")  # emptied by a botched deploy
    api = build_api(var, f"sqlite:///{tmp_path}/nf.db", vapid_pem)
    try:
        answer = api.client.get("/readyz")
    finally:
        dispose_api(api)
    assert answer.status_code == 503
    assert answer.json["status"] == "unavailable"
    assert answer.json["checks"]["vapid"] != "ok"
    assert "secret-keys-of-the-newsroom" not in answer.text
    assert str(tmp_path) not in answer.text
    for name, reason in answer.json["checks"].items():
        assert _SHORT_REASON.match(reason), (name, reason)


def test_readyz_names_unreachable_services_by_error_type_only(
    tmp_path: Path, vapid_pem: str, clean_redis: str
) -> None:
    api = build_api(
        tmp_path / "var",
        f"sqlite:///{tmp_path}/nf.db",
        vapid_pem,
        # A closed loopback port with a password in the URL: neither may be echoed.
        REDIS_URL="redis://:hunter2-secret@127.0.0.1:1/0",
    )
    try:
        answer = api.client.get("/readyz")
    finally:
        dispose_api(api)
    assert answer.status_code == 503
    assert "hunter2" not in answer.text and "127.0.0.1:1" not in answer.text
    for name, reason in answer.json["checks"].items():
        assert _SHORT_REASON.match(reason), (name, reason)


_OPS_ONLY = ("alarms", "alarms_error", "warnings")


def test_readyz_keeps_the_open_alarms_for_callers_holding_the_metrics_credentials(
    tmp_path: Path, vapid_pem: str, database_url: str, clean_redis: str
) -> None:
    api = build_api(tmp_path / "var", database_url, vapid_pem, METRICS_TOKEN="scrape-" + "7" * 24)
    accounts = SqlAccounts(api.engine)
    ops_token = accounts.create_token("ops-desk", Role.OPS)
    editor_token = accounts.create_token("newsroom", Role.EDITOR)
    api.app.extensions["newsflash"].container.ops.alarm_store.open_alarm(
        "queue_stalled:newsflash.breaking",
        {
            "kind": "queue_stalled",
            "summary": "Queue newsflash.breaking is stalled: 12 tasks waiting.",
            "since": 1_700_000_000.0,
            "detail": {"queue": "newsflash.breaking", "depth": 12, "quiet_s": 61.0},
        },
    )

    def ready(token: str | None) -> Any:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        return api.client.get("/readyz", headers=headers)

    try:
        outsiders = [ready(None), ready(editor_token), ready("not-a-token")]
        insiders = [ready(ops_token), ready("scrape-" + "7" * 24)]
    finally:
        dispose_api(api)
    for answer in outsiders:
        # What the contract promises a load balancer, and not a word more.
        assert answer.status_code == 200
        assert set(answer.json) == {"status", "checks"}, answer.json
        assert "newsflash.breaking" not in answer.text and "stalled" not in answer.text
        assert answer.headers["Cache-Control"] == "no-store"
    for answer in insiders:
        assert answer.status_code == 200 and answer.json["status"] == "ok"
        (alarm,) = answer.json["alarms"]
        assert alarm["key"] == "queue_stalled:newsflash.breaking"
        assert alarm["detail"]["depth"] == 12
        assert isinstance(answer.json["warnings"], list)
    assert not any(key in answer.json for answer in outsiders for key in _OPS_ONLY)
