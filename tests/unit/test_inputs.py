"""core.inputs: the floor every JSON body, form field and query parameter stands on."""

from __future__ import annotations

import json
import sys

import pytest

from core.alerts import AlertRules, parse_alert_request
from core.errors import ValidationError
from core.inputs import (
    MAX_JSON_DEPTH,
    check_text,
    finite_number,
    json_depth,
    parse_id,
    parse_json,
    whole_number,
)

RULES = AlertRules(("http://127.0.0.1:8000",), frozenset({"breaking"}), ("breaking",), 3600)


def refusal(raw: str | bytes) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        parse_json(raw.encode() if isinstance(raw, str) else raw)
    return caught.value


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("1", 0),
        ("[]", 1),
        ('{"a": [1, {"b": []}]}', 4),
        ('["[[[[", "\\"[[[", {"k]}": "{{{"}]', 2),  # brackets inside strings don't count
        ('"\\\\"', 0),
    ],
)
def test_json_depth_counts_only_structure(text: str, depth: int) -> None:
    assert json_depth(text) == depth
    assert json.loads(text) is not None


def test_depth_is_checked_without_recursion_far_past_the_stack() -> None:
    deep = "[" * (sys.getrecursionlimit() * 50) + "]" * (sys.getrecursionlimit() * 50)
    assert "32 deep" in refusal(deep).message
    assert parse_json(("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH).encode()) is not None
    assert "deep" in refusal('{"a":' * 40 + "1" + "}" * 40).message


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400", "-1e999", "9" * 20])
def test_non_finite_and_oversized_numbers_name_their_field(number: str) -> None:
    error = refusal(f'{{"keys": {{"n": [{number}]}}}}')
    assert error.field == "keys.n.0"
    assert "finite" in error.message


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ('{"endpoint": "https://x/\\u0000"}', "endpoint"),
        ('{"a": {"b": "\\u001b[31m"}}', "a.b"),
        ('{"a": ["ok", "\\u007f"]}', "a.1"),
        ('{"a": "\\ud800"}', "a"),
        ('{"a\\u0000": 1}', None),
    ],
)
def test_control_characters_and_lone_surrogates_name_their_field(
    raw: str, field: str | None
) -> None:
    assert refusal(raw).field == field


def test_lines_and_tabs_pass_the_floor_and_plain_values_come_through() -> None:
    value = parse_json(b'{"body": "one\\r\\ntwo\\tthree", "n": 1.5, "i": -9223372036854775808}')
    assert value == {"body": "one\r\ntwo\tthree", "n": 1.5, "i": -(2**63)}


@pytest.mark.parametrize("raw", [b"\xff{}", b"{", b"", b"\xef\xbb\xbf{}", b"[1,]"])
def test_not_utf8_or_not_json_is_a_validation_error(raw: bytes) -> None:
    refusal(raw)


def test_check_text_per_field() -> None:
    assert check_text("a\nb", "body", multiline=True) == "a\nb"
    with pytest.raises(ValidationError) as caught:
        check_text("a\nb", "title")
    assert caught.value.field == "title" and "U+000A" in caught.value.message
    with pytest.raises(ValidationError):
        check_text("a\x00b", "body", multiline=True)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 10**400, True, "1"])
def test_finite_number_refuses(value: object) -> None:
    with pytest.raises(ValidationError):
        finite_number(value, "n")


@pytest.mark.parametrize("value", ["\u00b2", "\u0661", "0", -1, "9" * 20, 2**63, True, "1\x00"])
def test_parse_id_refuses_what_no_database_id_is(value: object) -> None:
    with pytest.raises(ValidationError):
        parse_id(value, "alert")
    assert parse_id("42", "alert") == parse_id(42, "alert") == 42


def test_alert_fields_one_line_except_the_body() -> None:
    base = {"title": "T", "body": "line\r\nnext", "url": "http://127.0.0.1:8000/a"}
    assert parse_alert_request(base, RULES, 0.0).body == "line\nnext"
    for field, value in (("title", "a\tb"), ("url", "http://127.0.0.1:8000/a\nb")):
        with pytest.raises(ValidationError) as caught:
            parse_alert_request({**base, field: value}, RULES, 0.0)
        assert caught.value.field == field
    for send_at in (float("nan"), 10**400):
        with pytest.raises(ValidationError) as caught:
            parse_alert_request({**base, "send_at": send_at}, RULES, 0.0)
        assert caught.value.field == "send_at"


def test_whole_numbers_are_plain_ascii_digits_within_a_length() -> None:
    assert whole_number("0042", 4) == 42 and whole_number("7", 1) == 7
    # str.isdigit() says yes to all of these; int() refuses the first three outright.
    for odd in ("\u00b2", "\u2460", "9" * 5000, "\u0663", "12345"):
        assert whole_number(odd, 4) is None, odd
    for bad in ("", "-1", "+1", " 1", "1.0", "1e3", "0x1"):
        assert whole_number(bad, 4) is None, bad
