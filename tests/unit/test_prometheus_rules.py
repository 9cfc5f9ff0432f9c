"""The Prometheus rules mirror beat's alarms: promtool accepts and unit-tests them, their
thresholds are the settings' defaults, and each has a summary and a runbook paragraph."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from config.settings import load_settings
from core.alarms import HELD_KINDS, SETTLED_OUTCOMES, AlarmKind
from core.ops import RATE_WINDOW_S
from tests.support.ops import RULE_TESTS, RULES, promtool, rule_test_cases

ROOT = Path(__file__).resolve().parents[2]
RUNBOOKS = ROOT / "docs/ops-alerts.md"
_NUMBER = r"([0-9.]+)"
_OLDEST = r"max\(newsflash_oldest_pending_delivery_seconds\) >= "
_SETTLED = (
    r"max\(sum by \(instance\) \(rate\(newsflash_deliveries_total"
    r'\{outcome=~"([a-z|]+)"\}\[(\d+)m\]\)\)\) > '
)
# alarm kind -> (the Settings field whose default the rule compares with, where it stands)
THRESHOLDS_OF = {
    AlarmKind.QUEUE_STALLED: [("alarm_stall_s", r"newsflash_queue_idle_seconds\) >= " + _NUMBER)],
    AlarmKind.PENDING_TOO_OLD: [
        ("alarm_pending_s", r"^\(\s*" + _OLDEST + _NUMBER + r"\s+unless on\(\) "),
        ("alarm_min_rate_per_s", _SETTLED + _NUMBER + r"\s*\)\s*or "),
        ("alarm_pending_max_s", r"\)\s*or " + _OLDEST + _NUMBER + r"\s*$"),
    ],
}
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _by_alarm() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for rule in _rules():
        kind = rule.get("labels", {}).get("alarm")
        if kind:
            assert kind not in found, f"two rules for the alarm {kind}"
            found[kind] = rule
    return found


def _seconds(duration: str | None) -> float:
    if not duration:
        return 0.0
    parts = re.findall(r"(\d+)(ms|s|m|h|d)", duration)
    assert "".join(n + u for n, u in parts) == duration, f"not a duration: {duration}"
    return float(sum(int(n) * _UNITS[u] for n, u in parts))


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def test_promtool_accepts_the_rules() -> None:
    done = _run("check", "rules", str(RULES), cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in done.stdout


def test_promtool_unit_tests_pass() -> None:
    done = _run("test", "rules", *(p.name for p in RULE_TESTS), cwd=RULES.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("SUCCESS") == len(RULE_TESTS), done.stdout


@pytest.mark.parametrize(
    ("old", "new", "alert"),
    [
        (
            "newsflash_queue_idle_seconds) >= 60",
            "newsflash_queue_idle_seconds) >= 90",
            "QueueStalled",
        ),
        # the pending rule: at 300 s, at 20 pushes a second, at an hour, or without its ceiling,
        # its rate summed over replicas, retries counted as progress
        ("_seconds) >= 120", "_seconds) >= 300", "PendingDeliveryTooOld"),
        ("[1m]))) > 200", "[1m]))) > 20", "PendingDeliveryTooOld"),
        ("_seconds) >= 1800", "_seconds) >= 3600", "PendingDeliveryTooOld"),
        ("or max(newsflash_oldest", "and max(newsflash_oldest", "PendingDeliveryTooOld"),
        ("max(sum by (instance) (rate(", "(sum(rate(", "PendingDeliveryTooOld"),
        ('outcome=~"delivered|gone"', 'outcome=~".+"', "PendingDeliveryTooOld"),
    ],
)
def test_the_unit_tests_catch_a_moved_threshold(
    tmp_path: Path, old: str, new: str, alert: str
) -> None:
    """The rule tests can fail: each threshold moved, or the rate read another way, breaks them."""
    rules = RULES.read_text()
    assert rules.count(old) == 1, old
    (tmp_path / RULES.name).write_text(rules.replace(old, new))
    for path in RULE_TESTS:
        shutil.copy(path, tmp_path / path.name)
    done = _run("test", "rules", *(p.name for p in RULE_TESTS), cwd=tmp_path)
    assert done.returncode != 0
    assert f"Newsflash{alert}" in done.stdout + done.stderr


def test_every_rule_has_unit_tests_that_fire_it_and_keep_it_quiet() -> None:
    """Each rule is shown firing (labels and annotations) and not firing, and a normal big
    breaking send (queues filling and draining, some readers gone, a few retries) fires none."""
    checks = [c for case in rule_test_cases() for c in case.get("alert_rule_test", [])]
    for rule in _rules():
        mine = [c for c in checks if c["alertname"] == rule["alert"]]
        assert any(c.get("exp_alerts") for c in mine), f"no test shows {rule['alert']} firing"
        assert any(not c.get("exp_alerts") for c in mine), f"no test keeps {rule['alert']} quiet"
    (big_send,) = [c for c in rule_test_cases() if c["name"] == "a normal big send fires nothing"]
    quiet = {c["alertname"] for c in big_send["alert_rule_test"] if not c.get("exp_alerts")}
    assert quiet == {rule["alert"] for rule in _rules()}


def test_every_alarm_beat_evaluates_has_a_rule() -> None:
    assert set(_by_alarm()) == {kind.value for kind in AlarmKind}


@pytest.mark.parametrize("kind", sorted(AlarmKind, key=str))
def test_thresholds_are_the_settings_defaults(kind: AlarmKind) -> None:
    defaults = load_settings(environ={}, env_file=None, missing_secret_files_ok=True)
    rule = _by_alarm()[kind.value]
    expr = rule["expr"].strip()
    for field, pattern in THRESHOLDS_OF.get(kind, []):
        match = re.search(pattern, expr)
        assert match, f"{rule['alert']}: no {pattern!r} in {expr!r}"
        assert float(match[match.lastindex or 1]) == getattr(defaults, field), (
            f"{rule['alert']} compares with {match[match.lastindex or 1]} but {field} defaults "
            f"to {getattr(defaults, field)}"
        )

    # Instant checks hold for alarm_for_s before firing, in beat and in Prometheus alike; the
    # others carry their own duration and fire at once.
    want_for = defaults.alarm_for_s if kind in HELD_KINDS else 0.0
    assert _seconds(rule.get("for")) == want_for, f"{rule['alert']}: for {rule.get('for')}"


def test_the_pending_rule_counts_progress_as_beat_does() -> None:
    """The same outcomes over the same window as the `settled_per_s` beat judges."""
    match = re.search(_SETTLED, _by_alarm()[AlarmKind.PENDING_TOO_OLD.value]["expr"])
    assert match, "the pending rule reads no delivery rate"
    assert set(match[1].split("|")) == set(SETTLED_OUTCOMES)
    assert int(match[2]) * 60 == RATE_WINDOW_S
    # The summary says which limit was passed, with the same numbers.
    defaults = load_settings(environ={}, env_file=None, missing_secret_files_ok=True)
    summary = _by_alarm()[AlarmKind.PENDING_TOO_OLD.value]["annotations"]["summary"]
    assert f"ge $value {defaults.alarm_pending_max_s:.1f}" in summary
    assert f"at most {defaults.alarm_min_rate_per_s:g} a second" in summary


def test_each_rule_has_a_summary_and_a_runbook_paragraph() -> None:
    runbooks = RUNBOOKS.read_text()
    headings = {
        re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
        for h in re.findall(r"^## (.+)$", runbooks, re.M)
    }
    for rule in _rules():
        annotations = rule.get("annotations", {})
        assert annotations.get("summary"), f"{rule['alert']} has no summary"
        url = annotations.get("runbook_url", "")
        path, _, anchor = url.partition("#")
        assert path == "docs/ops-alerts.md", f"{rule['alert']}: runbook_url {url!r}"
        assert anchor == rule["alert"].lower() and anchor in headings, (
            f"{rule['alert']}: no `## {rule['alert']}` paragraph in docs/ops-alerts.md"
        )
        section = runbooks.split(f"## {rule['alert']}", 1)[1].split("\n## ", 1)[0]
        for part in ("**What it means**", "**What to check**", "**What to do**"):
            assert part in section, f"{rule['alert']}'s runbook has no {part}"
