"""The thin runner that keeps ``hub api``'s read model current: one thread reading the unified
topics (and the dead-letter topic, for its counts) from their beginning, ``read_committed``,
applying every record to the ``ReadModel`` under a lock, and waking the change streams.

It is *ready* once it has read every partition up to the end offsets it saw when it started: until
then the API answers 503 (an answer from half the topics would be wrong, not stale). Every few
seconds it also asks Kafka how far the worker group is behind on the raw topics (the pipeline's
lag, for ``/v1/status`` and the metrics).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from hub.api import metrics
from hub.connectors import load_definitions, shared_topics
from hub.core.readmodel import ALERTS, TOPICS, ReadModel
from hub.kafka_io import group_lag, header
from hub.settings import HubSettings
from hub.topics import TopicSpec, registry

log = logging.getLogger("hub.api")

LAG_INTERVAL = 5.0


def _seconds(text: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(text)).timestamp()
    except ValueError:
        return None


class TopicReader:
    """Reads the unified topics into ``model`` (a thread: ``start``, ``stop``)."""

    def __init__(self, settings: HubSettings, model: ReadModel) -> None:
        self.settings, self.model = settings, model
        self.lock = threading.Lock()  # held while the model changes; readers take it too
        reg = registry()
        self.specs: dict[str, TopicSpec] = {topic: reg[topic] for topic in TOPICS}
        self.ids = {spec.name: topic for topic, spec in self.specs.items()}
        self.dlqs = [spec for spec in reg.topics.values() if spec.kind == "dlq"]
        # The raw topics whose progress the worker group's offsets show (not the reference ones:
        # each worker reads those whole and keeps how far with its state).
        self.raw = shared_topics(load_definitions(), reg)
        self.ready = threading.Event()
        self.ends: dict[tuple[str, int], int] = {}  # what must be read before ready
        self.remaining = -1  # partitions not read up to there yet (-1: not started)
        self.dead_letters: Counter[str] = Counter()  # by reason
        self.lag: int | None = None  # the worker group's, on the raw topics
        self.lag_at = 0.0
        self.started = time.monotonic()
        self.error: str | None = None
        self._stop = threading.Event()
        self._listeners: list[Callable[[], None]] = []
        self._thread = threading.Thread(target=self._run, name="hub-api-reader", daemon=True)

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (from the reader's thread) after each batch of records applied."""
        self._listeners.append(listener)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _consumer(self) -> Consumer:
        return Consumer({
            "bootstrap.servers": self.settings.bootstrap, "group.id": "hub-api-reader",
            "enable.auto.commit": False, "isolation.level": "read_committed",
            "fetch.wait.max.ms": 10, "fetch.min.bytes": 1, "log_level": 3,
        })  # fmt: skip

    def _run(self) -> None:
        try:
            self._read()
        except Exception as exc:  # the API says so (status, 503) instead of serving a stale model
            self.error = repr(exc)
            log.exception("the topic reader stopped")

    def _read(self) -> None:
        consumer = self._consumer()
        try:
            partitions = [TopicPartition(spec.name, p, OFFSET_BEGINNING)
                          for spec in (*self.specs.values(), *self.dlqs)
                          for p in range(spec.partitions)]  # fmt: skip
            for tp in partitions:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(tp.topic, tp.partition), 30
                )
                if high > low:
                    self.ends[(tp.topic, tp.partition)] = high
            consumer.assign(partitions)
            self._check_ready(consumer)
            while not self._stop.is_set():
                messages = consumer.consume(250, 0.05)
                if messages:
                    self._apply(messages)
                if not self.ready.is_set():
                    self._check_ready(consumer)
                if time.monotonic() - self.lag_at > LAG_INTERVAL:
                    self._measure_lag()
        finally:
            consumer.close()

    def _apply(self, messages: list[Any]) -> None:
        now = time.time()
        live = self.ready.is_set()
        changed = alerted = False
        with self.lock:
            for msg in messages:
                if msg.error():
                    if msg.error().fatal():
                        raise KafkaException(msg.error())
                    continue
                name = msg.topic() or ""
                topic = self.ids.get(name)
                if topic is None:  # a dead letter
                    self.dead_letters[header(msg, "hub.dlq.reason") or "unknown"] += 1
                    continue
                raw = msg.value()
                value = orjson.loads(raw) if raw is not None else None
                self.model.apply(topic, (msg.key() or b"").decode(), value, msg.partition() or 0,
                                 msg.offset() or 0)  # fmt: skip
                changed = True
                alerted = alerted or topic == ALERTS
                if live and value and value.get("source_system"):
                    committed = _seconds(value.get("source_committed_at"))
                    appended = msg.timestamp()[1] / 1000
                    if committed is not None:
                        metrics.COMMIT_TO_APPEND.labels(value["source_system"]).observe(
                            max(0.0, appended - committed)
                        )
                        metrics.COMMIT_TO_READ.labels(value["source_system"]).observe(
                            max(0.0, now - committed)
                        )
            if alerted:  # counted again only when an alert changed, not per batch
                metrics.ALERTS_FIRING.set(len(self.model.alerts()["alerts"]))
        for reason, count in self.dead_letters.items():
            metrics.DEAD_LETTERS.labels(reason).set(count)
        if changed:
            for listener in self._listeners:
                listener()

    def _check_ready(self, consumer: Consumer) -> None:
        due = [TopicPartition(t, p) for (t, p), end in self.ends.items()]
        behind = [
            tp for tp in consumer.position(due) if tp.offset < self.ends[(tp.topic, tp.partition)]
        ]
        self.remaining = len(behind)
        if not behind:
            self.ready.set()
            metrics.READY.set(1)
            log.info("read model ready: %s records in %.1f s", sum(self.model.counts().values()),
                     time.monotonic() - self.started)  # fmt: skip

    def _measure_lag(self) -> None:
        self.lag_at = time.monotonic()
        try:
            self.lag = group_lag(self.settings.bootstrap, self.settings.worker_id, self.raw)
            metrics.WORKER_LAG.set(self.lag)
        except KafkaException as exc:
            log.warning("cannot read the worker group's lag: %s", exc)
