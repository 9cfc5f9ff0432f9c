"""Redirects stay on this site: hostile `next=` values (Hypothesis) never yield a Location a
browser resolves to another origin, and never a 500."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from urllib.parse import urljoin, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.accounts import Role
from service.redirects import safe_next
from tests.support.newsroom import PASSWORD, csrf_of
from tests.support.newsroom_site import logged_in, one_account_app

ORIGIN = "http://127.0.0.1:8000"
EMAIL = "editor@news.example"

# The pieces open redirects are made of: slashes and backslashes a browser folds together,
# what the WHATWG URL parser strips (tab, newline, CR, leading C0 controls and spaces),
# percent-encodings of all of these (once and twice), schemes in any case, hosts, userinfo,
# and look-alike Unicode slashes and dots.
PIECES = [
    "/", "//", "///", "\\", "\\\\", "/\\", "\\/", "\t", "\n", "\r", "\r\n", " ", "\x00",
    "\x01", "\x0b", "\x0c", "\x1f", "\x7f", "\u00a0", "\ufeff", "\u2028", "%2f", "%2F",
    "%5c", "%5C", "%09", "%0a", "%0D", "%00", "%20", "%252f", "%255c", "%25", "%",
    "http:", "https:", "HTTPS:", "hTtP:", "javascript:", "JaVaScRiPt:", "data:", "file:",
    "evil.example", "evil.example:443", "127.0.0.1:8000", "@", "user:pw@", "?", "#", ".",
    "..", "./", "../", ":", ";", "\uff0f", "\u2215", "\u3002", "\uff3c", "editor", "alert(1)",
]  # fmt: skip

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
HOSTILE = st.one_of(
    st.lists(st.sampled_from(PIECES), min_size=1, max_size=8).map("".join),
    st.tuples(st.lists(st.sampled_from(PIECES), max_size=4).map("".join), TEXT).map("".join),
    st.tuples(st.just("/"), TEXT).map("".join),
    TEXT,
)


def browser_resolves(location: str) -> tuple[str, str]:
    """(scheme, host:port) a browser on ORIGIN goes to: the WHATWG parser first strips leading
    and trailing C0 controls and spaces, removes tab/newline/CR and, in http(s) URLs, reads a
    backslash as a slash; then it resolves against the current page."""
    cleaned = location.strip("".join(map(chr, range(0x21))))
    cleaned = re.sub(r"[\t\n\r]", "", cleaned).replace("\\", "/")
    resolved = urlsplit(urljoin(ORIGIN + "/editor/login", cleaned))
    return resolved.scheme, resolved.netloc


def assert_on_site(location: str) -> None:
    assert browser_resolves(location) == ("http", "127.0.0.1:8000"), repr(location)
    # Stricter than any browser: one slash, then neither slash nor backslash; printable ASCII.
    assert re.fullmatch(r"/(?:[^/\\][\x21-\x7e]*)?", location), repr(location)


@pytest.fixture(scope="module")
def app(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str, vapid_pem: str
) -> Iterator[Flask]:
    yield from one_account_app(tmp_path_factory.mktemp("redirects"), vapid_pem, EMAIL, Role.EDITOR)


@pytest.fixture(scope="module")
def editor(app: Flask) -> FlaskClient:
    return logged_in(app, EMAIL)


def _login(app: Flask, target: str, password: str = PASSWORD) -> tuple[int, str | None]:
    client = app.test_client()
    token = csrf_of(client.get("/editor/login").text)
    answer = client.post(
        "/editor/login",
        data={"email": EMAIL, "password": password, "next": target, "csrf_token": token},
    )
    return answer.status_code, answer.headers.get("Location")


@pytest.mark.parametrize(
    "target",
    [
        "/\n",
        "/editor\r\nSet-Cookie: x=1",
        "//evil.example",
        "/\\evil.example",
        "\\/evil.example",
        "/\t/evil.example",
        "/%2F/evil.example",
        "/%5Cevil.example",
        "/%252F%252Fevil.example",
        " //evil.example",
        "\x00//evil.example",
        "HTTPS://evil.example",
        "JavaScript:alert(1)",
        "evil.example",
    ],
)
def test_hostile_next_after_login_goes_to_the_newsroom(app: Flask, target: str) -> None:
    """Before the fix a newline was a 500 and "/\\t/evil.example" left the site."""
    assert _login(app, target) == (302, "/editor/")


def test_a_path_on_this_site_is_kept(app: Flask, editor: FlaskClient) -> None:
    assert _login(app, "/editor/scheduled?notice=hi%20there#top") == (
        302,
        "/editor/scheduled?notice=hi%20there#top",
    )
    assert _login(app, "/editor/caf\u00e9") == (302, "/editor/caf%C3%A9")
    answer = editor.get("/editor/login", query_string={"next": "/ops"})
    assert answer.status_code == 302 and answer.headers["Location"] == "/ops"


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(target=HOSTILE)
def test_no_next_value_leaves_the_site_or_fails(editor: FlaskClient, target: str) -> None:
    answer = editor.get("/editor/login", query_string={"next": target})
    assert answer.status_code == 302
    assert_on_site(answer.headers["Location"])
    kept = safe_next(target)
    assert kept is None or answer.headers["Location"] == kept


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(target=HOSTILE)
def test_no_next_value_breaks_the_login_form(app: Flask, target: str) -> None:
    client = app.test_client()
    page = client.get("/editor/login", query_string={"next": target})
    assert page.status_code == 200
    hidden = re.search(r'name="next" value="([^"]*)"', page.text)
    if hidden is not None:
        assert_on_site(html.unescape(hidden.group(1)))
    wrong = client.post(
        "/editor/login",
        data={"email": EMAIL, "password": "x", "next": target, "csrf_token": csrf_of(page.text)},
    )
    assert wrong.status_code == 401


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(target=HOSTILE)
def test_no_next_value_leaves_the_site_after_a_real_login(app: Flask, target: str) -> None:
    status, location = _login(app, target)
    assert status == 302 and location is not None
    assert_on_site(location)


@pytest.mark.parametrize("target", ["/?", "/#", "/editor/?#", "/editor/alerts?"])
def test_an_empty_query_or_fragment_is_kept_as_werkzeug_sends_it(
    editor: FlaskClient, target: str
) -> None:
    """Hypothesis found "/?": the Location was "/", not the kept "/?"."""
    answer = editor.get("/editor/login", query_string={"next": target})
    assert answer.status_code == 302
    assert answer.headers["Location"] == safe_next(target)
    assert_on_site(answer.headers["Location"])
