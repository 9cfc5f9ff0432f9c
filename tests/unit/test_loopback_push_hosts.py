"""The realistic bench's push hosts (127.0.0.2-5) are loopback: accepted only in the loopback demo mode."""

from __future__ import annotations

import pytest

from config.settings import load_settings
from core.endpoints import EndpointPolicy, address_allowed, endpoint_allowed

HOSTS = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]


@pytest.mark.parametrize("address", HOSTS)
def test_the_bench_hosts_are_accepted_with_loopback_push_on(address: str) -> None:
    policy = EndpointPolicy(load_settings(environ={}, env_file=None).push_hosts, True)
    assert endpoint_allowed(f"http://{address}:8002/push/1", policy)
    assert address_allowed(address, True)


@pytest.mark.parametrize("address", HOSTS)
def test_the_bench_hosts_are_refused_in_production_mode(address: str) -> None:
    policy = EndpointPolicy(load_settings(environ={}, env_file=None).push_hosts, False)
    assert not endpoint_allowed(f"http://{address}:8002/push/1", policy)
    assert not endpoint_allowed(f"https://{address}/push/1", policy)
    assert not address_allowed(address, False)
