"""A forged Host header never makes the service name another site: the demo article's og:url,
every other absolute URL it builds and every redirect's Location use a configured public origin
(the one the request came to if it is one of NEWSFLASH_PUBLIC_ORIGINS, else the first), on
every page a GET reaches, signed in or not.
A cache in front keyed on the path alone would otherwise hand a forged page to every reader."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from flask import Flask

from core.accounts import Role
from tests.support.newsroom_site import logged_in, one_account_app
from tests.support.services import ROOT

ORIGINS = "https://news.example,https://m.news.example"
FORGED = "evil.example"
EMAIL = "admin@news.example"


@pytest.fixture(scope="module")
def app(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str, vapid_pem: str
) -> Iterator[Flask]:
    tmp = tmp_path_factory.mktemp("forged-host")
    yield from one_account_app(tmp, vapid_pem, EMAIL, Role.ADMIN, PUBLIC_ORIGINS=ORIGINS)


def _get_paths(app: Flask) -> list[str]:
    """Every GET route without parameters, and each of them with and without its last slash
    (where Werkzeug redirects, it builds an absolute Location)."""
    paths = sorted(
        {r.rule for r in app.url_map.iter_rules() if "GET" in (r.methods or ()) and not r.arguments}
    )
    return sorted({*paths, *(p.rstrip("/") for p in paths if p != "/"), *(p + "/" for p in paths)})


@pytest.mark.parametrize(
    ("base", "host", "named"),
    [
        ("http://localhost", FORGED, "https://news.example/"),
        ("https://localhost", f"{FORGED}:443", "https://news.example/"),
        ("http://localhost", "news.example:abc", "https://news.example/"),
        ("http://localhost", "127.0.0.1:8000", "https://news.example/"),
        ("http://localhost", "m.news.example", "https://news.example/"),  # http: not listed
        ("https://localhost", "M.News.Example:443", "https://m.news.example/"),  # a listed one
    ],
)
def test_the_demo_article_names_a_configured_origin_whatever_the_host(
    app: Flask, base: str, host: str, named: str
) -> None:
    page = app.test_client().get("/", base_url=base, headers={"Host": host}).text
    assert re.findall(r'<meta property="og:url" content="([^"]*)"', page) == [named]


def test_no_answer_to_a_get_names_a_forged_host(app: Flask) -> None:
    checked = 0
    for client in (app.test_client(), logged_in(app, EMAIL)):
        for path in _get_paths(app):
            for headers in ({"Host": FORGED}, {"X-Forwarded-Host": FORGED}):
                answer = client.get(path, headers=headers)
                location = answer.headers.get("Location", "")
                assert FORGED not in location, (path, headers, location)
                if location.startswith(("http:", "https:")):
                    assert location.startswith("https://news.example/"), (path, location)
                body = answer.get_data(as_text=True) if answer.is_sequence else ""
                assert FORGED not in body, (path, headers)
                checked += 1
    assert checked > 100


def test_no_code_builds_a_url_from_the_request_host() -> None:
    """The rest of the request's own URL (request.host, .url_root, .host_url, .base_url,
    .url) is the client's word: links are built with url_for, which the app binds to the
    public origin (service/public_urls.py)."""
    pattern = re.compile(r"request\.(host|url_root|host_url|base_url|url|root_url)\b")
    found = [
        f"{path.relative_to(ROOT)}:{n}"
        for folder in ("service", "core", "workers")
        for path in sorted((ROOT / folder).rglob("*"))
        if path.suffix in {".py", ".html", ".txt", ".xml"}
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert found == []
