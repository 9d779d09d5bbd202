"""``hub bench``: the hub and its baselines under the same fixed-clock load, step by step.

Series, run in this order on the same stack with the same seed (each step of each series replays
the same seeded transactions at its rate):

- **SUT**: the hub as users run it (``hub worker``); then the ramp, which bisects between its
  last sustainable and first unsustainable step for the highest rate where lag stops growing;
- **BL4**: the hub's core in a plain confluent-kafka loop (no Faust), from the SUT's state;
- **BL3**: a plain confluent-kafka loop forwarding raw records unchanged (the transport limit);
- **BL2b**: Debezium → Kafka alone, configured as the hub configures it;
- **BL2a**: Debezium → Kafka alone with Debezium's default batching (``poll.interval.ms`` 500 ms,
  2048-event batches), restored to the hub's settings afterwards.

Before the first series, the stack itself warms up: the load runs at ``WARM_RATE`` with nothing
consuming (Kafka's and Connect's JIT compilers are still busy for a while after a fresh start, and
the first series would pay for it). Each step starts the load, lets it warm up, measures for a
fixed period (latency of the records whose source commit falls in it, changes in, raw records
appended, records out, consumer lag each second, CPU and memory of every process), stops the load
and waits for the pipeline to drain. A series that consumes stops climbing at its first
unsustainable step (lag kept growing, stood above a second's worth of changes, or did not drain):
higher rates would only measure a growing queue.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from rich.console import Console

from hub.bench.baselines import raw_specs, scratch
from hub.bench.load import FixedClockLoad, Source
from hub.bench.probe import LatencyProbe, ProcessUse, process_use
from hub.bench.replay import replay as replay_run
from hub.bench.report import growth, latency_by_system, machine, summarize, trough
from hub.connect_client import ConnectClient
from hub.connectors import load_definitions, render_config, shared_topics
from hub.core import golden
from hub.core.availability import INVENTORY
from hub.core.availability import TOPIC as AVAILABILITY
from hub.kafka_io import group_lag
from hub.models import MODELS
from hub.settings import HubSettings
from hub.stack.kafka import ensure_topics
from hub.stack.manager import Stack, wait_running
from hub.stack.postgres import SourceDatabase
from hub.topics import TopicSpec, registry
from hub.worker.metrics import worker_is_active

SERIES = {
    "SUT": "the hub as users run it (hub worker: its stream loop, the core, transactional producers)",
    "BL4": "the hub's core (decode, normalise, dedupe, route) in a plain confluent-kafka loop",
    "BL3": "a plain confluent-kafka loop forwarding raw records unchanged",
    "BL2b": "Debezium → Kafka alone, configured as the hub configures it",
    "BL2a": "Debezium → Kafka alone, with Debezium's default batching",
}
# What the hub tunes for latency in connectors/*.yaml; BL2a runs without it (Debezium's defaults).
TUNING = ("poll.interval.ms", "max.batch.size", "max.queue.size")
SUSTAINED_SLOPE = 0.05  # lag growing by more than this share of the offered rate: not sustainable
# The lag's troughs can miss a commit by this much of the rate over a short period (see ``growth``).
TROUGH_NOISE_S = 1.5
STANDING_S = 1.0  # nor may a consumer keep more than this many seconds of changes queued,
QUEUE_FLOOR = (
    200  # records: below this much lag (one commit's worth at low rates) nothing is queued
)
DRAIN_S = 180.0  # after a step, how long the pipeline may take to drain and still be "sustained"
SETTLE_S = 300.0  # before a step, how long to wait for a backlog left by the previous one
WARM_RATE = 1000  # changes/s the stack warms up at, before the first series
LOAD = "bench (probes)"  # this process: its own CPU only, not its children's
LOAD_WRITERS = "load writers"  # the load generator's writer processes


@dataclass(frozen=True)
class Timing:
    warmup_s: float
    measure_s: float


@dataclass
class Consumer:
    """The process a series measures (the worker, or a baseline loop) and its consumer group."""

    label: str
    group: str
    argv: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None


class Bench:
    def __init__(self, settings: HubSettings, console: Console, seed: int, timing: Timing) -> None:
        self.settings, self.console, self.seed, self.timing = settings, console, seed, timing
        self.stack = Stack(settings, console)
        self.raw = raw_specs()
        self.shared = shared_topics(load_definitions(), registry())  # whose lag the group shows
        # The engine's outputs (what BL4 makes too); availability is measured apart (it is one
        # more hop: its records are made from the inventory ones).
        self.unified = [s for s in registry().topics.values()
                        if s.kind == "unified" and s.model in MODELS]  # fmt: skip
        self.inventory, self.availability = registry()[INVENTORY], registry()[AVAILABILITY]
        self.records, self.golden = registry()[golden.RECORDS], registry()[golden.GOLDEN]
        self.logs = settings.state_dir / "logs"
        # Sources whose commit times are whole seconds (binary log): left out of the "all" latency.
        self.coarse = frozenset(
            s for s, d in load_definitions().items() if d.connection.kind != "postgres"
        )

    # ---- processes ---------------------------------------------------------------------------

    def processes(self, consumer: Consumer | None) -> dict[str, int]:
        procs = {"kafka": self.stack.kafka.proc, "connect": self.stack.connect.proc}
        procs |= {f"{system} db": db.proc for system, db in self.stack.sources.items()}
        pids = {name: pid for name, proc in procs.items() if (pid := proc.pid())}
        if consumer is not None and consumer.proc is not None:
            pids[consumer.label] = consumer.proc.pid
        return pids | {LOAD: os.getpid()}

    @contextmanager
    def running(self, consumer: Consumer) -> Iterator[Consumer]:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"bench-{consumer.label.replace(' ', '-').lower()}.log"
        with log.open("ab") as out:
            consumer.proc = subprocess.Popen(consumer.argv, stdout=out, stderr=subprocess.STDOUT,
                                             env={**os.environ, **consumer.env})  # fmt: skip
        try:
            yield consumer
        finally:
            consumer.proc.terminate()
            try:
                consumer.proc.wait(60)
            except subprocess.TimeoutExpired:
                consumer.proc.kill()
                consumer.proc.wait()

    def lag(self, consumer: Consumer) -> int:
        return group_lag(self.settings.bootstrap, consumer.group, self.shared)

    def catch_up(self, consumer: Consumer, ready: Any = None, timeout: float = 900) -> None:
        """Wait until ``consumer`` is up (``ready``) and has nothing left to read, or fail."""
        with self.console.status(
            f"{consumer.label}: starting and catching up with the raw topics…"
        ):
            if not self.settled(consumer, timeout, ready):
                raise RuntimeError(f"{consumer.label} did not catch up within {timeout:.0f} s; "
                                   f"see {self.logs}")  # fmt: skip

    def settled(
        self, consumer: Consumer | None, timeout: float = SETTLE_S, ready: Any = None
    ) -> bool:
        """Whether ``consumer`` is ``ready`` and has read everything, waiting up to ``timeout``: a
        step measured on top of the previous one's backlog would measure that backlog."""
        deadline = time.monotonic() + timeout
        while consumer is not None and not ((ready is None or ready()) and self.lag(consumer) == 0):
            if consumer.proc is not None and consumer.proc.poll() is not None:
                raise RuntimeError(f"{consumer.label} exited ({consumer.proc.returncode}); see "
                                   f"{self.logs}")  # fmt: skip
            if time.monotonic() > deadline:
                return False
            time.sleep(1)
        return True

    def worker_active(self) -> bool:
        return worker_is_active(self.settings.host, self.settings.worker_web_port)

    # ---- one step ----------------------------------------------------------------------------

    def step(self, outputs: Sequence[TopicSpec], rate: int, timing: Timing,
             consumer: Consumer | None, stock: bool = False) -> dict[str, Any]:  # fmt: skip
        """One measured step at ``rate``; latency is measured on ``outputs`` (and, with
        ``stock``, on unified.inventory and unified.availability apart)."""
        probe = LatencyProbe(self.settings.bootstrap, outputs)
        raw = LatencyProbe(self.settings.bootstrap, self.raw) if consumer else probe
        probes = {id(probe): probe, id(raw): raw}
        if stock:
            levels = LatencyProbe(self.settings.bootstrap, [self.inventory])
            figures = LatencyProbe(self.settings.bootstrap, [self.availability])
            people = LatencyProbe(self.settings.bootstrap, [self.records])
            customers = LatencyProbe(self.settings.bootstrap, [self.golden])
            probes |= {id(p): p for p in (levels, figures, people, customers)}
        for p in probes.values():
            p.start()
        load = FixedClockLoad(load_sources(self.stack), rate, self.seed)
        load.start()
        time.sleep(timing.warmup_s)
        pids = self.processes(consumer)
        before = {name: process_use(pid, name != LOAD) for name, pid in pids.items()}
        writers_before = _sum_use(load.pids())
        start_ms, changes_before = time.time() * 1000, load.changes()
        lag: list[tuple[float, int]] = []
        while time.time() * 1000 < start_ms + timing.measure_s * 1000:
            if consumer is not None:
                lag.append((time.monotonic(), self.lag(consumer)))
            time.sleep(1.0)
        end_ms, changes = time.time() * 1000, load.changes() - changes_before
        after = {name: process_use(pid, name != LOAD) for name, pid in pids.items()}
        writers_after = _sum_use(load.pids())
        load.stop()
        drained = self.drain(consumer, raw)
        for p in probes.values():
            p.stop()
        seconds = (end_ms - start_ms) / 1000
        in_s = changes / seconds
        raw_s = raw.count(start_ms, end_ms) / seconds
        result: dict[str, Any] = {
            "rate": rate,
            "changes_in_per_s": round(in_s, 1),
            "raw_per_s": round(raw_s, 1),
            "records_out_per_s": round(probe.count(start_ms, end_ms) / seconds, 1),
            "latency_ms": latency_by_system(probe.samples, start_ms, end_ms, self.coarse),
            "latency_clock": probe.clock,
            "drained": drained,
            # The load generator did not offer the rate asked for (its writers fell behind their
            # clocks): the step then measures the generator, not the pipeline.
            "generator_short": in_s < 0.95 * rate,
            "writers": {w.system: asdict(w) for w in load.writers.values()},
            "processes": {name: _use(before[name], after[name], changes) for name in pids}
            | {LOAD_WRITERS: _use(writers_before, writers_after, changes)},
        }
        if stock:
            result["stock"] = {
                "inventory_latency_ms": latency_by_system(levels.samples, start_ms, end_ms,
                                                          self.coarse)["all"],
                "availability_latency_ms": latency_by_system(figures.samples, start_ms, end_ms,
                                                             self.coarse)["all"],
                "availability_out_per_s": round(figures.count(start_ms, end_ms) / seconds, 1),
                # By the time a read_committed consumer gets them: what a channel waits for.
                "inventory_visible_ms": latency_by_system(levels.visible, start_ms, end_ms,
                                                          self.coarse)["all"],
                "availability_visible_ms": latency_by_system(figures.visible, start_ms, end_ms,
                                                             self.coarse)["all"],
            }  # fmt: skip
            result["identity"] = {
                "records_latency_ms": latency_by_system(people.samples, start_ms, end_ms,
                                                        self.coarse)["all"],
                "golden_latency_ms": latency_by_system(customers.samples, start_ms, end_ms,
                                                       self.coarse)["all"],
                "records_visible_ms": latency_by_system(people.visible, start_ms, end_ms,
                                                        self.coarse)["all"],
                "golden_visible_ms": latency_by_system(customers.visible, start_ms, end_ms,
                                                       self.coarse)["all"],
                "records_out_per_s": round(people.count(start_ms, end_ms) / seconds, 1),
                "golden_out_per_s": round(customers.count(start_ms, end_ms) / seconds, 1),
            }  # fmt: skip
        if consumer is None:
            # Every change committed in the window reached Kafka. Counted by commit time, not by
            # arrival: at a few changes a second, a burst (a stocktake) that Debezium delivers
            # half a second later (BL2a's default poll interval) fell out of an arrival window
            # and made a step look unsustained.
            delivered = raw.count_committed(start_ms, end_ms) / seconds
            result["delivered_per_s"] = round(delivered, 1)
            result["sustainable"] = drained and delivered >= 0.95 * in_s
            return result
        counts = [n for _, n in lag]
        grows = growth(lag)
        result |= {
            "consumer": consumer.label,
            "consumed_per_s": round(raw_s - (counts[-1] - counts[0]) / seconds, 1) if counts else 0,
            "debezium_latency_ms": latency_by_system(raw.samples, start_ms, end_ms, self.coarse)[
                "all"
            ],
            "lag": {
                "max": max(counts, default=0),
                "last": counts[-1] if counts else 0,
                "growth_per_s": round(grows, 1),
                "standing": trough(lag),
                "samples": counts,
            },
            "sustainable": drained
            and grows
            <= max(
                SUSTAINED_SLOPE * in_s,
                TROUGH_NOISE_S * in_s / timing.measure_s,
                QUEUE_FLOOR / timing.measure_s,
            )
            and trough(lag) <= max(STANDING_S * in_s, QUEUE_FLOOR),
        }
        return result

    def warm_up(self) -> dict[str, Any]:
        """Run the load with nothing consuming until the JVMs are warm; wait for Debezium to go
        quiet."""
        seconds = min(30.0, max(10.0, 3 * self.timing.warmup_s))
        with self.console.status(f"warming the stack up: {WARM_RATE} changes/s for {seconds:g} s…"):
            raw = LatencyProbe(self.settings.bootstrap, self.raw)
            raw.start()
            load = FixedClockLoad(load_sources(self.stack), WARM_RATE, self.seed)
            load.start()
            time.sleep(seconds)
            load.stop()
            quiet = self.drain(None, raw)
            raw.stop()
        self.console.print(
            f"[green]✓[/] stack warmed up: {load.changes():,} changes in {seconds:g} s"
        )
        return {"rate": WARM_RATE, "seconds": seconds, "changes": load.changes(), "quiet": quiet}

    def drain(self, consumer: Consumer | None, raw: LatencyProbe) -> bool:
        """Wait until the consumer has read everything, or (no consumer) Debezium has gone quiet."""
        deadline = time.monotonic() + DRAIN_S
        while time.monotonic() < deadline:
            if consumer is not None and self.lag(consumer) == 0:
                return True
            if consumer is None and raw.quiet_for(3.0):
                return True
            time.sleep(0.5)
        return False

    def steps(self, name: str, outputs: Sequence[TopicSpec], rates: Sequence[int],
              consumer: Consumer | None, stock: bool = False) -> list[dict[str, Any]]:  # fmt: skip
        results: list[dict[str, Any]] = []
        skip = None
        for rate in rates:
            if skip is None and not self.settled(consumer):
                skip = f"the backlog did not drain within {SETTLE_S:g} s"
            if skip is not None:
                results.append({"rate": rate, "skipped": skip})
                continue
            with self.console.status(f"{name} at {rate} changes/s: {self.timing.warmup_s:g} s "
                                     f"warm-up, {self.timing.measure_s:g} s measured…"):  # fmt: skip
                result = self.step(outputs, rate, self.timing, consumer, stock)
            results.append(result)
            self.report(name, result)
            if consumer is not None and not result["sustainable"]:
                skip = "above this series' sustainable rate"
        return results

    def report(self, name: str, result: dict[str, Any]) -> None:
        lat = result["latency_ms"]["all"]
        mark = "[green]✓[/]" if result["sustainable"] else "[yellow]✗[/]"
        consumed = f", {result['consumed_per_s']:>7} consumed" if "consumed_per_s" in result else ""
        short = " [red](the load generator fell short)[/]" if result.get("generator_short") else ""
        if "stock" in result:
            added = result["stock"]["availability_latency_ms"]
            short += (
                f"; availability p50 {added.get('p50', '-')} ms, p99 {added.get('p99', '-')} ms"
            )
        self.console.print(f"{mark} {name:<4} {result['rate']:>5}/s offered: {result['changes_in_per_s']:>7} in"
                           f"{consumed}, {result['records_out_per_s']:>7} out/s, p50 {lat.get('p50', '-')} ms, "
                           f"p99 {lat.get('p99', '-')} ms"
                           + (f", lag max {result['lag']['max']}" if "lag" in result else "") + short)  # fmt: skip

    # ---- series ------------------------------------------------------------------------------

    def python(self, label: str, group: str, *args: str) -> Consumer:
        return Consumer(label, group, [sys.executable, "-m", *args],
                        {"HUB_WORKER_ID": self.settings.worker_id})  # fmt: skip

    def sut(
        self, rates: Sequence[int], ramp: bool
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        worker = self.python(
            "hub worker", self.settings.worker_id, "hub", "worker", "--loglevel", "warning"
        )
        with self.running(worker):
            self.catch_up(worker, self.worker_active)
            results = self.steps("SUT", self.unified, rates, worker, stock=True)
            found = self.ramp(worker, results) if ramp else None
        return results, found

    def ramp(self, worker: Consumer, steps: list[dict[str, Any]]) -> dict[str, Any]:
        """Bisect between the last sustainable and the first unsustainable step rate."""
        measured = [s for s in steps if "skipped" not in s]
        low = max((s["rate"] for s in measured if s["sustainable"]), default=0)
        high = min(
            (s["rate"] for s in measured if not s["sustainable"]),
            default=2 * max(s["rate"] for s in measured),
        )
        timing = Timing(min(5.0, self.timing.warmup_s), min(20.0, self.timing.measure_s))
        probes: list[dict[str, Any]] = []
        note = None
        while high - low > max(100, low // 20) and len(probes) < 5:
            if not self.settled(worker):
                note = f"stopped: the backlog did not drain within {SETTLE_S:g} s"
                break
            rate = (low + high) // 2
            with self.console.status(f"ramp: {rate} changes/s…"):
                result = self.step(self.unified, rate, timing, worker)
            self.report("ramp", result)
            probes.append({k: result[k] for k in ("rate", "changes_in_per_s", "consumed_per_s",
                                                  "sustainable", "lag", "drained")})  # fmt: skip
            if result["sustainable"] and result["changes_in_per_s"] >= 0.95 * rate:
                low = rate
            else:
                high = rate
        self.console.print(
            f"[bold]ramp:[/] highest sustainable rate {low} changes/s (not at {high})"
        )
        return {"sustainable_rate": low, "unsustainable_rate": high, "probes": probes, "note": note}

    def baseline_loop(self, name: str, loop: str, copies: Sequence[TopicSpec],
                      rates: Sequence[int]) -> list[dict[str, Any]]:  # fmt: skip
        """BL4 (``engine``) or BL3 (``forward``): its loop process, writing to scratch copies
        of ``copies``, which the probe measures."""
        outputs = [scratch(spec, name) for spec in copies]
        ensure_topics(self.settings.bootstrap, outputs)
        group = f"hub-bench-{name.lower()}-{uuid.uuid4().hex[:8]}"
        consumer = self.python(f"{name} loop", group, "hub.bench.baselines", loop, "--group", group)
        with self.running(consumer):
            self.catch_up(consumer)  # the loop commits where it starts: lag is right at once
            return self.steps(name, outputs, rates, consumer)

    def bl2(self, name: str, rates: Sequence[int]) -> list[dict[str, Any]]:
        if name == "BL2b":
            return self.steps(name, self.raw, rates, None)
        with self.connector_defaults():
            return self.steps(name, self.raw, rates, None)

    @contextmanager
    def connector_defaults(self) -> Iterator[None]:
        """The connectors without the hub's latency tuning (``TUNING``), then as they were."""
        client = ConnectClient(self.settings.connect)
        definitions = [d for s, d in load_definitions().items() if s in self.stack.sources]
        with self.console.status("Connectors back to Debezium's default batching…"):
            for d in definitions:
                config = render_config(d, self.stack.endpoint(d.system), registry())
                client.apply(d.connector.name, {k: v for k, v in config.items() if k not in TUNING})
            for d in definitions:
                wait_running(client, d.connector.name, timeout=120)
        try:
            yield
        finally:
            with self.console.status("Connectors back to the hub's settings…"):
                for d in definitions:
                    self.stack.register(client, d)
                for d in definitions:
                    wait_running(client, d.connector.name, timeout=120)

    def run(
        self, rates: Sequence[int], series: Sequence[str], ramp: bool, replay: int = 0
    ) -> dict[str, Any]:
        result: dict[str, Any] = {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "seed": self.seed,
            "timing": asdict(self.timing),
            "descriptions": {name: SERIES[name] for name in SERIES if name in series},
            "latency_all_leaves_out": sorted(self.coarse),
            "series": {},
            "ramp": None,
        }
        result["stack_warmup"] = self.warm_up()
        for name in SERIES:
            if name not in series:
                continue
            self.console.rule(f"{name}: {SERIES[name]}")
            if name == "SUT":
                result["series"][name], result["ramp"] = self.sut(rates, ramp)
            elif name == "BL4":
                result["series"][name] = self.baseline_loop(name, "engine", self.unified, rates)
            elif name == "BL3":
                result["series"][name] = self.baseline_loop(name, "forward", self.raw, rates)
            else:
                result["series"][name] = self.bl2(name, rates)
        if replay:
            self.console.rule(f"Replay: {replay:,} recorded changes drained by 1, then 2 workers")
            result["replay"] = replay_run(self.settings, load_sources(self.stack), self.raw,
                                          self.shared, replay, self.seed, self.logs, self.console)  # fmt: skip
        result["summary"] = summarize(result)
        return result


def load_sources(stack: Stack) -> dict[str, Source]:
    """Where the load generator's writer processes connect, per system."""
    return {
        system: Source("postgres" if isinstance(db, SourceDatabase) else "mariadb", db.dsn())
        for system, db in stack.sources.items()
    }


def _sum_use(pids: Sequence[int]) -> ProcessUse:
    uses = [process_use(pid, tree=False) for pid in pids]
    return ProcessUse(sum(u.cpu_s for u in uses), sum(u.rss_mb for u in uses),
                      max((u.peak_rss_mb for u in uses), default=0.0))  # fmt: skip


def _use(before: Any, after: Any, changes: int) -> dict[str, float]:
    cpu = after.cpu_s - before.cpu_s
    return {
        "cpu_s": round(cpu, 2),
        "cpu_s_per_1000_changes": round(cpu / changes * 1000, 3) if changes else 0.0,
        "rss_mb": round(after.rss_mb, 1),
        "peak_rss_mb": round(after.peak_rss_mb, 1),
    }
