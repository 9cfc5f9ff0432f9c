"""What any client-supplied text, number or JSON document must be before the domain sees it."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from core.errors import ValidationError

# Deep enough for any PushSubscription, alert or CMS article event; far below the depth at
# which Python's recursive JSON decoder (and every walk over its result) runs out of stack.
MAX_JSON_DEPTH = 32
# A JSON integer beyond a signed 64-bit one fits no database column and no float exactly.
MAX_JSON_INT = 2**63 - 1

# C0 controls and DEL. NUL can't be held by PostgreSQL text at all; the others have no business
# in a URL, an address, an id or a one-line title, and confuse logs and the audit page.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Text that may run over several lines (an alert body, a form's textarea) keeps tab, LF and CR.
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# One JSON token the depth scan cares about: a whole string (skipped) or a bracket.
_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)


def control_char(value: str, *, multiline: bool = False) -> str | None:
    """The first forbidden control character in value (as U+XXXX), or None."""
    found = (_CONTROL_BUT_LINES if multiline else _CONTROL).search(value)
    return None if found is None else f"U+{ord(found.group()):04X}"


def encodable(value: str) -> bool:
    """False for lone surrogates (JSON can escape them; UTF-8, databases and payloads can't)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_text(value: str, field: str, *, multiline: bool = False) -> str:
    """Refuse, naming the field, text no database column or notification should hold."""
    bad = control_char(value, multiline=multiline)
    if bad is not None:
        raise ValidationError(f"{field} contains a control character ({bad})", field)
    if not encodable(value):
        raise ValidationError(f"{field} is not valid Unicode text", field)
    return value


def finite_number(value: object, field: str) -> float:
    """A JSON number as a float: booleans, NaN, ±Infinity and overflowing integers refused."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"{field} must be a number", field)
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise ValidationError(f"{field} must be a finite number", field)
    return number


def whole_number(text: str, max_digits: int) -> int | None:
    """`text` as a whole number if it is 1 to `max_digits` ASCII digits, else None.

    For every number read from text someone else wrote (a header, a query string, a form):
    str.isdigit() alone also takes '²' and other digits int() refuses, and int() refuses more
    than 4,300 digits, so `isdigit()` then `int()` is a ValueError waiting to happen."""
    if 0 < len(text) <= max_digits and text.isascii() and text.isdigit():
        return int(text)
    return None


def parse_id(value: object, field: str) -> int:
    """A database id sent as a JSON number or a string of ASCII digits."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and (found := whole_number(value, 19)) is not None:
        number = found
    else:
        raise ValidationError(f"{field} must be an id", field)
    if not 0 < number <= MAX_JSON_INT:
        raise ValidationError(f"{field} must be an id", field)
    return number


class _BadNumber:
    """Stands in for NaN, ±Infinity, 1e400 or a huge integer until the walk can name its field."""

    def __init__(self, text: str) -> None:
        self.text = text


def _parse_float(text: str) -> float | _BadNumber:
    number = float(text)
    return number if math.isfinite(number) else _BadNumber(text)


def _parse_int(text: str) -> int | _BadNumber:
    # Refuse on length first: int() of a few thousand digits is quadratic, and Python's own cap
    # raises a ValueError that would hide which field it was.
    if len(text.lstrip("-")) > 19:
        return _BadNumber(text)
    number = int(text)
    return number if -MAX_JSON_INT - 1 <= number <= MAX_JSON_INT else _BadNumber(text)


def json_depth(text: str) -> int:
    """How deeply arrays and objects nest, found without recursion (strings are skipped whole).

    For valid JSON this is exact; for invalid JSON it bounds what the decoder reaches before it
    stops, so checking it first keeps the recursive decoder from ever running out of stack.
    """
    depth = deepest = 0
    for token in _JSON_TOKEN.finditer(text):
        char = token.group()
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def parse_json(raw: bytes, what: str = "the body", max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Bytes from a client → a JSON value every string and number of which is safe to use.

    Raises ValidationError: not UTF-8, nested deeper than max_depth, not JSON, a non-finite or
    out-of-range number, or a string (key or value) holding a control character other than
    tab, LF and CR, or a lone surrogate. Fields refine this (a title is one line) in their own
    validators; this is the floor every JSON route stands on.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError(f"{what} is not UTF-8 text") from None
    if json_depth(text) > max_depth:
        raise ValidationError(f"{what} nests arrays and objects more than {max_depth} deep")
    try:
        value = json.loads(
            text, parse_float=_parse_float, parse_int=_parse_int, parse_constant=_BadNumber
        )
    except (ValueError, RecursionError):
        raise ValidationError(f"{what} is not valid JSON") from None
    refuse_unsafe_values(value)
    return value


def refuse_unsafe_values(value: Any) -> None:
    """Walk a parsed document (without recursion) and refuse the first unsafe value by its path."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            check_text(item, path or "the body", multiline=True)
        elif isinstance(item, _BadNumber):
            raise ValidationError(
                f"{path or 'the body'} must be a finite number within 64 bits (not {item.text[:20]})",
                path or None,
            )
        elif isinstance(item, Mapping):
            for key, child in item.items():
                if control_char(key) is not None or not encodable(key):
                    where = path or "the body"
                    raise ValidationError(f"a key in {where} is not plain text", path or None)
                name = f"{path}.{key}" if path else str(key)
                stack.append((name, child))
        elif isinstance(item, list):
            stack.extend((f"{path}.{i}" if path else str(i), child) for i, child in enumerate(item))
