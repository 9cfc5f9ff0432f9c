"""Setting kinds: how one environment value is parsed, what it must look like, how it is shown."""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Generic, TypeVar
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.inputs import whole_number

T = TypeVar("T")

# A control character in a setting is a paste accident, never meant: refuse it everywhere.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MASK = "****"


@dataclass(frozen=True)
class Topic:
    slug: str
    name: str
    default: bool = False
    name_sw: str = ""  # the Kiswahili name; the English one when empty

    def name_in(self, lang: str) -> str:
        return self.name_sw if lang == "sw" and self.name_sw else self.name


class Kind(Generic[T]):
    """One kind of value. `parse` raises ValueError(what is expected) for a malformed value."""

    expects: str = "a value"

    def parse(self, text: str) -> T:
        raise NotImplementedError

    def show(self, value: T) -> str:
        """The value as it would be written in the environment."""
        return str(value)

    def malformed(self) -> tuple[str, ...]:
        """Values this kind refuses: the start-up test sets each one (so every setting is tried)."""
        return ("\x07",)

    def refuse(self, expected: str | None = None) -> ValueError:
        return ValueError(expected or self.expects)


class Text(Kind[str]):
    def __init__(self, max_len: int = 200, min_len: int = 1) -> None:
        self.min_len, self.max_len = min_len, max_len
        self.expects = f"text of {min_len} to {max_len} characters, no control characters"

    def parse(self, text: str) -> str:
        if _CONTROL.search(text) or not self.min_len <= len(text) <= self.max_len:
            raise self.refuse()
        return text

    def malformed(self) -> tuple[str, ...]:
        return ("a\x07b", "x" * (self.max_len + 1))


class Token(Text):
    """A secret: shown masked, never echoed in an error."""

    def __init__(self, min_len: int = 16, max_len: int = 1024) -> None:
        super().__init__(max_len, min_len)
        self.expects = f"{min_len} to {max_len} characters without spaces or control characters"

    def parse(self, text: str) -> str:
        if any(c.isspace() for c in text):
            raise self.refuse()
        return super().parse(text)

    def show(self, value: str) -> str:
        return MASK if value else ""

    def malformed(self) -> tuple[str, ...]:
        return ("short", "has a space in it somewhere")


class Choice(Text):
    def __init__(self, *choices: str, upper: bool = False) -> None:
        super().__init__()
        self.choices, self.upper = choices, upper
        self.expects = ", ".join(choices[:-1]) + " or " + choices[-1]

    def parse(self, text: str) -> str:
        value = text.upper() if self.upper else text.lower()
        if value not in self.choices:
            raise self.refuse()
        return value

    def malformed(self) -> tuple[str, ...]:
        return ("none-of-these",)


class Color(Kind[str]):
    """A CSS hex colour, as a web app manifest's theme_color."""

    expects = "a hex colour like #7a0019"

    def parse(self, text: str) -> str:
        if not re.fullmatch(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})", text):
            raise self.refuse()
        return text.lower()

    def malformed(self) -> tuple[str, ...]:
        return ("red", "#12345")


class EventLoop(Choice):
    def __init__(self) -> None:
        super().__init__("uvloop", "asyncio")

    def parse(self, text: str) -> str:
        value = super().parse(text)
        if value == "uvloop" and importlib.util.find_spec("uvloop") is None:
            raise self.refuse("asyncio, or install uvloop (pip install uvloop)")
        return value


# A plain decimal in ASCII: digits, one optional point, an optional exponent; no sign.
_DECIMAL = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?")
# Full-width digits and point (U+FF10..): what some keyboards type, and int()/float() accept.
_WIDE = {ord(c): ord(c) + 0xFEE0 for c in "0123456789."}


class Whole(Kind[int]):
    def __init__(self, low: int, high: int, expects: str | None = None) -> None:
        self.low, self.high = low, high
        self.expects = expects or f"a whole number from {low} to {high}"

    def parse(self, text: str) -> int:
        # ASCII digits only: int() also takes '1_0', '+1' and full-width or other Unicode digits.
        number = whole_number(text, len(str(self.high)))
        if number is None or not self.low <= number <= self.high:
            raise self.refuse()
        return number

    def malformed(self) -> tuple[str, ...]:
        return ("soon", str(self.low - 1), str(self.high + 1), str(self.high).translate(_WIDE))


class Number(Kind[float]):
    def __init__(self, low: float, high: float) -> None:
        self.low, self.high = low, high
        self.expects = f"a number from {low:g} to {high:g}"

    def parse(self, text: str) -> float:
        # ASCII only: float() also takes '1_0', 'nan', 'inf' and full-width or other digits.
        if not _DECIMAL.fullmatch(text):
            raise self.refuse()
        number = float(text)
        if not self.low <= number <= self.high:
            raise self.refuse()
        return number

    def show(self, value: float) -> str:
        return f"{value:g}"

    def malformed(self) -> tuple[str, ...]:
        return ("soon", "nan", f"{self.high * 2 + 1:g}", self.show(self.high).translate(_WIDE))


