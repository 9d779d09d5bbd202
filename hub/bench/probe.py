"""What the benchmark measures while the load runs: end-to-end latency per record, consumer lag,
and the CPU and memory of every process of the stack (from /proc).

Latency is the time Kafka appended a record (the topics use log-append time) minus the source
commit time Debezium reports (``source.ts_ms``/``ts_us``; on unified records ``source_committed_at``).
The ERP's MariaDB binary log stamps commits to the second, so ERP latencies carry up to 1 s of that.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import orjson
from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, Consumer, TopicPartition

from hub.core.debezium import committed_at
from hub.topics import TopicSpec


@dataclass(frozen=True, slots=True)
class Sample:
    system: str
    committed_ms: float
    latency_ms: float


def committed_ms(spec: TopicSpec, value: bytes) -> tuple[str, float] | None:
    """(system, source commit time in ms) of one record, or None (tombstones, heartbeats)."""
    record = orjson.loads(value)
    if spec.kind == "unified":
        committed, system = record.get("source_committed_at"), record.get("source_system")
        if committed is None or system is None:  # a golden customer made by a manual decision
            return None
        return str(system), datetime.fromisoformat(committed).timestamp() * 1000
    source = record.get("source") or {}
    if spec.source is None or not source:
        return None
    return spec.source.system, committed_at(source).timestamp() * 1000


@dataclass
class LatencyProbe:
    """Reads ``specs`` from their current end in a thread and keeps one sample per record."""

    bootstrap: str
    specs: Sequence[TopicSpec]
    samples: list[Sample] = field(default_factory=list)
    appended: list[float] = field(default_factory=list)  # append times (ms), tombstones included
    # The same records by the time this (read_committed) consumer got them: when a channel can
    # see them, once their transaction committed.
    visible: list[Sample] = field(default_factory=list)
    clock: str = "log-append time"
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"hub-bench-{uuid.uuid4()}",
                             "enable.auto.commit": False, "fetch.wait.max.ms": 10})  # fmt: skip
        partitions = [TopicPartition(s.name, p) for s in self.specs for p in range(s.partitions)]
        consumer.assign(
            [TopicPartition(tp.topic, tp.partition, consumer.get_watermark_offsets(tp, 10)[1])
             for tp in partitions]
        )  # fmt: skip
        self._thread = threading.Thread(target=self._run, args=(consumer,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def count(self, start_ms: float, end_ms: float) -> int:
        """Records appended in [start_ms, end_ms)."""
        return sum(1 for t in self.appended if start_ms <= t < end_ms)

    def count_committed(self, start_ms: float, end_ms: float) -> int:
        """Records whose source change was committed in [start_ms, end_ms) (seen so far)."""
        return sum(1 for sample in self.samples if start_ms <= sample.committed_ms < end_ms)

    def quiet_for(self, seconds: float) -> bool:
        """Nothing appended in the last ``seconds``."""
        return not self.appended or self.appended[-1] < time.time() * 1000 - seconds * 1000

    def _run(self, consumer: Consumer) -> None:
        by_name = {spec.name: spec for spec in self.specs}
        try:
            while not self._stop.is_set():
                for msg in consumer.consume(1000, 0.1):
                    received = time.time() * 1000
                    if msg.error():
                        continue
                    kind, broker_ms = msg.timestamp()
                    stamp = float(broker_ms)
                    if kind != TIMESTAMP_LOG_APPEND_TIME:  # stamp it here, on the same host
                        stamp, self.clock = time.time() * 1000, "consumer receive time"
                    self.appended.append(stamp)
                    value = msg.value()
                    if value is None:
                        continue
                    found = committed_ms(by_name[msg.topic() or ""], value)
                    if found is not None:
                        system, committed = found
                        self.samples.append(Sample(system, committed, stamp - committed))
                        self.visible.append(Sample(system, committed, received - committed))
        finally:
            consumer.close()


TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcessUse:
    cpu_s: float  # user + system CPU of the process and all its descendants
    rss_mb: float  # resident memory now, summed over the tree
    peak_rss_mb: float  # the largest resident set any one process of the tree reached (VmHWM)


def process_tree(root: int) -> list[int]:
    """``root`` and every live descendant (PostgreSQL works in its backends and WAL senders)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def process_use(root: int, tree: bool = True) -> ProcessUse:
    """CPU and memory of ``root`` and, with ``tree``, of all its descendants."""
    cpu, rss, peak = 0.0, 0.0, 0.0
    for pid in process_tree(root) if tree else [root]:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue  # it ended meanwhile
        # utime, stime, cutime, cstime: fields 14-17 of stat (11-14 after the command)
        cpu += sum(int(f) for f in fields[11:15]) / TICKS
        memory = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        rss += int(memory.get("VmRSS", "0 kB").split()[0]) / 1024
        peak = max(peak, int(memory.get("VmHWM", "0 kB").split()[0]) / 1024)
    return ProcessUse(cpu, rss, peak)
