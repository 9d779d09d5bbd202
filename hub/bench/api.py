"""The API's benchmark (``hub bench --api``): read-heavy HTTP load on ``hub api`` with wrk while the
pipeline runs under the load generator, and the change stream's latency from a till's commit.

On the stack the settings point at (``make bench-api`` gives it a fresh one): the worker and the
API are started, the load generator writes ``rate`` row changes/s into the three databases, and
for ``duration`` seconds wrk asks ``/v1/articles/{gtin}/availability`` for random articles of the
demo data (``connections`` open connections, 2 threads: a closed loop, so its latency is that of
an answer, not of a schedule). Meanwhile one client follows the change stream of
``unified.inventory`` and notes, for each till (POS) record, how long after its source commit it
arrived (one machine, one clock).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import requests
from rich.console import Console

from hub.bench.load import FixedClockLoad
from hub.bench.report import percentiles
from hub.bench.run import Bench, Timing, load_sources
from hub.client import HubApi, StreamEvent
from hub.settings import HubSettings
from hub.stack.procs import free_port

WRK_SCRIPT = """
local gtins = {%s}
request = function()
  return wrk.format("GET", "/v1/articles/" .. gtins[math.random(#gtins)] .. "/availability")
end
"""
UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk_report(text: str) -> dict[str, Any]:
    """What wrk --latency printed: requests/s, latency percentiles (ms), errors."""
    found: dict[str, Any] = {}
    match = re.search(r"Requests/sec:\s+([\d.]+)", text)
    found["requests_per_s"] = float(match.group(1)) if match else None
    latency = {}
    for pct, value, unit in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s)\s*$", text, re.M):
        latency[f"p{pct}"] = round(float(value) * UNITS[unit], 2)
    found["latency_ms"] = latency
    match = re.search(r"(\d+) requests in", text)
    found["requests"] = int(match.group(1)) if match else None
    match = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    found["non_2xx"] = int(match.group(1)) if match else 0
    match = re.search(r"Socket errors:.*", text)
    found["socket_errors"] = match.group(0) if match else None
    return found


class StreamProbe(threading.Thread):
    """Follows the inventory stream; each POS record's delay from its source commit (ms)."""

    def __init__(self, api: HubApi) -> None:
        super().__init__(daemon=True)
        self.api, self.measuring = api, False
        self.delays: list[float] = []

    def run(self) -> None:
        try:
            for event in self.api.stream(topic=["unified.inventory"]):
                self.note(event, time.time())
        except Exception:  # the API stopped: the run is over
            return

    def note(self, event: StreamEvent, now: float) -> None:
        value = event.value or {}
        if not self.measuring or value.get("source_system") != "pos":
            return
        committed = value.get("source_committed_at")
        if committed:
            at = datetime.fromisoformat(str(committed).replace("Z", "+00:00")).timestamp()
            self.delays.append((now - at) * 1000)


def measure(settings: HubSettings, console: Console, rate: int, duration: float,
            connections: int, seed: int) -> dict[str, Any]:  # fmt: skip
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed: apt-get install wrk")
    bench = Bench(settings, console, seed, Timing(5, duration))
    port = free_port()
    api_proc = bench.python("hub api", "-", "hub", "api", "--port", str(port))
    worker = bench.python("hub worker", settings.worker_id, "hub", "worker", "--loglevel",
                          "warning")  # fmt: skip
    url = f"http://{settings.host}:{port}"
    client = HubApi(url, api_key=settings.api_keys.get_secret_value().split(",")[0]
                    if settings.api_keys else None, ready_timeout=600)  # fmt: skip
    with bench.running(worker), bench.running(api_proc):
        bench.catch_up(worker, bench.worker_active)
        with console.status("hub api: reading the unified topics…"):
            client.status()
            while not client.status().ready:
                time.sleep(0.5)
        gtins = [
            row["gtin"]
            for row in requests.get(
                f"{url}/v1/stock", timeout=30, headers=dict(client.session.headers)
            ).json()["articles"]
        ]
        probe = StreamProbe(client)
        probe.start()
        load = FixedClockLoad(load_sources(bench.stack), rate, seed)
        load.start()
        script = Path(settings.state_dir) / "logs" / "wrk-availability.lua"
        script.write_text(WRK_SCRIPT % ", ".join(f'"{g}"' for g in gtins))
        try:
            time.sleep(5)  # the load settles
            probe.measuring = True
            changes_before, started = load.changes(), time.monotonic()
            with console.status(f"wrk: {duration:g} s of availability requests, {connections} "
                                f"connections, pipeline at {rate} changes/s…"):  # fmt: skip
                key = (
                    settings.api_keys.get_secret_value().split(",")[0] if settings.api_keys else ""
                )
                headers = [f"-HAuthorization: Bearer {key}"] if key else []
                done = subprocess.run([wrk, "-t2", f"-c{connections}", f"-d{duration:g}s",
                                       "--latency", "-s", str(script), *headers, url],
                                      capture_output=True, text=True, check=False)  # fmt: skip
            elapsed = time.monotonic() - started
            probe.measuring = False
            changes = load.changes() - changes_before
        finally:
            load.stop()
        lag = client.status().worker_lag
    report = wrk_report(done.stdout)
    return {
        "rate": rate, "duration_s": duration, "connections": connections,
        "changes_per_s": round(changes / elapsed, 1), "worker_lag_after": lag,
        "articles": len(gtins), "http": report, "wrk_output": done.stdout,
        "stream_pos_latency_ms": percentiles(probe.delays) | {"count": len(probe.delays)},
        "goals": {
            "http ≥ 2,000 req/s at p99 ≤ 50 ms": bool(report["requests_per_s"]
                                                     and report["requests_per_s"] >= 2000
                                                     and report["latency_ms"].get("p99", 1e9) <= 50),
            "stream p99 ≤ 100 ms from the till's commit": bool(
                probe.delays and percentiles(probe.delays)["p99"] <= 100),
        },
    }  # fmt: skip


def markdown(result: dict[str, Any]) -> str:
    http, stream = result["http"], result["stream_pos_latency_ms"]
    lat = http["latency_ms"]
    lines = [
        f"# hub api under load ({result['duration_s']:g} s, {result['connections']} connections, "
        f"pipeline at {result['changes_per_s']} changes/s)",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| availability requests/s | {http['requests_per_s']} |",
        f"| latency p50 / p90 / p99 | {lat.get('p50')} / {lat.get('p90')} / {lat.get('p99')} ms |",
        f"| non-2xx answers | {http['non_2xx']} |",
        f"| change stream, till commit → client: p50 / p99 / max | {stream.get('p50')} / "
        f"{stream.get('p99')} / {stream.get('max')} ms ({stream['count']} records) |",
        f"| worker lag after | {result['worker_lag_after']} raw records |",
        "",
        *(f"- {goal}: {'met' if met else 'not met'}" for goal, met in result["goals"].items()),
    ]
    return "\n".join(lines) + "\n"
