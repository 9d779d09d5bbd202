"""`hub bench` itself works: a tiny load measured end to end on the session's stack.

A harness check, not a benchmark: it asserts that what the harness reports is there and plausible,
never how fast anything is.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

from hub.stack.procs import free_port

pytestmark = pytest.mark.integration


def test_the_benchmark_harness_measures_a_tiny_load(stack, tmp_path):
    env = {**stack.env, "HUB_WORKER_ID": f"hub-bench-it-{uuid.uuid4().hex[:8]}",
           "HUB_WORKER_WEB_PORT": str(free_port())}  # fmt: skip
    run = subprocess.run(
        [sys.executable, "-m", "hub", "bench", "--rates", "40", "--warmup", "3", "--measure", "8",
         "--out", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    (result_file,) = tmp_path.glob("bench-*.json")
    result = json.loads(result_file.read_text())
    (step,) = result["series"]["SUT"]
    assert step["rate"] == 40
    assert 30 <= step["changes_in_per_s"] <= 50, step["writers"]
    latency = step["latency_ms"]
    assert latency["all"]["count"] > 0, step
    assert 0 < latency["all"]["p50"] <= latency["all"]["p99"] <= latency["all"]["max"]
    assert {"pos", "shop"} <= set(latency)  # the ERP's binlog stamps whole seconds: not required
    assert step["drained"]
    processes = step["processes"]
    assert {"kafka", "connect", "pos db", "shop db", "erp db", "hub worker"} <= set(processes)
    assert all(use["cpu_s"] >= 0 for use in processes.values())
    assert processes["hub worker"]["cpu_s"] > 0 and processes["hub worker"]["peak_rss_mb"] > 0
    markdown = result_file.with_suffix(".md").read_text()
    assert "| SUT | 40 |" in markdown
