"""The dashboard's and the rules' PromQL against what the code exports, without services:
every metric and label a query names exists, counters are only read through rate/increase,
quantiles come from _bucket series grouped by le, each panel's unit fits what it shows, and
docs/ops.md lists every metric with its labels. (tests/e2e/test_grafana_dashboard.py checks the
names against a live /metrics as well.)"""

from __future__ import annotations

import re

import pytest

from tests.support import promql
from tests.support.services import ROOT

RATES = ("rate", "irate", "increase")
QUERIES = promql.dashboard_exprs() + promql.rule_exprs()
IDS = [f"{where}: {expr[:40]}" for where, expr in QUERIES]
UNITS = {
    "time": {"s", "ms", "dtdurations"},
    "per_second": {"reqps", "ops", "rps", "wps", "cps"},
    "ratio": {"percentunit"},
    "count": {"short", "none", "locale", "bool", "bool_on_off", "bool_yes_no"},
}


def _known() -> dict[str, tuple[str, frozenset[str]]]:
    return {
        **promql.catalog(),
        **{name: ("gauge", labels) for name, labels in promql.PROMETHEUS_OWN.items()},
    }


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'histogram_quantile(0.99, sum by (le, push_host) (rate(x_seconds_bucket{a="b(c)"}[5m])))',
            {"x_seconds_bucket"},
        ),
        ("sum(rate(a_total[$__rate_interval])) / on (job) group_left (x) b", {"a_total", "b"}),
        ('max by (queue) (q{queue=~"n.*"}) >= 60 and up offset 5m', {"q", "up"}),
        ("count without (instance) (c) > bool 1e3", {"c"}),
    ],
)
def test_metric_names_are_found_in_promql(expr: str, names: set[str]) -> None:
    assert promql.metric_names(expr) == names


def problems(expr: str) -> list[str]:
    """What is wrong with one query: unknown metrics or labels, counters read raw, rates of
    gauges, quantiles not over buckets grouped by le."""
    known = _known()
    names = promql.metric_names(expr)
    if not names:
        return ["no metric"]
    unknown = sorted(names - set(known))
    if unknown:
        return [f"/metrics exports no {n}" for n in unknown]
    found = []
    for name, labels in promql.selectors(expr):
        missing = labels - known[name][1] - promql.TARGET_LABELS
        found += [f"{name} has no label {label}" for label in sorted(missing)]
    offered = promql.TARGET_LABELS.union(*(known[n][1] for n in names))
    found += [f"no metric here has {x}" for x in sorted(promql.grouping_labels(expr) - offered)]
    counters = {n for n in names if known[n][0] in ("counter", "histogram")}
    wrapped = promql.wrapped_in(expr, RATES)
    found += [f"counter {n} read raw" for n in sorted(counters - wrapped)]
    found += [f"rate/increase over the gauge {n}" for n in sorted(wrapped - counters)]
    buckets = {n for n in names if n.endswith("_bucket")}
    if "histogram_quantile" in expr:
        if not buckets or names != buckets:
            found.append(f"histogram_quantile over {sorted(names)}")
        if "le" not in promql.grouping_labels(expr) or re.search(
            r"\bwithout\s*\([^)]*\ble\b", expr
        ):
            found.append("histogram_quantile not grouped by le")
    elif buckets:
        found.append("buckets outside histogram_quantile")
    return found


