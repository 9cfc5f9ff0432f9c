"""Report rules without a database: push service by endpoint host, chart steps, preview cuts."""

from __future__ import annotations

from core.reports import chart_step, push_service, restep
from service.previews import PLATFORMS, clip


def test_push_service_from_the_endpoint_host() -> None:
    assert push_service("fcm.googleapis.com") == "fcm"
    assert push_service("updates.push.services.mozilla.com") == "mozilla"
    assert push_service("web.push.apple.com") == "apple"
    assert push_service("wns2-par02p.notify.windows.com") == "windows"
    # Anchored: a look-alike host is not Apple's.
    assert push_service("push.apple.com.evil.example") == "other"
    assert push_service("127.0.0.1") == push_service(None) == "other"


def test_chart_steps_are_round_and_about_sixty_per_chart() -> None:
    assert chart_step(2.0) == 0.1
    assert chart_step(60.0) == 1
    assert chart_step(3600.0) == 60
    assert chart_step(10 * 86400.0) == 3600


def test_kept_steps_regroup_into_the_step_a_chart_asks_for() -> None:
    kept = {0: 4, 1: 2, 2: 1, 7: 3}
    assert restep(kept, 10, 10) == kept
    assert restep(kept, 10, 30) == {0: 7, 2: 3}, "each old step goes where its start falls"
    assert restep({3: 1}, 0.1, 0.1) == {3: 1} and restep({3: 5}, 0.1, 0.3) == {1: 5}
    assert sum(restep(kept, 10, 5).values()) == sum(kept.values())


def test_a_preview_cuts_with_an_ellipsis_counting_characters_not_bytes() -> None:
    assert clip("Floods close Thika road", 30) == "Floods close Thika road"
    assert clip("Mafuriko yafunga barabara ya Thika leo", 30) == "Mafuriko yafunga barabara ya…"
    assert len(clip("🌊" * 50, 30)) == 30
    assert [p.key for p in PLATFORMS] == ["android", "android-expanded", "windows", "macos", "ios"]
