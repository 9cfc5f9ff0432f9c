"""Newsroom accounts and API tokens: roles, password hashing rules, token format."""

from __future__ import annotations

import enum
import hashlib
import ipaddress
import re
import secrets
from dataclasses import dataclass

from core.errors import ValidationError
from core.inputs import check_text, control_char, encodable

TOKEN_PREFIX = "nf_"
MIN_PASSWORD = 12
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")


class Role(enum.StrEnum):
    EDITOR = "editor"
    OPS = "ops"
    ADMIN = "admin"


EDITOR_ROLES = frozenset({Role.EDITOR, Role.ADMIN})
OPS_ROLES = frozenset({Role.OPS, Role.ADMIN})


@dataclass(frozen=True)
class Principal:
    """Who is calling: a logged-in user or an API token."""

    name: str
    role: Role
    user_id: int | None = None
    token_id: int | None = None


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise ValidationError("role must be editor, ops or admin", "role") from None


def check_email(value: str) -> str:
    value = value.strip().lower()
    if not _EMAIL.match(value) or control_char(value) is not None or not encodable(value):
        raise ValidationError("not an email address", "email")
    return value


def check_token_name(value: str) -> str:
    value = check_text(value.strip(), "name")
    if not value or len(value) > 100:
        raise ValidationError("a token name is 1 to 100 characters", "name")
    return value


def check_password(value: str) -> str:
    if len(value) < MIN_PASSWORD:
        raise ValidationError(f"password must be at least {MIN_PASSWORD} characters", "password")
    return value


# A password an admin hands over (in person, by phone): lower-case letters and digits without
# the look-alikes (0/o, 1/l/i), in four groups of four: about 78 bits, easy to type on a phone.
ISSUED_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


def issued_password() -> str:
    chars = "".join(secrets.choice(ISSUED_ALPHABET) for _ in range(16))
    return "-".join(chars[i : i + 4] for i in range(0, 16, 4))


# A login's device in words for its owner's account page, from the User-Agent header: only
# these fixed words are stored, never the header itself (the client writes it).
_BROWSERS = (
    (("EdgA/", "EdgiOS/", "Edg/", "Edge/"), "Edge"),
    (("SamsungBrowser/",), "Samsung Internet"),
    (("OPR/", "Opera"), "Opera"),
    (("Firefox/", "FxiOS/"), "Firefox"),
    (("CriOS/", "Chrome/", "Chromium/"), "Chrome"),
    (("Safari/",), "Safari"),
)
_SYSTEMS = (
    (("iPhone",), "iPhone"),
    (("iPad",), "iPad"),
    (("Android",), "Android"),
    (("Windows",), "Windows"),
    (("CrOS",), "ChromeOS"),
    (("Macintosh", "Mac OS X"), "Mac"),
    (("Linux",), "Linux"),
)


def device_summary(user_agent: str | None) -> str:
    """ "Chrome on Android", "Safari on iPhone", "Firefox", "a browser on Windows", "a browser"."""
    agent = user_agent or ""
    browser = next((name for marks, name in _BROWSERS if any(m in agent for m in marks)), None)
    system = next((name for marks, name in _SYSTEMS if any(m in agent for m in marks)), None)
    if browser and system:
        return f"{browser} on {system}"
    if system:
        return f"a browser on {system}"
    return browser or "a browser"


def new_token() -> tuple[str, str, str]:
    """(token shown once, its sha256 stored, a short prefix for listing)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, hash_token(token), token[:10]


def hash_token(token: str) -> str:
    # Tokens are 256 random bits: a fast hash is enough, unlike passwords.
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def login_account_key(email: str) -> str:
    """What refused logins are counted under per account: a digest of the address as typed
    (normalised), the same for an address with no account, so the limit tells nobody which
    exist; and no address in the limiter's keys or log lines."""
    digest = hashlib.sha256(email.strip().lower().encode("utf-8", "replace")).hexdigest()
    return "account:" + digest[:32]


# -- sessions ---------------------------------------------------------------------------------
# The last-seen time is written at most this often: a page that polls every second would
# otherwise turn every read into a write.
SESSION_TOUCH_S = 60.0


def new_session_id() -> tuple[str, str]:
    """(the id the browser's signed cookie carries, its sha256 that the database stores)."""
    session_id = secrets.token_urlsafe(32)
    return session_id, hash_token(session_id)


def session_alive(
    created_at: float,
    last_seen_at: float,
    revoked_at: float | None,
    now: float,
    lifetime_s: float,
    idle_s: float,
) -> bool:
    """A session ends at logout or revocation, lifetime_s after login, or idle_s after last use."""
    return revoked_at is None and now < created_at + lifetime_s and now < last_seen_at + idle_s


# -- refused-login summaries ------------------------------------------------------------------
# Refused logins are counted per address and window instead of one audit row each, so a
# flood cannot push real entries off the audit page.
REFUSAL_WINDOW_S = 600


def refusal_window(now: float) -> int:
    return int(now // REFUSAL_WINDOW_S) * REFUSAL_WINDOW_S


def address_key(address: str | None) -> str:
    """The address a refusal is counted under: IPv6 by /64, since one host owns a whole /64."""
    if not address:
        return "unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)
