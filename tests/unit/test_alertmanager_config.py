"""The Alertmanager config docker-compose mounts: amtool accepts it, each rule's alerts take the
route for their severity, and in a real Alertmanager (Debian's, on loopback) an outage inhibits
exactly the symptoms it causes. The alerts are the ones promtool's rule tests show firing, with
their exact labels, so the inhibit matchers are checked against labels the alerts really carry."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.ops import RULES, alertmanager, amtool, rule_test_cases
from tests.support.services import ROOT, free_port
from tests.support.stack import wait_until

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
CONTAINER_PATH = "/etc/alertmanager/alertmanager.yml"
RECEIVER_OF = {"critical": "page", "warning": "notify"}
BROKER, DATABASE = "NewsflashBrokerUnreachable", "NewsflashDatabaseUnreachable"
BREAKING = "NewsflashBreakingLaneUnattended"
STALLED_BREAKING = "NewsflashQueueStalled:newsflash.breaking"
STALLED_ROUTINE = "NewsflashQueueStalled:newsflash.routine"
# What is firing -> which of the alerts get inhibited (by alertname, ":queue" for the stalls).
SCENARIOS: dict[str, tuple[set[str], set[str]]] = {
    "no outage": (set(), set()),
    "no worker on the breaking lane": ({BREAKING}, {STALLED_BREAKING}),
    "broker down": (
        {BROKER, BREAKING},
        {
            STALLED_BREAKING,
            STALLED_ROUTINE,
            "NewsflashPendingDeliveryTooOld",
            BREAKING,
            "NewsflashAlarmsNotEvaluated",
        },
    ),
    "database down": (
        {DATABASE, BREAKING},
        {STALLED_BREAKING, STALLED_ROUTINE, "NewsflashPendingDeliveryTooOld"},
    ),
}
SOURCES = {BROKER, DATABASE, BREAKING}


def _config() -> Path:
    """The file the compose service mounts where its --config.file points."""
    service = COMPOSE["services"]["alertmanager"]
    assert f"--config.file={CONTAINER_PATH}" in service["command"]
    (source,) = [
        str(v).split(":")[0] for v in service["volumes"] if str(v).split(":")[1] == CONTAINER_PATH
    ]
    assert source == "./deploy/alertmanager/alertmanager.yml"
    return ROOT / source


CONFIG = _config()


def _key(labels: dict[str, str]) -> str:
    return labels["alertname"] + (f":{labels['queue']}" if "queue" in labels else "")


def _rule_alerts() -> dict[str, dict[str, str]]:
    """Every rule's alert as promtool sees it fire (exp_labels are the exact label set), plus
    the routine queue stalling beside the breaking one."""
    found: dict[str, dict[str, str]] = {}
    for case in rule_test_cases():
        for check in case.get("alert_rule_test", []):
            for alert in check.get("exp_alerts") or []:
                labels = {"alertname": check["alertname"], **alert["exp_labels"]}
                found.setdefault(_key(labels), labels)
    rules = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    assert {labels["alertname"] for labels in found.values()} == rules
    routine = {**found[STALLED_BREAKING], "queue": "newsflash.routine"}
    return found | {STALLED_ROUTINE: routine}


ALERTS = _rule_alerts()


def _amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [amtool(), *args], cwd=ROOT, capture_output=True, text=True, timeout=30, check=False
    )


def test_amtool_accepts_the_config() -> None:
    done = _amtool("check-config", str(CONFIG.relative_to(ROOT)))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
    config = yaml.safe_load(CONFIG.read_text())
    assert f" - {len(config['inhibit_rules'])} inhibit rules" in done.stdout
    assert f" - {len(config['receivers'])} receivers" in done.stdout


@pytest.mark.parametrize("key", sorted(ALERTS))
def test_each_rules_alert_takes_the_route_for_its_severity(key: str) -> None:
    labels = ALERTS[key]
    want = RECEIVER_OF[labels["severity"]]
    done = _amtool(
        "config",
        "routes",
        "test",
        f"--config.file={CONFIG.relative_to(ROOT)}",
        f"--verify.receivers={want}",
        *(f"{k}={v}" for k, v in sorted(labels.items())),
    )
    assert done.returncode == 0, f"{key} goes to {done.stdout.strip()}, not {want}"
    assert done.stdout.split() == [want]


def test_a_route_test_can_fail() -> None:
    done = _amtool(
        "config",
        "routes",
        "test",
        f"--config.file={CONFIG.relative_to(ROOT)}",
        "--verify.receivers=page",
        "alertname=NewsflashAlarmsNotEvaluated",
        "severity=warning",
    )
    assert done.returncode != 0 and done.stdout.split()[0] == "notify"


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[str]:
    """Alertmanager with the shipped config on a loopback port, no cluster, storage in tmp."""
    port = free_port()
    log = (tmp_path / "alertmanager.log").open("wb")
    proc = subprocess.Popen(
        [
            alertmanager(),
            f"--config.file={CONFIG}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _ready(url) or proc.poll() is not None, 15, "Alertmanager to start")
        assert proc.poll() is None, (tmp_path / "alertmanager.log").read_text()
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def _api(url: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{url}/api/v2/alerts", data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        raw = answer.read()
    return json.loads(raw) if raw else None


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_an_outage_inhibits_the_symptoms_it_causes(manager: str, scenario: str) -> None:
    outages, inhibited = SCENARIOS[scenario]
    firing = {k: v for k, v in ALERTS.items() if k not in SOURCES or k in outages}
    _api(manager, [{"labels": labels} for labels in firing.values()])

    def suppressed() -> set[str] | None:
        shown = {_key(a["labels"]): a for a in _api(manager)}
        if set(shown) != set(firing):
            return None
        for key, alert in shown.items():
            want = RECEIVER_OF[firing[key]["severity"]]
            assert [r["name"] for r in alert["receivers"]] == [want], key
        return {k for k, a in shown.items() if a["status"]["inhibitedBy"]}

    # The inhibitor takes the alerts in as they arrive: poll, then ask once more.
    deadline, last = time.monotonic() + 10, suppressed()
    while last != inhibited and time.monotonic() < deadline:
        time.sleep(0.05)
        last = suppressed()
    assert last == inhibited, f"inhibited: {sorted(last or [])}"
    assert suppressed() == inhibited
    # Never inhibited by these outages: push-service answers, and the rule that means blind.
    for key in ("NewsflashDeliveryFailureRatio", "NewsflashMetricsUnreachable"):
        assert key not in inhibited