class Flag(Kind[bool]):
    expects = "on/off (1, true, yes, on / 0, false, no, off)"

    def parse(self, text: str) -> bool:
        lowered = text.lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise self.refuse()

    def show(self, value: bool) -> str:
        return "on" if value else "off"

    def malformed(self) -> tuple[str, ...]:
        return ("maybe",)


class Url(Kind[str]):
    """A URL with one of `schemes`; its password (and, for `private_path`, its path) is masked."""

    def __init__(self, *schemes: str, private_path: bool = False) -> None:
        self.schemes, self.private_path = schemes, private_path
        self.expects = "a URL starting with " + " or ".join(s + "://" for s in schemes)

    def parse(self, text: str) -> str:
        parts = urlsplit(text)
        if parts.scheme not in self.schemes or _CONTROL.search(text) or " " in text:
            raise self.refuse()
        if parts.scheme != "sqlite" and not parts.netloc:
            raise self.refuse(self.expects + " and a host")
        return text

    def show(self, value: str) -> str:
        parts = urlsplit(value)
        netloc = parts.netloc
        if parts.password:
            netloc = netloc.replace(":" + parts.password + "@", ":" + MASK + "@", 1)
        if self.private_path and (parts.path.strip("/") or parts.query):
            return urlunsplit((parts.scheme, netloc, "/" + MASK, "", ""))
        if netloc == parts.netloc:
            return value  # nothing to mask; urlunsplit would drop sqlite:///'s empty host
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

    def malformed(self) -> tuple[str, ...]:
        return ("ftp://example.invalid/x", "no-scheme-here")


class DatabaseUrl(Url):
    def __init__(self) -> None:
        super().__init__("sqlite", "postgresql", "postgresql+psycopg")

    def parse(self, text: str) -> str:
        value = super().parse(text)
        # psycopg 3 is the driver we ship; a plain postgresql:// URL would ask for psycopg2.
        if value.startswith("postgresql://"):
            return "postgresql+psycopg://" + value.removeprefix("postgresql://")
        return value


class Subject(Kind[str]):
    expects = "a mailto: or https:// URL"

    def parse(self, text: str) -> str:
        if not text.startswith(("mailto:", "https://")) or _CONTROL.search(text):
            raise self.refuse()
        return text

    def malformed(self) -> tuple[str, ...]:
        return ("admin@example.com",)


class Origins(Kind[tuple[str, ...]]):
    expects = "origins like https://news.example.com (comma separated)"

    def parse(self, text: str) -> tuple[str, ...]:
        origins = tuple(self._origin(o) for o in text.split(",") if o.strip())
        if not origins:
            raise self.refuse("at least one origin")
        return origins

    def _origin(self, text: str) -> str:
        parts = urlsplit(text.strip())
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise self.refuse()
        if parts.path not in {"", "/"} or parts.query or parts.fragment:
            raise self.refuse()
        if parts.scheme == "http" and not _is_loopback_host(parts.hostname):
            raise self.refuse("https origins (http only for 127.0.0.1/localhost)")
        return f"{parts.scheme}://{parts.netloc.lower()}"

    def show(self, value: tuple[str, ...]) -> str:
        return ",".join(value)

    def malformed(self) -> tuple[str, ...]:
        return ("http://news.example.com", "https://news.example.com/path")


