"""The public /readyz: readiness and a short reason per check, never a path or a secret."""

from __future__ import annotations

import re
from pathlib import Path

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
