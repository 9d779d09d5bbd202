"""The Grafana dashboard in deploy/ charts metrics the hub exports (a renamed metric fails here)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from hub.api import metrics as api_metrics
from hub.worker import metrics as worker_metrics

DASHBOARD = Path(__file__).parents[2] / "deploy/grafana/hub.json"


def exported() -> set[str]:
    names: set[str] = set()
    for registry in (api_metrics.REGISTRY, worker_metrics.REGISTRY):
        for family in registry.collect():
            names |= {sample.name for sample in family.samples} | {family.name}
    return names


def test_every_metric_the_dashboard_charts_is_exported():
    panels = json.loads(DASHBOARD.read_text())["panels"]
    charted = {name for panel in panels for target in panel["targets"]
               for name in re.findall(r"\bhub_[a-z0-9_]+", target["expr"])}  # fmt: skip
    known = exported()
    # Histograms export _bucket/_count/_sum only once observed, counters _total: their families.
    missing = {name for name in charted
               if name not in known and re.sub(r"_(bucket|count|sum|total)$", "", name) not in known}  # fmt: skip
    assert not missing, f"charted but not exported: {sorted(missing)}"
    assert {"hub_source_commit_to_append_seconds_bucket", "hub_api_worker_lag",
            "hub_dead_letters_total", "hub_alerts_firing",
            "hub_api_request_seconds_bucket"} <= charted  # fmt: skip