def _is_loopback_host(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


_HOST_PATTERN = re.compile(r"^(\*\.)?([a-z0-9-]+\.)+[a-z0-9-]+$")


class PushHosts(Kind[tuple[str, ...]]):
    expects = "host names, optionally starting with *. (comma separated)"

    def parse(self, text: str) -> tuple[str, ...]:
        hosts = tuple(h.strip().lower() for h in text.split(",") if h.strip())
        if not hosts or not all(_HOST_PATTERN.match(h) for h in hosts):
            raise self.refuse()
        return hosts

    def show(self, value: tuple[str, ...]) -> str:
        return ",".join(value)

    def malformed(self) -> tuple[str, ...]:
        return ("fcm.googleapis.com/x", ",")


_SLUG = re.compile(r"^[a-z][a-z0-9-]{0,31}$")


class Topics(Kind[tuple[Topic, ...]]):
    """`slug[:Name[|Jina][:default]]` items, comma separated; the first is on by default if none
    is. `Name|Jina` gives the English and the Kiswahili name."""

    expects = "topics as slug:Name[|Jina][:default], slug of a-z 0-9 -, ≤ 32 chars, each slug once"

    def parse(self, text: str) -> tuple[Topic, ...]:
        topics: list[Topic] = []
        for item in filter(None, (part.strip() for part in text.split(","))):
            slug, _, rest = item.partition(":")
            name, _, flag = rest.partition(":")
            if not _SLUG.match(slug.strip()) or flag.strip() not in {"", "default"}:
                raise self.refuse()
            slug = slug.strip()
            english, _, swahili = name.partition("|")
            if "|" in swahili:
                raise self.refuse()
            topics.append(
                Topic(
                    slug,
                    english.strip() or slug.capitalize(),
                    flag.strip() == "default",
                    swahili.strip(),
                )
            )
        if not topics or len({t.slug for t in topics}) != len(topics):
            raise self.refuse()
        if not any(t.default for t in topics):
            topics[0] = replace(topics[0], default=True)
        return tuple(topics)

    def show(self, value: tuple[Topic, ...]) -> str:
        return ",".join(
            f"{t.slug}:{t.name}"
            + (f"|{t.name_sw}" if t.name_sw else "")
            + (":default" if t.default else "")
            for t in value
        )

    def malformed(self) -> tuple[str, ...]:
        return ("Breaking News", "sport,sport", "sport:Sport:maybe", "sport:Sport|Michezo|Extra")


class RateLimit(Text):
    """What flask-limiter accepts (its own parser decides), each limit at least 1."""

    def __init__(self) -> None:
        super().__init__()
        self.expects = "limits like '30 per minute' or '10/second; 500/hour', each at least 1"

    def parse(self, text: str) -> str:
        from limits import parse_many

        try:
            limits = parse_many(super().parse(text))
        except ValueError:
            raise self.refuse() from None
        if not limits or any(limit.amount < 1 for limit in limits):
            raise self.refuse()
        return text

    def malformed(self) -> tuple[str, ...]:
        return ("thirty per minute", "30 per fortnight", "0 per minute")


class TimeZone(Text):
    def __init__(self) -> None:
        super().__init__()
        self.expects = "an IANA time zone like Africa/Nairobi"

    def parse(self, text: str) -> str:
        try:
            ZoneInfo(text)
        except (ZoneInfoNotFoundError, ValueError):
            raise self.refuse() from None
        return text

    def malformed(self) -> tuple[str, ...]:
        return ("Mars/Olympus",)


class PrivateKey(Token):
    """A PEM encoded P-256 private key; parsed here so every process refuses a bad one."""

    def __init__(self) -> None:
        super().__init__(min_len=1, max_len=16_384)
        self.expects = "a PEM encoded P-256 private key (newsflash init creates one)"

    def parse(self, text: str) -> str:
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        try:
            key = load_pem_private_key(text.strip().encode(), password=None)
        except (ValueError, TypeError):
            raise self.refuse() from None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise self.refuse()
        return text.strip()

    def malformed(self) -> tuple[str, ...]:
        return ("super-secret-not-a-pem", "-----BEGIN PRIVATE KEY-----\nbroken\n")


class WebhookSecret(Token):
    """`whsec_` + base64 of at least 16 bytes, the Standard Webhooks form."""

    def __init__(self) -> None:
        super().__init__(min_len=1)
        self.expects = "whsec_ + base64 of at least 16 bytes (newsflash init creates one)"

    def parse(self, text: str) -> str:
        from core.webhooks import secret_bytes

        try:
            secret_bytes(super().parse(text))
        except ValueError:
            raise self.refuse() from None
        return text

    def malformed(self) -> tuple[str, ...]:
        return ("whsec_not*base64", "whsec_c2hvcnQ=")


class Directory(Kind[Path]):
    expects = "a directory path (it may not exist yet)"

    def parse(self, text: str) -> Path:
        path = Path(text)
        if _CONTROL.search(text) or (path.exists() and not path.is_dir()):
            raise self.refuse()
        return path

    def malformed(self) -> tuple[str, ...]:
        return ("/dev/null",)


class File(Kind[Path]):
    """A file path. Whether it must be readable now is the loader's call (init creates some)."""

    expects = "a readable file"

    def parse(self, text: str) -> Path:
        if _CONTROL.search(text):
            raise self.refuse()
        return Path(text)

    def malformed(self) -> tuple[str, ...]:
        return ("/nonexistent-newsflash/file",)


class ReadableFile(Kind[str]):
    expects = "a readable file"

    def parse(self, text: str) -> str:
        path = Path(text)
        if _CONTROL.search(text) or not path.is_file() or not os.access(path, os.R_OK):
            raise self.refuse()
        return text

    def malformed(self) -> tuple[str, ...]:
        return ("/nonexistent-newsflash/ca.pem",)
