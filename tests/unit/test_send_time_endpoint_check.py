"""The send-time endpoint check (cached per origin) answers exactly what check_endpoint does."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.endpoints import EndpointPolicy, check_endpoint, endpoint_allowed
from core.errors import ValidationError

STRICT = EndpointPolicy(("fcm.googleapis.com", "*.push.apple.com", "*.notify.windows.com"))
LOOPBACK = EndpointPolicy(STRICT.push_hosts, allow_loopback=True)

SCHEMES = ["https", "http", "HTTPS", "ftp", "https:", "https:/", ""]
HOSTS = [
    "fcm.googleapis.com",
    "FCM.googleapis.com",
    "web.push.apple.com",
    "push.apple.com",
    "push.apple.com.evil.example",
    "wns2-par02p.notify.windows.com",
    "127.0.0.1",
    "localhost",
    "[::1]",
    "[::1",
    "10.0.0.7",
    "2130706433",
    "0x7f.1",
    "user:pw@fcm.googleapis.com",
    "fcm.googleapis.com.",
    "",
    "exa mple.com",
    "fcm.googleapis.com\\@evil",
    "bücher.example",
]
PORTS = ["", ":443", ":8443", ":0", ":99999", ":abc", ":"]
TAILS = ["", "/", "/fcm/send/abc", "/x?y=1", "?q", "#", "#frag", "/p#", "/p#f", "/a b", "/\t", "/é"]


def full_check(endpoint: str, policy: EndpointPolicy) -> bool:
    try:
        check_endpoint(endpoint, policy)
    except ValidationError:
        return False
    return True


@settings(max_examples=600, deadline=None)
@given(
    st.sampled_from(SCHEMES),
    st.sampled_from(HOSTS),
    st.sampled_from(PORTS),
    st.sampled_from(TAILS),
    st.text(max_size=12),
    st.sampled_from([STRICT, LOOPBACK]),
)
def test_send_time_check_matches_the_subscription_check(
    scheme: str, host: str, port: str, tail: str, noise: str, policy: EndpointPolicy
) -> None:
    endpoint = f"{scheme}://{host}{port}{tail}{noise}"
    assert endpoint_allowed(endpoint, policy) is full_check(endpoint, policy)


@pytest.mark.parametrize(
    ("endpoint", "strict", "loopback"),
    [
        ("https://fcm.googleapis.com/fcm/send/abc", True, True),
        ("https://fcm.googleapis.com/fcm/send/abc#x", False, False),
        ("https://fcm.googleapis.com/fcm/send/abc#", True, True),
        ("https://evil.example/fcm/send/abc", False, False),
        ("http://127.0.0.1:9000/push/1", False, True),
        ("https://user@fcm.googleapis.com/x", False, False),
        ("https://fcm.googleapis.com/" + "a" * 2100, False, False),
    ],
)
def test_send_time_check_examples(endpoint: str, strict: bool, loopback: bool) -> None:
    # The same origin asked twice: the cached answer and the per-push part agree.
    for _ in range(2):
        assert endpoint_allowed(endpoint, STRICT) is strict
        assert endpoint_allowed(endpoint, LOOPBACK) is loopback
