"""The metrics docs/operations.md lists are exactly those the registry exposes, with their
types, and the Grafana dashboard in deploy/ asks only for metrics that exist."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.test_docs import read, section, table_rows

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "datamill.json"
_HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")


@pytest.fixture
async def exposed(make_runtime) -> dict[str, str]:
    """{name as exposed (counters with ``_total``): type} of a runtime's registry, with a
    deployment (the gate's families) and the store's gauges."""
    runtime = await make_runtime([{"name": "sim", "provider": "sim", "model": "m"}])
    await runtime.metrics_state.refresh()
    return {
        family.name + ("_total" if family.type == "counter" else ""): family.type
        for family in runtime.metrics.registry.collect()
    }


def documented() -> dict[str, str]:
    rows = table_rows(section(read("docs/operations.md"), "## Metrics"))
    return {name: cells[1] for name, cells in rows.items() if name != "metric"}


def test_every_documented_metric_is_exposed_and_every_exposed_one_documented(exposed):
    ours = {name: kind for name, kind in exposed.items() if not name.startswith("process_")}
    assert len(ours) >= 15
    assert documented() == ours
    assert any(name.startswith("process_") for name in exposed)  # mentioned beside the table


def dashboard_metrics() -> set[str]:
    names = set()
    for panel in json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]:
        for target in panel.get("targets", []):
            names |= set(re.findall(r"\b((?:datamill|process)_[a-z_]+)\b", target["expr"]))
    return names


def test_the_dashboard_asks_only_for_metrics_that_exist(exposed):
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["title"] == "datamill"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    histograms = {name for name, kind in exposed.items() if kind == "histogram"}
    missing = set()
    for name in dashboard_metrics():
        base = next((name.removesuffix(s) for s in _HISTOGRAM_SERIES if name.endswith(s)), None)
        if name not in exposed and base not in histograms:
            missing.add(name)
    assert not missing, f"the dashboard asks for metrics that do not exist: {sorted(missing)}"
    ours = {name for name in exposed if name.startswith("datamill_")}
    asked = {
        next(
            (
                n.removesuffix(s)
                for s in _HISTOGRAM_SERIES
                if n.endswith(s) and n.removesuffix(s) in histograms
            ),
            n,
        )
        for n in dashboard_metrics()
    }
    assert ours <= asked, f"metrics the dashboard shows nowhere: {sorted(ours - asked)}"