@pytest.mark.parametrize(("where", "expr"), QUERIES, ids=IDS)
def test_each_query_reads_exported_metrics_the_way_their_type_wants(where: str, expr: str) -> None:
    assert problems(expr) == [], f"{where}: {expr}"


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("sum(rate(newsflash_deliveries[5m]))", "/metrics exports no newsflash_deliveries"),
        (
            'sum(rate(newsflash_push_answers_total{outcome="x"}[5m]))',
            "newsflash_push_answers_total has no label outcome",
        ),
        ("sum by (queue) (rate(newsflash_deliveries_total[5m]))", "no metric here has queue"),
        ("sum(newsflash_deliveries_total)", "counter newsflash_deliveries_total read raw"),
        ("rate(newsflash_queue_depth[5m])", "rate/increase over the gauge newsflash_queue_depth"),
        (
            "histogram_quantile(0.9, sum by (push_host) "
            "(rate(newsflash_push_request_seconds_bucket[5m])))",
            "histogram_quantile not grouped by le",
        ),
        (
            "histogram_quantile(0.9, sum by (le) (rate(newsflash_push_request_seconds_sum[5m])))",
            "histogram_quantile over ['newsflash_push_request_seconds_sum']",
        ),
    ],
)
def test_a_wrong_query_is_caught(expr: str, problem: str) -> None:
    assert problem in problems(expr)


def _measures(expr: str) -> str:
    names = promql.metric_names(expr)
    if "histogram_quantile" in expr or any(n.endswith("_seconds_sum") for n in names):
        return "time"
    if re.search(r"\b(?:rate|irate)\s*\(", expr):
        return "per_second"
    if re.search(r"\bincrease\s*\(", expr):
        return "count"
    if all(n.endswith("_seconds") for n in names):
        return "time"
    if all(n.endswith("_ratio") for n in names):
        return "ratio"
    if all(n.endswith("_per_second") for n in names):
        return "per_second"
    return "count"


def _unit_of(panel: dict[str, object], legend: str) -> str:
    """The unit Grafana shows a series in: the panel's, or an override matching its name."""
    config = panel["fieldConfig"]
    assert isinstance(config, dict)
    unit = str(config["defaults"].get("unit", ""))
    shown = re.sub(r"\{\{\s*\w+\s*\}\}", "x", legend)
    for override in config.get("overrides", []):
        matcher = override["matcher"]
        hit = (matcher["id"] == "byName" and matcher["options"] == shown) or (
            matcher["id"] == "byRegexp" and re.search(matcher["options"], shown)
        )
        for prop in override["properties"] if hit else []:
            if prop["id"] == "unit":
                unit = prop["value"]
    return unit


@pytest.mark.parametrize(
    "panel", [p for p in promql.panels() if p.get("targets")], ids=lambda p: p["title"]
)
def test_each_series_is_shown_in_a_unit_that_fits_it(panel: dict[str, object]) -> None:
    targets = panel["targets"]
    assert isinstance(targets, list)
    for target in targets:
        measures = _measures(target["expr"])
        unit = _unit_of(panel, target.get("legendFormat", ""))
        assert unit in UNITS[measures], (
            f"{panel['title']} / {target.get('legendFormat')!r} measures {measures} "
            f"but is shown in {unit!r}"
        )


def test_the_dashboard_takes_its_datasource_from_the_variable() -> None:
    variables = {v["name"]: v for v in promql.dashboard()["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    for panel in promql.panels():
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        for target in panel["targets"]:
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def _documented() -> dict[str, set[str]]:
    """docs/ops.md's metrics table: metric name -> the labels its row names."""
    rows = {}
    for line in (ROOT / "docs/ops.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`newsflash_"):
            continue
        labels = set(re.findall(r"`([a-z_]+)`", cells[2]))
        for name in re.findall(r"`(newsflash_\w+)`", cells[0]):
            rows[name.removesuffix("_total")] = labels
    return rows


def test_docs_list_every_metric_with_its_labels() -> None:
    documented = _documented()
    for name, (_kind, labels) in promql.families().items():
        assert name in documented, f"docs/ops.md's metrics table has no {name}"
        assert documented[name] >= set(labels), (
            f"docs/ops.md: {name} has labels {sorted(labels)}, the table says "
            f"{sorted(documented[name])}"
        )
    assert set(documented) <= set(promql.families()), "docs/ops.md lists metrics nobody exports"
