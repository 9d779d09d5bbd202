"""`hub bench` itself works: a tiny load measured end to end on the session's stack, every series.

A harness check, not a benchmark: it asserts that what the harness reports is there and plausible,
never how fast anything is.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest
import requests

from hub.bench.replay import scratch_registry
from hub.bench.run import TUNING
from hub.settings import HubSettings
from hub.stack.procs import free_port

pytestmark = pytest.mark.integration

STACK_PROCESSES = {
    "kafka",
    "connect",
    "pos db",
    "shop db",
    "erp db",
    "bench (probes)",
    "load writers",
}


def processes_of(step):
    return step["processes"]


def test_the_benchmark_harness_measures_a_tiny_load_in_every_series(stack, tmp_path):
    group = f"hub-bench-it-{uuid.uuid4().hex[:8]}"
    # Unified and control topics of its own: its worker group must not race the session's worker
    # on the session's topics (each publishes as its own state says; the last writer wins).
    topics = scratch_registry(HubSettings(kafka_bootstrap=stack.endpoints["kafka_bootstrap"]),
                              group, tmp_path)  # fmt: skip
    env = {**stack.env, "HUB_WORKER_ID": group, "HUB_WORKER_WEB_PORT": str(free_port()),
           "HUB_TOPICS_FILE": str(topics)}  # fmt: skip
    run = subprocess.run(
        [sys.executable, "-m", "hub", "bench", "--rates", "40", "--warmup", "3", "--measure", "8",
         "--no-ramp", "--replay", "3000", "--out", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=1200, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    (result_file,) = tmp_path.glob("bench-*.json")
    result = json.loads(result_file.read_text())
    assert list(result["series"]) == ["SUT", "BL4", "BL3", "BL2b", "BL2a"]
    consumers = {"SUT": "hub worker", "BL4": "BL4 loop", "BL3": "BL3 loop"}
    for series, (step,) in result["series"].items():
        assert step["rate"] == 40
        assert 30 <= step["changes_in_per_s"] <= 50, (series, step["writers"])
        assert not step["generator_short"], (series, step["writers"])
        assert processes_of(step)["load writers"]["cpu_s"] > 0, series
        assert step["raw_per_s"] > 0 and step["records_out_per_s"] > 0, (series, step)
        latency = step["latency_ms"]
        assert latency["all"]["count"] > 0, (series, step)
        assert 0 < latency["all"]["p50"] <= latency["all"]["p99"] <= latency["all"]["max"]
        assert {"pos", "shop"} <= set(latency), series  # the ERP's binlog stamps whole seconds
        assert step["drained"] and step["sustainable"], (series, step)
        processes = step["processes"]
        own = consumers.get(series)
        assert set(processes) == STACK_PROCESSES | ({own} if own else set()), series
        if own:
            assert step["consumer"] == own
            assert processes[own]["cpu_s"] > 0 and processes[own]["peak_rss_mb"] > 0
            assert step["consumed_per_s"] > 0 and step["debezium_latency_ms"]["count"] > 0
    assert result["ramp"] is None
    # The replay: a fresh group of 1, then 2 workers drained every raw record.
    replay = result["replay"]
    assert [run["workers"] for run in replay["runs"]] == [1, 2]
    for run in replay["runs"]:
        assert run["records"] >= 3000 and run["events_per_s"] > 0 and run["peak_rss_mb"] > 0, run
    assert replay["ratio"] > 0
    assert {t["target"] for t in result["summary"]["targets"]} >= {
        "replay ≥ 15,000 events/s with one worker",
        "replay with two workers ≥ 1.6 x one",
    }
    ratios = result["summary"]["ratios"][0]
    assert ratios["rate"] == 40 and ratios["sut_over_bl4_cpu_per_change"] > 0
    assert {t["target"] for t in result["summary"]["targets"]} >= {"worker RSS ≤ 300 MB"}
    markdown = result_file.with_suffix(".md").read_text()
    for series in result["series"]:
        assert f"| {series} | 40 |" in markdown
    assert result_file.with_suffix(".png").read_bytes().startswith(b"\x89PNG")
    # BL2a ran without the hub's latency tuning; the connectors have it back.
    for name in ("hub-pos", "hub-shop", "hub-erp"):
        config = requests.get(
            f"{stack.endpoints['connect_url']}/connectors/{name}/config", timeout=10
        ).json()
        assert config["poll.interval.ms"] == "10" and all(key in config for key in TUNING), name
