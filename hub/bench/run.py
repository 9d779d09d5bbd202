"""``hub bench``: the hub as users run it (SUT) under the fixed-clock load, step by step.

Each step starts the load at its rate, lets it warm up, measures for a fixed period (latency of
the records whose source commit falls in it, changes in and records out, lag each second, CPU and
memory of every process), stops the load and waits for the pipeline to drain before the next.
Results go to ``bench/results/`` as JSON and a Markdown table.
"""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from hub.bench.load import FixedClockLoad
from hub.bench.probe import LatencyProbe, ProcessUse, Sample, process_use
from hub.kafka_io import group_lag
from hub.settings import HubSettings
from hub.topics import registry

PERCENTILES = (50, 90, 99, 99.9)


@dataclass(frozen=True)
class Step:
    rate: int
    warmup_s: float
    measure_s: float


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50, p90, p99, p99.9 and max (nearest rank), in the unit of ``values``."""
    if not values:
        return {}
    ordered = sorted(values)
    out = {
        f"p{p:g}": ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] for p in PERCENTILES
    }
    out["max"] = ordered[-1]
    out["mean"] = statistics.fmean(ordered)
    return {k: round(v, 2) for k, v in out.items()}


def latency_by_system(samples: Sequence[Sample], start_ms: float, end_ms: float) -> dict[str, Any]:
    window = [s for s in samples if start_ms <= s.committed_ms < end_ms]
    result: dict[str, Any] = {
        "all": {"count": len(window), **percentiles([s.latency_ms for s in window])}
    }
    for system in sorted({s.system for s in window}):
        mine = [s.latency_ms for s in window if s.system == system]
        result[system] = {"count": len(mine), **percentiles(mine)}
    return result


class Bench:
    def __init__(self, settings: HubSettings, console: Console, seed: int) -> None:
        from hub.stack.manager import Stack

        self.settings, self.console, self.seed = settings, console, seed
        self.stack = Stack(settings, console)
        self.unified = [s for s in registry().topics.values() if s.kind == "unified"]
        self.raw = [s for s in registry().topics.values() if s.kind == "raw"]

    def processes(self, worker: subprocess.Popen[bytes]) -> dict[str, int]:
        procs = {"kafka": self.stack.kafka.proc, "connect": self.stack.connect.proc}
        procs |= {f"{system} db": db.proc for system, db in self.stack.sources.items()}
        pids = {name: proc.pid() for name, proc in procs.items()}
        return {name: pid for name, pid in pids.items() if pid} | {"hub worker": worker.pid}

    def drain(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while group_lag(self.settings.bootstrap, self.settings.worker_id, self.raw) > 0:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.5)
        return True

    def step(self, step: Step, worker: subprocess.Popen[bytes]) -> dict[str, Any]:
        probe = LatencyProbe(self.settings.bootstrap, self.unified)
        probe.start()
        load = FixedClockLoad(self.stack.open, step.rate, self.seed)
        load.start()
        time.sleep(step.warmup_s)
        pids = self.processes(worker)
        before = {name: process_use(pid) for name, pid in pids.items()}
        start_ms, changes_before = time.time() * 1000, load.changes()
        lag: list[int] = []
        while time.time() * 1000 < start_ms + step.measure_s * 1000:
            lag.append(group_lag(self.settings.bootstrap, self.settings.worker_id, self.raw))
            time.sleep(1.0)
        end_ms, changes = time.time() * 1000, load.changes() - changes_before
        after = {name: process_use(pid) for name, pid in pids.items()}
        load.stop()
        drained = self.drain(120)
        probe.stop()
        seconds = (end_ms - start_ms) / 1000
        out = sum(1 for t in probe.appended if start_ms <= t < end_ms)
        return {
            "rate": step.rate,
            "changes_in_per_s": round(changes / seconds, 1),
            "records_out_per_s": round(out / seconds, 1),
            "latency_ms": latency_by_system(probe.samples, start_ms, end_ms),
            "latency_clock": probe.clock,
            "lag": {"max": max(lag, default=0), "last": lag[-1] if lag else 0, "samples": lag},
            "drained": drained,
            "writers": {w.system: asdict(w) for w in load.writers.values()},
            "processes": {name: _use(before[name], after[name], changes) for name in pids},
        }

    def run(self, steps: Sequence[Step]) -> dict[str, Any]:
        log = self.settings.state_dir / "logs" / "bench-worker.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            worker = subprocess.Popen([sys.executable, "-m", "hub", "worker", "--loglevel", "warning"],
                                      stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
        try:
            with self.console.status("Worker catching up with the raw topics…"):
                time.sleep(5)
                if not self.drain(600):
                    raise RuntimeError(f"the worker did not catch up within 600 s; see {log}")
            results = []
            for step in steps:
                with self.console.status(f"{step.rate} changes/s: {step.warmup_s:g} s warm-up, "
                                         f"{step.measure_s:g} s measured…"):  # fmt: skip
                    result = self.step(step, worker)
                results.append(result)
                all_ = result["latency_ms"]["all"]
                self.console.print(f"[green]✓[/] {step.rate:>5} changes/s offered: "
                                   f"{result['changes_in_per_s']:>7} in, {result['records_out_per_s']:>7} out/s, "
                                   f"p50 {all_.get('p50', '-')} ms, p99 {all_.get('p99', '-')} ms, "
                                   f"max lag {result['lag']['max']}")  # fmt: skip
        finally:
            worker.terminate()
            worker.wait(60)
        return {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "seed": self.seed,
            "series": {"SUT": results},
        }


def _use(before: ProcessUse, after: ProcessUse, changes: int) -> dict[str, float]:
    cpu = after.cpu_s - before.cpu_s
    return {
        "cpu_s": round(cpu, 2),
        "cpu_s_per_1000_changes": round(cpu / changes * 1000, 3) if changes else 0.0,
        "rss_mb": round(after.rss_mb, 1),
        "peak_rss_mb": round(after.peak_rss_mb, 1),
    }


def machine() -> dict[str, Any]:
    cpus = Path("/proc/cpuinfo").read_text().count("processor\t:")
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())  # fmt: skip
    memory = next(line.split(":", 1)[1].strip() for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))  # fmt: skip
    return {"cpus": cpus, "cpu": model, "memory": memory, "python": platform.python_version()}


def markdown(result: dict[str, Any]) -> str:
    """The steps as a Markdown table, one row per series and rate."""
    lines = [
        f"Run {result['when']} on {result['machine']['cpus']} x {result['machine']['cpu']}, "
        f"{result['machine']['memory']}; seed {result['seed']}; latency: source commit → Kafka append.",
        "",
        "| series | offered/s | in/s | out/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms "
        "| max lag | worker CPU s/1k | worker RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    for series, steps in result["series"].items():
        for step in steps:
            lat = step["latency_ms"]["all"]
            worker = step["processes"].get("hub worker", {})
            lines.append(
                f"| {series} | {step['rate']} | {step['changes_in_per_s']} | {step['records_out_per_s']} | "
                + " | ".join(str(lat.get(k, "-")) for k in ("p50", "p90", "p99", "p99.9", "max"))
                + f" | {step['lag']['max']} | {worker.get('cpu_s_per_1000_changes', '-')} "
                f"| {worker.get('peak_rss_mb', '-')} |"
            )
    return "\n".join(lines) + "\n"


def write(result: dict[str, Any], directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = result["when"].replace(":", "").replace("-", "")
    json_path, md_path = directory / f"bench-{stamp}.json", directory / f"bench-{stamp}.md"
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    md_path.write_text(markdown(result))
    return json_path, md_path
