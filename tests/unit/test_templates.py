"""Alert templates: the admin's rules for one, and what applying one does to an API body."""

from __future__ import annotations

import pytest

from core.errors import ValidationError
from core.model import Urgency
from core.templates import Template, apply_to_body, parse_template, with_prefix

TOPICS = {"breaking", "politics"}
BREAKING = Template(1, "breaking", "BREAKING: ", ("breaking",), Urgency.HIGH, 3600)


def test_a_template_adds_its_prefix_once_and_fills_only_what_the_body_leaves_out() -> None:
    body = {"title": "Quake", "body": "b", "url": "u", "template": "breaking"}
    assert apply_to_body(body, BREAKING) == {
        "title": "BREAKING: Quake",
        "body": "b",
        "url": "u",
        "topics": ["breaking"],
        "urgency": "high",
        "ttl": 3600,
    }
    own = apply_to_body({**body, "title": "breaking: Quake", "urgency": "low", "ttl": 60}, BREAKING)
    assert own["title"] == "BREAKING: Quake" and own["urgency"] == "low" and own["ttl"] == 60


def test_another_templates_prefix_is_replaced_not_stacked() -> None:
    assert with_prefix("LIVE: Quake", "UPDATE: ", ["LIVE: "]) == "UPDATE: Quake"
    assert with_prefix("  Quake", "LIVE: ") == "LIVE: Quake"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "Has Space", "ttl": 3600}, "name"),
        ({"name": "", "ttl": 3600}, "name"),
        ({"name": "x" * 33, "ttl": 3600}, "name"),
        ({"name": "ok", "prefix": "P" * 41, "ttl": 3600}, "prefix"),
        ({"name": "ok", "prefix": "A\nB", "ttl": 3600}, "prefix"),
        ({"name": "ok", "topics": ["nope"], "ttl": 3600}, "topics"),
        ({"name": "ok", "topics": "breaking", "ttl": 3600}, "topics"),
        ({"name": "ok", "urgency": "panic", "ttl": 3600}, "urgency"),
        ({"name": "ok", "ttl": 5}, "ttl"),
        ({"name": "ok", "ttl": "soon"}, "ttl"),
        ({"name": "ok", "ttl": "\u00b2"}, "ttl"),  # str.isdigit() says yes, int() says no
        ({"name": "ok", "ttl": "9" * 5000}, "ttl"),
    ],
)
def test_a_bad_template_is_refused_naming_the_field(body: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        parse_template(body, TOPICS)
    assert refused.value.field == field


def test_a_good_template_is_normalised() -> None:
    fields = parse_template(
        {
            "name": " Live ",
            "prefix": "LIVE:",
            "topics": ["breaking"],
            "urgency": "normal",
            "ttl": "14400",
        },
        TOPICS,
    )
    assert (fields.name, fields.prefix, fields.topics, fields.ttl_s) == (
        "live",
        "LIVE: ",
        ("breaking",),
        14400,
    )
