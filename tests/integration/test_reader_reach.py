"""The reader's reach: the web app manifest for iPhone and iPad, and reader texts in English and Kiswahili."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_lib

from tests.support.reader_api import Api, browser_sub, build_api, dispose_api
from tests.support.services import TEST_REDIS_DB, engine_database


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, vapid_pem: str, redis_url: str) -> Iterator[Api]:
    redis_lib.Redis.from_url(f"redis://127.0.0.1:6379/{TEST_REDIS_DB}").flushdb()
    tmp = tmp_path_factory.mktemp("reach")
    built = build_api(
        tmp / "var",
        f"sqlite:///{tmp}/newsflash.db",
        vapid_pem,
        TOPICS="breaking:Breaking news|Habari za dharura:default,sport:Sport",
        THEME_COLOR="#0B4F9C",
        SITE_NAME="Mombasa Daily",
        SITE_SHORT_NAME="Daily",
    )
    try:
        yield built
    finally:
        dispose_api(built)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "a PNG file"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_the_manifest_makes_the_site_a_home_screen_web_app(site: Api) -> None:
    page = site.client.get("/")
    assert '<link rel="manifest" href="/manifest.webmanifest">' in page.text
    answer = site.client.get("/manifest.webmanifest")
    assert answer.status_code == 200
    assert answer.mimetype == "application/manifest+json"
    manifest = answer.json
    # iOS and iPadOS deliver web push only to Home Screen apps shown standalone or fullscreen.
    assert manifest["display"] == "standalone"
    assert manifest["name"] == "Mombasa Daily"
    assert manifest["short_name"] == "Daily"
    assert manifest["theme_color"] == "#0b4f9c"
    assert manifest["start_url"] == "/"
    sizes = {(icon["sizes"], icon["purpose"]) for icon in manifest["icons"]}
    assert {("192x192", "any"), ("512x512", "any"), ("512x512", "maskable")} <= sizes
    for icon in manifest["icons"]:
        image = site.client.get(icon["src"])
        assert image.status_code == 200 and image.mimetype == "image/png"
        side = int(icon["sizes"].split("x")[0])
        assert png_size(image.data) == (side, side)


@pytest.mark.parametrize(
    ("query", "header", "lang"),
    [
        ("?lang=sw", None, "sw"),
        ("?lang=fr,sw-KE,en", None, "sw"),
        ("?lang=en-KE,sw", None, "en"),
        ("", "sw-KE,sw;q=0.9,en;q=0.5", "sw"),
        ("", "fr-FR", "en"),
        ("?lang=de", "sw", "en"),
    ],
)
def test_config_speaks_the_readers_language(
    site: Api, query: str, header: str | None, lang: str
) -> None:
    headers = {"Accept-Language": header} if header else {}
    config = site.client.get("/api/v1/config" + query, headers=headers)
    assert config.status_code == 200
    assert config.json["lang"] == lang
    assert "Accept-Language" in config.headers["Vary"]
    prompt = config.json["prompt"]
    topics = {t["slug"]: t["name"] for t in config.json["topics"]}
    if lang == "sw":
        assert (prompt["accept"], prompt["dismiss"]) == ("Ndiyo, Asante", "Sio sasa")
        assert prompt["title"] == "Kuwa wa kwanza kujua."
        assert topics == {"breaking": "Habari za dharura", "sport": "Sport"}
    else:
        assert (prompt["accept"], prompt["dismiss"]) == ("Yes, Thanks", "Not now")
        assert topics == {"breaking": "Breaking news", "sport": "Sport"}
    assert prompt["reaskAfterOffDays"] == 90


def test_every_reader_text_exists_in_both_languages(site: Api) -> None:
    english = site.client.get("/api/v1/config?lang=en").json["prompt"]
    swahili = site.client.get("/api/v1/config?lang=sw").json["prompt"]
    assert english.keys() == swahili.keys()
    differ = {k for k in english if english[k] != swahili[k]}
    assert differ >= {k for k, v in english.items() if isinstance(v, str)}, (
        "nothing left untranslated"
    )


def test_the_default_language_setting_applies_when_nothing_matches(
    tmp_path: Path, vapid_pem: str, redis_url: str
) -> None:
    built = build_api(tmp_path / "var", f"sqlite:///{tmp_path}/n.db", vapid_pem, DEFAULT_LANG="sw")
    try:
        config = built.client.get("/api/v1/config", headers={"Accept-Language": "fr"})
        assert config.json["lang"] == "sw"
        assert built.client.get("/manifest.webmanifest").json["lang"] == "sw"
    finally:
        dispose_api(built)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, vapid_pem: str
) -> Iterator[Api]:
    """The reader API on SQLite and on PostgreSQL (the language column on both)."""
    request.getfixturevalue("redis_url")
    tmp = tmp_path_factory.mktemp(f"reach-{request.param}")
    with engine_database(request, tmp) as url:
        built = build_api(tmp / "var", url, vapid_pem)
        try:
            yield built
        finally:
            dispose_api(built)


def test_the_readers_language_is_stored_and_kept(api: Api) -> None:
    sub = browser_sub(lang="sw")
    assert api.post("/api/v1/subscriptions", sub).status_code == 201
    assert api.row(sub["endpoint"])["lang"] == "sw"  # type: ignore[index]
    # The same browser again without a language (an older widget, the service worker): kept.
    plain = {k: v for k, v in sub.items() if k != "lang"}
    assert api.post("/api/v1/subscriptions", plain).status_code == 200
    assert api.row(sub["endpoint"])["lang"] == "sw"  # type: ignore[index]
    # A new endpoint from pushsubscriptionchange keeps the reader's language.
    new = browser_sub()
    del new["topics"]
    moved = api.post(
        "/api/v1/subscriptions/change",
        {"oldEndpoint": sub["endpoint"], "oldAuth": sub["keys"]["auth"], "subscription": new},
    )
    assert moved.status_code in (200, 201), moved.json
    assert api.row(new["endpoint"])["lang"] == "sw"  # type: ignore[index]
    assert api.row(browser_sub()["endpoint"]) is None
    fresh = browser_sub()
    assert api.post("/api/v1/subscriptions", fresh).status_code == 201
    assert api.row(fresh["endpoint"])["lang"] == "en", "English unless the widget says otherwise"


@pytest.mark.parametrize("lang", ["fr", "", 7, "SW", "sw-KE"])
def test_an_unknown_language_is_refused_by_name_and_nothing_is_stored(
    api: Api, lang: object
) -> None:
    sub = browser_sub(lang=lang)
    answer = api.post("/api/v1/subscriptions", sub)
    assert answer.status_code == 400
    assert answer.json["error"]["field"] == "lang"
    assert api.row(sub["endpoint"]) is None
