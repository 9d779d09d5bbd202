"""The replay benchmark: how fast the hub drains raw topics already full, with 1 and 2 workers.

First the load generator writes ``changes`` row changes into the sources and Debezium records
them on the raw topics (``record``); then, with the sources and Connect idle, a fresh worker group
(an id of its own: no state, no committed offset) of 1, then of 2 workers drains every raw record
into unified topics of its own (``drain``: scratch copies, empty, so both runs publish everything
and the real unified topics never see the benchmark). Each run is timed from the moment the workers
start until the group has committed every record of the raw topics it shares out: events/s each,
the ratio of two workers to one, and each worker's CPU and peak memory.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import Consumer, TopicPartition
from rich.console import Console

from hub.bench.load import FixedClockLoad, Source
from hub.bench.probe import process_use
from hub.kafka_io import group_lag
from hub.settings import HubSettings
from hub.stack.kafka import ensure_topics
from hub.stack.procs import free_port
from hub.topics import TopicSpec, load_registry

RECORD_RATE = 10_000  # changes/s asked of the load generator while recording
DRAIN_TIMEOUT = 1800.0


@dataclass
class ReplayRun:
    workers: int
    records: int  # raw records drained (every raw topic, the reference ones included)
    seconds: float  # from the workers' start to the last record committed
    events_per_s: float
    cpu_s: float  # all workers together
    peak_rss_mb: float  # the largest any one worker reached


def ends(bootstrap: str, specs: list[TopicSpec]) -> int:
    """Records on ``specs`` now (end offsets, summed)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "hub-bench-ends"})
    try:
        return sum(
            consumer.get_watermark_offsets(TopicPartition(s.name, p), 10)[1]
            for s in specs for p in range(s.partitions)
        )  # fmt: skip
    finally:
        consumer.close()


def record(
    bootstrap: str, sources: dict[str, Source], raw: list[TopicSpec], changes: int, seed: int,
    console: Console,
) -> int:  # fmt: skip
    """Write ``changes`` row changes into the sources and wait until Debezium has recorded them
    all on the raw topics (nothing new for 3 s); returns the raw records there are then."""
    start = ends(bootstrap, raw)
    load = FixedClockLoad(sources, RECORD_RATE, seed)
    with console.status(f"replay: writing {changes:,} changes into the sources…") as status:
        load.start()
        try:
            while (done := load.changes()) < changes:
                status.update(f"replay: {done:,} of {changes:,} changes written…")
                time.sleep(1)
        finally:
            load.stop()
        last, quiet_since = -1, time.monotonic()
        while time.monotonic() - quiet_since < 3:
            now = ends(bootstrap, raw)
            if now != last:
                last, quiet_since = now, time.monotonic()
                status.update(f"replay: {now - start:,} raw records recorded by Debezium…")
            time.sleep(0.5)
    console.print(f"[green]✓[/] replay: {load.changes():,} changes written, the raw topics hold "
                  f"{last:,} records")  # fmt: skip
    return last


def drain(
    settings: HubSettings, workers: int, raw: list[TopicSpec], shared: list[TopicSpec],
    logs: Path, console: Console,
) -> ReplayRun:  # fmt: skip
    """Start ``workers`` workers of a fresh group and time them until they drained everything."""
    group = f"hub-replay-{workers}-{uuid.uuid4().hex[:8]}"
    records = ends(settings.bootstrap, raw)
    logs.mkdir(parents=True, exist_ok=True)
    topics = scratch_registry(settings, group, logs)
    procs = []
    started = time.monotonic()
    for n in range(workers):
        env = {**os.environ, "HUB_WORKER_ID": group, "HUB_WORKER_WEB_PORT": str(free_port()),
               "HUB_CONNECTOR_WATCH_INTERVAL": "0", "HUB_TOPICS_FILE": str(topics)}  # fmt: skip
        with (logs / f"replay-{workers}-{n}.log").open("ab") as out:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "hub", "worker", "--loglevel", "warning"],
                env=env, stdout=out, stderr=subprocess.STDOUT,
            ))  # fmt: skip
    peak, cpu = 0.0, 0.0
    try:
        with console.status(f"replay: {workers} worker(s) draining {records:,} records…") as s:
            while True:
                left = group_lag(settings.bootstrap, group, shared)
                uses = [process_use(p.pid) for p in procs]
                peak = max([peak, *(u.peak_rss_mb for u in uses)])
                cpu = sum(u.cpu_s for u in uses) or cpu
                if left == 0:
                    break
                for p in procs:
                    if p.poll() is not None:
                        raise RuntimeError(f"a replay worker exited ({p.returncode}); see {logs}")
                if time.monotonic() - started > DRAIN_TIMEOUT:
                    raise RuntimeError(f"the replay did not drain within {DRAIN_TIMEOUT:.0f} s")
                s.update(f"replay: {workers} worker(s), {left:,} records left…")
                time.sleep(0.25)
        seconds = time.monotonic() - started
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
    run = ReplayRun(workers, records, round(seconds, 2), round(records / seconds, 1),
                    round(cpu, 2), round(peak, 1))  # fmt: skip
    console.print(f"[green]✓[/] replay: {workers} worker(s) drained {records:,} records in "
                  f"{seconds:.1f} s: {run.events_per_s:,.0f} events/s, peak RSS "
                  f"{run.peak_rss_mb:.0f} MB")  # fmt: skip
    return run


def scratch_registry(settings: HubSettings, group: str, directory: Path) -> Path:
    """A copy of the topic registry whose unified and control topics (repairs, the stock feed)
    are scratch topics of ``group`` (created now): each run publishes every record into empty
    unified topics, as the first publication of these changes, its availability stage reads only
    the feed its own workers wrote, and the real topics never see the benchmark."""
    document = yaml.safe_load(settings.topics_file.read_text())
    for spec in document["topics"].values():
        if spec.get("kind") in ("unified", "control"):
            spec["name"] = f"bench.{group}.{spec['name']}"
    path = directory / f"{group}-topics.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    specs = [s for s in load_registry(path).topics.values() if s.kind in ("unified", "control")]
    ensure_topics(settings.bootstrap, specs)
    return path


def replay(
    settings: HubSettings, sources: dict[str, Source], raw: list[TopicSpec],
    shared: list[TopicSpec], changes: int, seed: int, logs: Path, console: Console,
) -> dict[str, Any]:  # fmt: skip
    """Record ``changes`` changes, then drain the raw topics with 1, then 2 workers."""
    record(settings.bootstrap, sources, raw, changes, seed, console)
    runs = [drain(settings, workers, raw, shared, logs, console) for workers in (1, 2)]
    one, two = runs
    return {
        "changes": changes,
        "runs": [asdict(run) for run in runs],
        "ratio": round(two.events_per_s / one.events_per_s, 2) if one.events_per_s else None,
    }
