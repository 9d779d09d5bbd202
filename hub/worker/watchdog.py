"""The liveness guard's runner: a thread of its own, so a blocked or idle event loop cannot hide a
stall from it. Every few seconds it asks Kafka where the held raw partitions end, compares that
with where the worker will process next (``Liveness``), publishes the verdict (metrics, ``/health``)
and, on a stall, calls ``on_stall`` (the worker leaves for a fresh start).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

from confluent_kafka import Consumer, KafkaException, TopicPartition

from hub.worker import metrics
from hub.worker.liveness import Liveness, Partition, Verdict
from hub.worker.logs import KAFKA_LOG

log = logging.getLogger("hub.worker.liveness")


class Watchdog:
    def __init__(
        self,
        liveness: Liveness,
        bootstrap: str,
        positions: Callable[[], Mapping[Partition, int]],
        on_stall: Callable[[Verdict], None],
        interval: float,
    ) -> None:
        """``positions``: the next offset per held partition, {} while none is held or a takeover
        is in progress (called from the watchdog's thread: it must only copy plain data)."""
        self.liveness, self.bootstrap = liveness, bootstrap
        self.positions, self.on_stall, self.interval = positions, on_stall, interval
        self.latest = Verdict("ok")
        self._lock = threading.Lock()
        self._consumer: Consumer | None = None
        self._thread = threading.Thread(target=self._run, name="hub-liveness", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def restart(self) -> None:
        """A new assignment: every partition's clock starts again (thread-safe)."""
        with self._lock:
            self.liveness.restart()

    def check(self) -> Verdict:
        """One round: fresh facts, a verdict, its metrics (blocks up to a few seconds)."""
        positions = dict(self.positions())
        ends = self._ends(positions) if positions else {}
        with self._lock:
            verdict = self.liveness.observe(time.monotonic(), positions, ends)
        self.latest = verdict
        metrics.SECONDS_WITHOUT_PROGRESS.set(verdict.idle_for)
        metrics.STALLED.set(1 if verdict.state == "stalled" else 0)
        return verdict

    def _run(self) -> None:
        warned = False
        while True:
            time.sleep(self.interval)
            try:
                verdict = self.check()
            except Exception:  # the guard itself must never die silently
                log.exception("liveness check failed")
                continue
            if verdict.state == "stalled":
                metrics.STALLS.inc()
                self.on_stall(verdict)
            elif verdict.state == "stalling" and not warned:
                log.warning("the worker is stalling: %s", verdict.describe())
            warned = verdict.state == "stalling"

    def _ends(self, positions: Mapping[Partition, int]) -> dict[Partition, int]:
        """The log end of each partition; those Kafka does not answer for are left out (a broker
        that is away is not the worker's stall)."""
        if self._consumer is None:
            self._consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "unused",
                                       "log_level": 2, "logger": KAFKA_LOG})  # fmt: skip
        ends: dict[Partition, int] = {}
        for topic, partition in positions:
            try:
                _, high = self._consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=5
                )
            except KafkaException:
                continue
            ends[(topic, partition)] = int(high)
        return ends
