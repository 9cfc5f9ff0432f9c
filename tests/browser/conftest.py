"""Browser-test fixtures: the reader site on a real HTTP server, and a real headless Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis as redis_lib

from core.accounts import Role
from tests.support.browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    ReaderSite,
    require_browser,
)
from tests.support.live_stack import served_app
from tests.support.services import TEST_REDIS_DB, free_port


@pytest.fixture(scope="module")
def reader_site(
    tmp_path_factory: pytest.TempPathFactory, vapid_pem: str, redis_url: str
) -> Iterator[ReaderSite]:
    tmp = tmp_path_factory.mktemp("reader-site")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    try:
        with served_app(
            tmp,
            f"sqlite:///{tmp}/newsflash.db",
            redis_url,
            vapid_pem,
            port,
            PUBLIC_ORIGINS=base,
            RATE_LIMIT_SUBSCRIBE="10000 per minute",
            # The default topics, named in both languages as NEWSFLASH_TOPICS ships them.
            TOPICS="breaking:Breaking news|Habari za dharura:default,politics:Politics|Siasa,"
            "business:Business|Biashara,sport:Sport|Michezo",
        ) as live:
            token = live.token("browser-tests", Role.EDITOR)
            yield ReaderSite(base, live.app, live.engine, token)
    finally:
        # Alerts published here queue Celery messages nobody consumes: drop them.
        redis_lib.Redis.from_url(f"redis://127.0.0.1:6379/{TEST_REDIS_DB}").flushdb()


# One driver and one Chromium for the whole browser package (each test opens its own context):
# started per module they cost about 1.5 s a module, 40 s of make test.
@pytest.fixture(scope="package")
def playwright_driver() -> Iterator[Any]:
    require_browser("Chromium", CHROMIUM)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def chromium_browser(playwright_driver: Any) -> Iterator[Any]:
    """Headless Debian Chromium for the newsroom and ops pages (one for the browser tests; each
    test or module opens its own context)."""
    browser = playwright_driver.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
    )
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture(scope="module")
def chromium_profile(
    playwright_driver: Any, reader_site: ReaderSite, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """One real Chromium (persistent profile) per module: launching one per test is slow."""
    context = playwright_driver.chromium.launch_persistent_context(
        str(tmp_path_factory.mktemp("chromium-profile")),
        executable_path=CHROMIUM,
        headless=True,
        args=CHROMIUM_ARGS,
        viewport={"width": 1280, "height": 720},
        timeout=30_000,
    )
    try:
        context.set_default_timeout(10_000)
        context.on("console", lambda m: print("console:", m.type, m.text))
        yield context
    finally:
        context.close()


@pytest.fixture
def chromium(chromium_profile: Any, reader_site: ReaderSite) -> Iterator[Any]:
    """The module's Chromium as a first-time visitor: the site's storage wiped (service workers,
    IndexedDB, localStorage, caches), notifications allowed, one blank page."""
    context = chromium_profile
    for page in context.pages:
        page.close()
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Storage.clearDataForOrigin", {"origin": reader_site.base, "storageTypes": "all"})
    cdp.detach()
    context.clear_permissions()
    context.grant_permissions(["notifications"], origin=reader_site.base)
    yield context
