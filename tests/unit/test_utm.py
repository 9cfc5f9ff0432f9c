"""UTM tags on click-through URLs: properties over generated URLs (Hypothesis), and the alert."""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.model import Alert, AlertKind, AlertStatus, Urgency
from core.utm import UtmTags, click_through, with_utm

TAGS = UtmTags("newsflash", "push")
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign")

_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
_key = st.one_of(st.sampled_from([*UTM_KEYS, "id", "a", "q", "utm_term"]), _text.filter(bool))
_pairs = st.lists(st.tuples(_key, _text), max_size=5)


@st.composite
def urls(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["https", "http"]))
    host = draw(st.sampled_from(["news.example", "news.example:8443", "127.0.0.1"]))
    segments = draw(st.lists(_text, max_size=3))
    path = "/" + "/".join(quote(s, safe="") for s in segments)
    url = f"{scheme}://{host}{path}"
    query = draw(st.one_of(st.none(), st.just(""), _pairs.map(urlencode)))
    if query is not None:
        url += "?" + query + draw(st.sampled_from(["", "&"]))
    fragment = draw(st.one_of(st.none(), _text.map(lambda f: quote(f, safe="?/&=#"))))
    if fragment is not None:
        url += "#" + fragment
    return url


@given(urls(), st.integers(1, 10**18))
def test_tags_are_added_once_and_nothing_else_changes(url: str, alert_id: int) -> None:
    tagged = with_utm(url, TAGS, f"alert-{alert_id}")
    before, after = urlsplit(url), urlsplit(tagged)
    assert (after.scheme, after.netloc, after.path) == (before.scheme, before.netloc, before.path)
    # The fragment stays last and whole.
    assert after.fragment == before.fragment and tagged.endswith(url[len(url.split("#")[0]) :])
    # Existing parameters keep their bytes and their order: the old query is a prefix.
    assert after.query.startswith(before.query)
    old = parse_qsl(before.query, keep_blank_values=True)
    new = parse_qsl(after.query, keep_blank_values=True)
    assert new[: len(old)] == old
    present = {k for k, _ in old}
    for key in UTM_KEYS:
        count = sum(1 for k, _ in new if k == key)
        assert count == (sum(1 for k, _ in old if k == key) if key in present else 1)
    added = dict(new[len(old) :])
    expected = {
        "utm_source": "newsflash",
        "utm_medium": "push",
        "utm_campaign": f"alert-{alert_id}",
    }
    assert added == {k: v for k, v in expected.items() if k not in present}
    # Tagging twice is tagging once.
    assert with_utm(tagged, TAGS, f"alert-{alert_id}") == tagged


@pytest.mark.parametrize(
    ("url", "tagged"),
    [
        (
            "https://news.example/a",
            "https://news.example/a?utm_source=newsflash&utm_medium=push&utm_campaign=alert-7",
        ),
        (
            "https://news.example/a?x=1&y=%20#live",
            "https://news.example/a?x=1&y=%20&utm_source=newsflash&utm_medium=push"
            "&utm_campaign=alert-7#live",
        ),
        (
            "https://news.example/a?utm_source=newsletter&",
            "https://news.example/a?utm_source=newsletter&utm_medium=push&utm_campaign=alert-7",
        ),
        (
            "https://news.example/a?utm_source=x&utm_medium=y&utm_campaign=z#f?g",
            "https://news.example/a?utm_source=x&utm_medium=y&utm_campaign=z#f?g",
        ),
    ],
)
def test_examples_an_editor_would_check(url: str, tagged: str) -> None:
    assert with_utm(url, TAGS, "alert-7") == tagged


def _alert(**over: object) -> Alert:
    base: dict[str, object] = {
        "id": 7,
        "title": "t",
        "body": "b",
        "url": "https://news.example/a#top",
        "topics": ("breaking",),
        "urgency": Urgency.HIGH,
        "ttl_s": 60,
        "story_key": "nfx",
        "status": AlertStatus.QUEUED,
        "kind": AlertKind.NORMAL,
        "created_at": 0.0,
    }
    base.update(over)
    return Alert(**base)  # type: ignore[arg-type]


def test_the_payload_url_is_tagged_unless_off_for_the_alert_or_a_test_send() -> None:
    assert click_through(_alert(), TAGS).url == (
        "https://news.example/a?utm_source=newsflash&utm_medium=push&utm_campaign=alert-7#top"
    )
    assert click_through(_alert(utm=False), TAGS).url == "https://news.example/a#top"
    assert click_through(_alert(kind=AlertKind.TEST), TAGS).url == "https://news.example/a#top"
    assert click_through(_alert(), None).url == "https://news.example/a#top"
