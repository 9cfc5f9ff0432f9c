"""The web server's two queue lanes: the newsroom, ops and health checks before readers."""

from __future__ import annotations

from types import SimpleNamespace

from service.server import Lanes, goes_ahead


def _channel(path: str) -> SimpleNamespace:
    return SimpleNamespace(requests=[SimpleNamespace(path=path)])


def test_newsroom_ops_and_health_requests_are_taken_before_readers_in_arrival_order() -> None:
    lanes = Lanes()
    arrived = [
        "/api/v1/subscriptions",
        "/api/v1/alerts",
        "/",
        "/healthz",
        "/api/v1/events/click",
        "/editor/alerts/7",
        "/editor/login",
    ]
    for path in arrived:
        lanes.append(_channel(path))
    assert len(lanes) == 7
    taken = []
    while lanes:
        taken.append(lanes.popleft().requests[0].path)
    assert taken == [
        "/api/v1/alerts",
        "/healthz",
        "/editor/alerts/7",
        "/api/v1/subscriptions",
        "/",
        "/api/v1/events/click",
        "/editor/login",  # a password hash: an outsider could ask for it on every request
    ]


def test_what_goes_ahead() -> None:
    ahead = [
        "/editor",
        "/editor/",
        "/api/v1/alerts/3/cancel",
        "/api/v1/hooks/cms",
        "/ops",
        "/api/v1/ops/queues",
        "/readyz",
        "/metrics",
    ]
    behind = [
        "/api/v1/subscriptions",
        "/manage",
        "/api/v1/stories",
        "/static/app.js",
        "/editor/login",
        "/editorial",
        "",
    ]
    assert all(goes_ahead(p) for p in ahead)
    assert not any(goes_ahead(p) for p in behind)


def test_a_connection_without_a_parsed_request_waits_with_readers() -> None:
    lanes = Lanes()
    lanes.append(SimpleNamespace(requests=[]))
    lanes.append(_channel("/healthz"))
    assert lanes.popleft().requests[0].path == "/healthz"
