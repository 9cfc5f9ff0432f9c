"""Which push endpoints we accept and which addresses we ever connect to (SSRF guard)."""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from core.errors import ValidationError

MAX_ENDPOINT_LEN = 2048
LOOPBACK_NAMES = frozenset({"localhost"})
# A DNS label: letters, digits, hyphen; no empty labels and no IP-ish tricks via odd characters.
_HOST_RE = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
)
# Numeric hosts (decimal, octal, hex IPv4 forms such as 2130706433, 0177.0.0.1, 0x7f.1).
_NUMERIC_HOST_RE = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+))*\.?$")
# In ASCII text, whitespace and control characters are exactly \x00-\x20; with the backslash,
# one regex scan (stored rows are checked again at send time, so this runs once per push).
_BAD_URL_CHAR_RE = re.compile(r"[\x00-\x20\\]")


@dataclass(frozen=True)
class EndpointPolicy:
    """Anchored host allowlist; loopback only when the operator allows it (tests, demo)."""

    push_hosts: tuple[str, ...]
    allow_loopback: bool = False

    def host_allowed(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        for pattern in self.push_hosts:
            if pattern.startswith("*."):
                suffix = pattern[1:]
                # "*.push.apple.com" matches "web.push.apple.com", never "push.apple.com.evil.example".
                if host.endswith(suffix) and len(host) > len(suffix):
                    return True
            elif host == pattern:
                return True
        return False


# Host verdicts are pure and asked once per push at send time; audiences sit on a few hosts, and
# the bound keeps hostile input from growing the cache.
@functools.lru_cache(maxsize=4096)
def is_loopback_host(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost written plainly (no numeric tricks)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint(endpoint: object, policy: EndpointPolicy, field: str = "endpoint") -> str:
    """Validate a subscription endpoint URL before storing it; raises ValidationError naming the field."""
    if not isinstance(endpoint, str) or not endpoint:
        raise ValidationError("endpoint must be a URL string", field)
    if len(endpoint) > MAX_ENDPOINT_LEN:
        raise ValidationError(f"endpoint must be at most {MAX_ENDPOINT_LEN} characters", field)
    if not endpoint.isascii():
        # Browsers serialise endpoints as ASCII (punycode, percent-encoding): anything else is
        # forged, and may not even be encodable.
        raise ValidationError("endpoint must be an ASCII URL", field)
    if _BAD_URL_CHAR_RE.search(endpoint):
        raise ValidationError("endpoint contains characters a URL may not hold", field)
    try:
        parts = urlsplit(endpoint)
        port = parts.port
    except ValueError:
        raise ValidationError("endpoint is not a valid URL", field) from None
    host = (parts.hostname or "").lower()
    if not host:
        raise ValidationError("endpoint has no host", field)
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ValidationError("endpoint must not contain user information", field)
    if parts.fragment:
        raise ValidationError("endpoint must not have a fragment", field)
    if policy.allow_loopback and is_loopback_host(host):
        if parts.scheme not in {"http", "https"}:
            raise ValidationError("endpoint must be an http(s) URL", field)
        return endpoint
    if parts.scheme != "https":
        raise ValidationError("endpoint must use https", field)
    if port not in (None, 443):
        raise ValidationError("endpoint must use port 443", field)
    if _is_ip_literal(host) or _NUMERIC_HOST_RE.match(host):
        raise ValidationError("endpoint must name a push service host, not an address", field)
    if not _HOST_RE.match(host.rstrip(".")):
        raise ValidationError("endpoint host is not a valid host name", field)
    if not policy.host_allowed(host):
        raise ValidationError(
            "endpoint is not on a known push service (NEWSFLASH_PUSH_HOSTS)", field
        )
    return endpoint


def endpoint_allowed(endpoint: str, policy: EndpointPolicy) -> bool:
    """check_endpoint as a yes/no, for the send-time check of stored rows (once per push).

    Everything check_endpoint decides from the scheme and host:port is decided once per
    origin and cached; per push only the length, the characters and the fragment are looked at.
    """
    simple = _ORIGIN_RE.match(endpoint)
    if simple is None:
        return _passes(endpoint, policy)
    if (
        len(endpoint) > MAX_ENDPOINT_LEN
        or not endpoint.isascii()
        or _BAD_URL_CHAR_RE.search(endpoint)
        or _has_fragment(endpoint)
    ):
        return False
    # The origin alone passes exactly the checks that depend on scheme, host and port.
    return _origin_allowed(simple.group(0) + "/", policy)


# urlsplit's netloc: from "//" to the first "/", "?" or "#".
_ORIGIN_RE = re.compile(r"https?://[^/?#]*")


def _has_fragment(endpoint: str) -> bool:
    at = endpoint.find("#")
    return 0 <= at < len(endpoint) - 1


@functools.lru_cache(maxsize=4096)
def _origin_allowed(origin: str, policy: EndpointPolicy) -> bool:
    return _passes(origin, policy)


def _passes(endpoint: str, policy: EndpointPolicy) -> bool:
    try:
        check_endpoint(endpoint, policy)
    except ValidationError:
        return False
    return True


@functools.lru_cache(maxsize=4096)
def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def address_allowed(address: str, allow_loopback: bool) -> bool:
    """May we connect to this resolved address? Only global unicast, loopback when allowed.

    Checked on every connection because DNS answers change after subscription time.
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            ip = mapped
        elif ip in _NAT64:
            # 64:ff9b::/96 embeds an IPv4 address; judge the embedded one.
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.is_loopback:
        return allow_loopback
    return bool(
        ip.is_global
        and not ip.is_multicast
        and not ip.is_reserved
        and not ip.is_link_local
        and not ip.is_private
        and not ip.is_unspecified
        and ip not in _CGNAT
    )


_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_CGNAT = ipaddress.ip_network("100.64.0.0/10")


def push_host(endpoint: str) -> str:
    """The host part, for per-host limits, metrics and logs (never the full endpoint)."""
    return (urlsplit(endpoint).hostname or "unknown").lower()


def redact_endpoint(endpoint: str) -> str:
    """host + short hash: enough to correlate in logs, not enough to push to (personal data)."""
    digest = hashlib.sha256(endpoint.encode("utf-8")).hexdigest()[:12]
    return f"{push_host(endpoint)}#{digest}"
