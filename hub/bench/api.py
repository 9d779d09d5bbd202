"""The API's benchmark (``hub bench --api``): read-heavy HTTP load on ``hub api`` while the
pipeline runs under the load generator, and the change stream's latency from a till's commit.

On the stack the settings point at (``make bench-api`` gives it a fresh one): the worker and the
API are started, the load generator writes ``rate`` row changes/s into the three databases, and
for ``duration`` seconds vegeta asks ``/v1/articles/{gtin}/availability`` for random articles of
the demo data at ``http_rate`` requests/s — an open loop: requests leave on schedule whatever the
answers' latency, so a slow answer shows in the percentiles instead of slowing the load down (a
closed loop such as wrk's would take every CPU cycle it can, from the pipeline too). Meanwhile
one client follows the change stream of ``unified.inventory`` and notes, for each till (POS)
record, how long after its source commit it arrived (one machine, one clock).
"""

from __future__ import annotations

import json
import os
import random
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

VEGETA = "github.com/tsenart/vegeta/v12@v12.12.0"


def vegeta_binary(cache: Path, console: Console) -> str:
    """vegeta (an HTTP load tool that keeps a fixed request rate, whatever the answers' latency:
    an open loop), from PATH or built once with Go into ``cache``."""
    found = shutil.which("vegeta") or (
        str(cache / "vegeta") if (cache / "vegeta").exists() else None
    )
    if found:
        return found
    go = shutil.which("go")
    if go is None:
        raise RuntimeError(f"vegeta is not installed and Go is not there to build it: install Go, "
                           f"or put vegeta on PATH (go install {VEGETA})")  # fmt: skip
    cache.mkdir(parents=True, exist_ok=True)
    with console.status(f"building vegeta ({VEGETA}) with Go, once…"):
        subprocess.run([go, "install", VEGETA], env={**os.environ, "GOBIN": str(cache)},
                       check=True, capture_output=True)  # fmt: skip
    return str(cache / "vegeta")


def vegeta_report(report: dict[str, Any]) -> dict[str, Any]:
    """What ``vegeta report -type=json`` says: rate, throughput, latency percentiles (ms), status
    codes and the first errors."""
    latencies = report.get("latencies", {})
    return {
        "offered_per_s": round(report.get("rate", 0.0), 1),
        "answered_per_s": round(report.get("throughput", 0.0), 1),
        "requests": report.get("requests", 0),
        "success": report.get("success", 0.0),
        "latency_ms": {name: round(latencies[key] / 1e6, 2)
                       for name, key in (("p50", "50th"), ("p90", "90th"), ("p95", "95th"),
                                         ("p99", "99th"), ("max", "max")) if key in latencies},
        "status_codes": report.get("status_codes", {}),
        "errors": (report.get("errors") or [])[:5],
    }  # fmt: skip


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
            at = datetime.fromisoformat(str(committed)).timestamp()
            self.delays.append((now - at) * 1000)


def measure(settings: HubSettings, console: Console, rate: int, http_rate: int,
            duration: float, seed: int) -> dict[str, Any]:  # fmt: skip
    vegeta = vegeta_binary(settings.jar_cache.parent / "tools", console)
    bench = Bench(settings, console, seed, Timing(5, duration))
    port = free_port()
    api_proc = bench.python("hub api", "-", "hub", "api", "--port", str(port))
    worker = bench.python("hub worker", settings.worker_id, "hub", "worker", "--loglevel",
                          "warning")  # fmt: skip
    url = f"http://{settings.host}:{port}"
    key = settings.api_keys.get_secret_value().split(",")[0] if settings.api_keys else None
    client = HubApi(url, api_key=key, ready_timeout=600)
    logs = settings.state_dir / "logs"
    with bench.running(worker), bench.running(api_proc):
        bench.catch_up(worker, bench.worker_active)
        with console.status("hub api: reading the unified topics…"):
            while not client.status().ready:
                time.sleep(0.5)
        gtins = [
            row["gtin"]
            for row in requests.get(
                f"{url}/v1/stock", timeout=30, headers=dict(client.session.headers)
            ).json()["articles"]
        ]
        rng = random.Random(seed)
        targets = logs / "vegeta-availability.txt"
        header = f"Authorization: Bearer {key}\n" if key else ""
        targets.write_text("".join(f"GET {url}/v1/articles/{rng.choice(gtins)}/availability\n"
                                   f"{header}\n" for _ in range(5000)))  # fmt: skip
        probe = StreamProbe(client)
        probe.start()
        load = FixedClockLoad(load_sources(bench.stack), rate, seed)
        load.start()
        try:
            time.sleep(5)  # the load settles
            probe.measuring = True
            changes_before, started = load.changes(), time.monotonic()
            with console.status(f"vegeta: {http_rate} availability requests/s for {duration:g} s, "
                                f"pipeline at {rate} changes/s…"):  # fmt: skip
                attack = subprocess.run([vegeta, "attack", f"-rate={http_rate}/s",
                                         f"-duration={duration:g}s", f"-targets={targets}",
                                         "-timeout=10s"], capture_output=True, check=True)  # fmt: skip
            elapsed = time.monotonic() - started
            probe.measuring = False
            changes = load.changes() - changes_before
        finally:
            load.stop()
        lag = client.status().worker_lag
    done = subprocess.run([vegeta, "report", "-type=json"], input=attack.stdout,
                          capture_output=True, check=True)  # fmt: skip
    http = vegeta_report(json.loads(done.stdout))
    stream = percentiles(probe.delays) | {"count": len(probe.delays)}
    return {
        "rate": rate, "http_rate": http_rate, "duration_s": duration,
        "changes_per_s": round(changes / elapsed, 1), "worker_lag_after": lag,
        "articles": len(gtins), "http": http, "stream_pos_latency_ms": stream,
        "goals": {
            "http ≥ 2,000 req/s at p99 ≤ 50 ms": http["answered_per_s"] >= 2000
            and http["success"] == 1 and http["latency_ms"].get("p99", 1e9) <= 50,
            "stream p99 ≤ 100 ms from the till's commit": bool(probe.delays)
            and stream["p99"] <= 100,
        },
    }  # fmt: skip


def markdown(result: dict[str, Any]) -> str:
    http, stream = result["http"], result["stream_pos_latency_ms"]
    lat = http["latency_ms"]
    lines = [
        f"# hub api under load ({result['http_rate']} availability requests/s offered for "
        f"{result['duration_s']:g} s, pipeline at {result['changes_per_s']} changes/s)",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| availability requests/s offered / answered | {http['offered_per_s']} / "
        f"{http['answered_per_s']} |",
        f"| latency p50 / p90 / p99 / max | {lat.get('p50')} / {lat.get('p90')} / {lat.get('p99')}"
        f" / {lat.get('max')} ms |",
        f"| answered 200 | {http['success'] * 100:.2f} % ({http['status_codes']}) |",
        f"| change stream, till commit → client: p50 / p99 / max | {stream.get('p50')} / "
        f"{stream.get('p99')} / {stream.get('max')} ms ({stream['count']} records) |",
        f"| worker lag after | {result['worker_lag_after']} raw records |",
        "",
        *(f"- {goal}: {'met' if met else 'not met'}" for goal, met in result["goals"].items()),
    ]
    return "\n".join(lines) + "\n"
