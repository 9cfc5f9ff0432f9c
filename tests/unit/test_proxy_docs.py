"""The documented reverse-proxy config sends every path a reader's browser needs to Newsflash.

The paths are derived from the app, not listed here: the reader blueprint's routes (but `/`,
the demo article), the reader API (the endpoints the API opens to the publisher's origins by
CORS), and every /static/ file the reader pages and the web app manifest load. A route or file
added tomorrow fails this test until the nginx examples in the docs route it too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from flask import Flask

from service import api, api_readers_choice
from service.app import create_app
from tests.support.services import ROOT, make_env, new_vapid_pem, settings_from

DOCUMENTS = ["docs/reader-integration.md", "docs/deployment.md"]
# The publisher's own pages stand at `/`; our demo article must not shadow their home page.
NOT_PROXIED = {"reader.home"}
# Newsroom and ops addresses the docs say need not be reachable from the internet.
NEWSROOM_PREFIXES = ("/editor", "/ops", "/metrics", "/api/v1/alerts", "/api/v1/ops")
SAMPLE_ARGS = {
    "key": "budget-2026",
    "alert_id": "42",
    "feed_id": "7",
    "item_id": "9",
    "template_id": "3",
    "user_id": "5",
    "handle": "0" * 64,
}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    tmp = tmp_path_factory.mktemp("proxy-docs")
    env = make_env(tmp / "var", f"sqlite:///{tmp}/nf.db", "redis://127.0.0.1:1/0", new_vapid_pem())
    yield create_app(settings_from(env))


def _sample(rule: str) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", lambda m: SAMPLE_ARGS[m.group(1)], rule)


def _reader_endpoints() -> set[str]:
    # The reader API is exactly what the API lets the publisher's origins call (CORS).
    return set(api._PUBLIC_ENDPOINTS) | set(api_readers_choice._PUBLIC)


def reader_paths(app: Flask) -> set[str]:
    """Every path a reader's browser asks the publisher's origin for."""
    paths: set[str] = set()
    pages: list[str] = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in NOT_PROXIED:
            continue
        if rule.endpoint.startswith("reader.") or rule.endpoint in _reader_endpoints():
            path = _sample(rule.rule)
            paths.add(path)
            if rule.endpoint.startswith("reader.") and "GET" in (rule.methods or ()):
                pages.append(path)
    client = app.test_client()
    for page in pages:
        text = client.get(page).get_data(as_text=True)
        paths |= set(re.findall(r"/static/[A-Za-z0-9_./-]+", text))
    return paths


def newsroom_paths(app: Flask) -> set[str]:
    return {
        _sample(rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith(NEWSROOM_PREFIXES)
        or (rule.rule.startswith("/api/") and rule.endpoint not in _reader_endpoints())
    }


def nginx_locations(document: str) -> list[tuple[str, str]]:
    """(modifier, pattern) of every `location` in the document's nginx code blocks."""
    text = (ROOT / document).read_text(encoding="utf-8")
    blocks = re.findall(r"```nginx\n(.*?)```", text, re.S)
    return re.findall(r"^\s*location\s+(~\*?|=|\^~)?\s*(\S+)\s*\{", "\n".join(blocks), re.M)


def routed(locations: list[tuple[str, str]], path: str) -> bool:
    for modifier, pattern in locations:
        if modifier == "~" and re.search(pattern, path):
            return True
        if modifier == "~*" and re.search(pattern, path, re.I):
            return True
        if modifier == "=" and path == pattern:
            return True
        if modifier in ("", "^~") and path.startswith(pattern) and pattern != "/":
            return True
    return False


def test_the_derived_reader_paths_are_the_ones_the_browser_uses(app: Flask) -> None:
    """A guard on the derivation itself: the scripts, the API calls and the icons are in it."""
    paths = reader_paths(app)
    for needed in (
        "/sw.js",
        "/newsflash.js",
        "/manage",
        "/manage.js",
        "/manage.choices.js",
        "/manifest.webmanifest",
        "/api/v1/config",
        "/api/v1/events",
        "/api/v1/subscriptions/preferences",
        "/api/v1/stories/open",
        "/api/v1/stories/budget-2026/follow",
        "/static/icons/icon-192.png",
        "/static/icons/apple-touch-icon.png",
    ):
        assert needed in paths, needed
    assert "/" not in paths


@pytest.mark.parametrize("document", DOCUMENTS)
def test_the_documented_proxy_routes_every_reader_path(app: Flask, document: str) -> None:
    locations = nginx_locations(document)
    assert locations, f"{document} has no nginx location"
    missing = sorted(p for p in reader_paths(app) if not routed(locations, p))
    assert not missing, f"{document}: the nginx example does not send {missing} to Newsflash"


@pytest.mark.parametrize("document", DOCUMENTS)
def test_the_documented_proxy_keeps_the_newsroom_and_the_home_page_off(
    app: Flask, document: str
) -> None:
    locations = nginx_locations(document)
    exposed = sorted(p for p in newsroom_paths(app) | {"/"} if routed(locations, p))
    assert not exposed, f"{document}: the reader location also publishes {exposed}"


def test_a_path_left_out_of_the_proxy_is_caught() -> None:
    """The check can fail: a location without the stories API misses a follow."""
    locations = [("~", r"^/(sw\.js|api/v1/(config|subscriptions|events))(/.*)?$")]
    assert routed(locations, "/api/v1/subscriptions/preferences")
    assert not routed(locations, "/api/v1/stories/budget-2026/follow")
    assert not routed(locations, "/manage.choices.js")
