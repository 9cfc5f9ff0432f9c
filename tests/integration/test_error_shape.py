"""Every JSON error answer has the contract's shape: {"error": {"code", "message", "field"}}."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.reader_api import browser_sub, build_api, dispose_api


def test_every_json_error_carries_code_message_and_field(
    tmp_path: Path, vapid_pem: str, clean_redis: str
) -> None:
    api = build_api(
        tmp_path / "var",
        f"sqlite:///{tmp_path}/nf.db",
        vapid_pem,
        RATE_LIMIT_SUBSCRIBE="1 per minute",
    )
    c = api.client
    try:
        answers = {
            "400 naming a field": api.post("/api/v1/events", {"type": "shown"}, ip="203.0.113.1"),
            "401 no credentials": c.get("/api/v1/alerts"),
            "404 no such route": c.get("/api/v1/no-such-thing"),
            "405 wrong method": c.get("/api/v1/subscriptions/delete"),
            "413 body too large": c.post(
                "/api/v1/subscriptions",
                data=json.dumps(browser_sub(padding="x" * 9000)),
                content_type="application/json",
                environ_base={"REMOTE_ADDR": "203.0.113.2"},
            ),
            "400 not JSON": c.post(
                "/api/v1/subscriptions/preferences",
                data="endpoint=x",
                content_type="application/x-www-form-urlencoded",
                environ_base={"REMOTE_ADDR": "203.0.113.4"},
            ),
        }
        api.post("/api/v1/subscriptions", browser_sub(), ip="203.0.113.3")
        answers["429 rate limited"] = api.post(
            "/api/v1/subscriptions", browser_sub(), ip="203.0.113.3"
        )
    finally:
        dispose_api(api)
    for case, answer in answers.items():
        status = int(case.split()[0])
        assert answer.status_code == status, (case, answer.status_code)
        assert answer.is_json, case
        error = answer.json["error"]
        assert set(error) == {"code", "message", "field"}, (case, error)
        assert isinstance(error["code"], str) and isinstance(error["message"], str), case
        assert error["field"] is None or isinstance(error["field"], str), case
    assert answers["400 naming a field"].json["error"]["field"] == "type"
