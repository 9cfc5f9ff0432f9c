"""What the shipped Grafana dashboard and Prometheus rules ask of /metrics, and what the code
exports: PromQL read just far enough to find metric names, label names and the functions around
them, and the catalogue of sample names and labels core/adapters/metrics.py defines."""

from __future__ import annotations

import ast
import json
import re
from typing import Any

import yaml

from tests.support.services import ROOT

DASHBOARD = ROOT / "deploy/grafana/dashboards/newsflash-grafana.json"
RULES = ROOT / "deploy/prometheus/newsflash-rules.yml"
METRICS_MODULE = ROOT / "core/adapters/metrics.py"
# Labels Prometheus adds to every scraped series itself.
TARGET_LABELS = frozenset({"job", "instance"})
# Series Prometheus makes itself (scrape health), not Newsflash's to export.
PROMETHEUS_OWN = {"up": frozenset(TARGET_LABELS)}

_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
    "and", "or", "unless", "offset", "atan2", "inf", "nan",
}  # fmt: skip
_LABEL_LISTS = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", re.IGNORECASE
)
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')


def _blank_strings(expr: str) -> str:
    return _STRINGS.sub('""', expr)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers that are not functions or
    aggregations (followed by "("), keywords, label names (in {...} or by/without/on lists),
    strings, durations ([...]) or Grafana variables."""
    text = _blank_strings(expr)
    text = _LABEL_LISTS.sub(" ", text)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\$\{?\w+\}?", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])([A-Za-z_:][A-Za-z0-9_:]*)(?![\w.])", text):
        after = text[match.end() :].lstrip()
        if after.startswith("(") or match[1].lower() in _KEYWORDS:
            continue
        names.add(match[1])
    return names


def selectors(expr: str) -> list[tuple[str, set[str]]]:
    """Each `name{matchers}` (or bare name) with the label names its matchers use."""
    text = _blank_strings(expr)
    found = []
    for name in metric_names(expr):
        for m in re.finditer(rf"(?<![\w.]){re.escape(name)}(?![\w.])\s*(\{{[^}}]*\}})?", text):
            labels = set(re.findall(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)", m[1] or ""))
            found.append((name, labels))
    return found


def grouping_labels(expr: str) -> set[str]:
    """Label names in by/without/on/ignoring/group_* lists."""
    found: set[str] = set()
    for clause in _LABEL_LISTS.findall(_blank_strings(expr)):
        inside = clause[clause.index("(") + 1 : -1]
        found.update(x.strip() for x in inside.split(",") if x.strip())
    return found


def wrapped_in(expr: str, functions: tuple[str, ...]) -> set[str]:
    """Metric names that appear as the argument of one of `functions` (rate(x[5m]) ...)."""
    text = _blank_strings(expr)
    pattern = rf"\b(?:{'|'.join(functions)})\s*\(\s*([A-Za-z_:][\w:]*)"
    return set(re.findall(pattern, text))


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def walk(items: list[dict[str, Any]]) -> None:
        for panel in items:
            found.append(panel)
            walk(panel.get("panels", []))

    walk(dashboard()["panels"])
    return found


def dashboard_exprs() -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in panels() for t in p.get("targets", [])]


def rule_exprs() -> list[tuple[str, str]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [(r["alert"], r["expr"]) for g in groups for r in g["rules"]]


# -- what the code exports -------------------------------------------------------------------
def _process_metrics() -> dict[str, tuple[str, frozenset[str]]]:
    """Counters and histograms the processes write (Metrics.__init__): name -> (type, labels),
    read from the source, since creating them registers them for good."""
    tree = ast.parse(METRICS_MODULE.read_text())
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Metrics"]
    found = {}
    for call in ast.walk(cls):
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)):
            continue
        if call.func.id not in ("Counter", "Histogram"):
            continue
        name = ast.literal_eval(call.args[0])
        labels = ast.literal_eval(call.args[2]) if len(call.args) > 2 else []
        found[name] = (call.func.id.lower(), frozenset(labels))
    return found


def full_snapshot() -> dict[str, Any]:
    """An ops snapshot with every section filled, so every scrape-time family is exported."""
    week = {
        "alerts_per_reader_day": 1.5,
        "displayed_rate": 0.8,
        "click_rate": 0.1,
        "gone_share": 0.02,
        "gained": 10,
        "delivered_rate": 0.97,
        "push_hosts": [{"host": "fcm.googleapis.com", "delivered_rate": 0.98}],
        "lost": {"gone": 1, "unsubscribed": 2},
        "renewed": {"moved": 1, "restored": 1},
    }
    return {
        "subscribers": {"total": 3, "per_topic": {"breaking": 3}},
        "churn_totals": {"gained": 5, "lost": 2, "renewed": {"moved": 1, "restored": 1}},
        "alerts_by_status": {"sent": 1},
        "alerts_in_flight": [{"pending": 4}],
        "queues": [
            {
                "name": "newsflash.breaking",
                "depth": 2,
                "oldest_age_s": 3.0,
                "waiting_for_s": 3.0,
                "last_consumed_s_ago": 1.0,
            }
        ],
        "oldest_pending_s": 3.0,
        "workers": [{"queues": ["newsflash.breaking"]}],
        "delivery_rate": {"per_second": 10.0},
        "push_hosts": [{"host": "fcm.googleapis.com", "breaker": None}],
        "alarms": [{"key": "queue_stalled:newsflash.breaking", "kind": "queue_stalled"}],
        "alarms_evaluated_s_ago": 1.0,
        "audience_health": {
            "weeks": [week],
            "unseen": [{"days": 30, "share": 0.1}],
            "warnings": [],
        },
        "database": {"ok": True, "refuses_writes": {"reason": "disk", "last_s_ago": 3.0}},
        "broker": {"ok": True},
        "redis": {"ok": True},
    }


def catalog() -> dict[str, tuple[str, frozenset[str]]]:
    """Every sample name /metrics can export -> (its family's type, its label names)."""
    from core.adapters.metrics import _gauge_families

    samples: dict[str, tuple[str, frozenset[str]]] = {}
    for name, (kind, labels) in _process_metrics().items():
        if kind == "counter":
            samples[name + "_total"] = ("counter", labels)
        else:
            samples[name + "_bucket"] = ("histogram", labels | {"le"})
            samples[name + "_sum"] = ("histogram", labels)
            samples[name + "_count"] = ("histogram", labels)
    for family in _gauge_families(full_snapshot()):
        for sample in family.samples:
            samples[sample.name] = (family.type, frozenset(sample.labels))
    return samples


def families() -> dict[str, tuple[str, frozenset[str]]]:
    """Metric families (the names the docs list): counters without _total, histograms without
    _bucket/_sum/_count."""
    found = dict(_process_metrics())
    from core.adapters.metrics import _gauge_families

    for family in _gauge_families(full_snapshot()):
        labels = frozenset(label for s in family.samples for label in s.labels)
        found[family.name] = (family.type, labels)
    return found
