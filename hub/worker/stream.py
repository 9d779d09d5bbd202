"""The stream loop: the worker's Kafka consumer of the raw topics, in a thread of its own.

Faust's consumer path (fetcher → conductor → stream → agent) costs a lock, several futures and a
``sleep(0)`` per record, more than the hub's whole core per record (README, "Where the time
goes"). So the raw records do not go through it: this loop polls them with confluent-kafka
(librdkafka fetches in its own threads) and hands whole batches to the pipeline, which processes
them synchronously and commits, per raw partition number, one transaction holding the outputs and
the next input offsets (every ``HUB_WORKER_COMMIT_INTERVAL`` while records keep coming). Faust
still runs the app around it: the worker's life cycle and signals, the web server (/health,
/metrics) and the timers.

One consumer group per worker group (``HUB_WORKER_ID``), the range assignor: partition N of every
raw topic goes to the same worker (topics that look each other up are co-partitioned at the
source). Each rebalance runs inside ``consume``, in this thread, between two batches: nothing is
half-processed when partitions move, and what was handled is committed before they go.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from hub.settings import HubSettings
from hub.worker.continuity import EXIT_RESTART
from hub.worker.logs import KAFKA_LOG
from hub.worker.pipeline import BATCH, Pipeline, leave

log = logging.getLogger("hub.worker")


class StreamLoop:
    def __init__(self, pipeline: Pipeline, settings: HubSettings) -> None:
        self.pipeline, self.settings = pipeline, settings
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="hub-stream", daemon=True)
        self.config: dict[str, Any] = {
            "bootstrap.servers": settings.bootstrap,
            "group.id": settings.worker_id,
            "client.id": f"{settings.worker_id}-raw",
            "enable.auto.commit": False,  # offsets go in the output transactions
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "partition.assignment.strategy": "range",
            "session.timeout.ms": int(settings.worker_session_timeout * 1000),
            "heartbeat.interval.ms": int(min(3.0, settings.worker_session_timeout / 5) * 1000),
            "fetch.wait.max.ms": settings.worker_fetch_max_wait_ms,
            # librdkafka postpones a partition's next fetch by this much once its local queue is
            # past its thresholds (1 s by default): a drained queue would then wait that long.
            "fetch.queue.backoff.ms": 10,
            # Fetched ahead and waiting in memory: at most 32 MB (64 by default: a worker's RSS),
            # 256 kB per partition and fetch (1 MB by default), so that one fetch serves every
            # held partition: with 1 MB each, a backlog on many partitions filled the queue with
            # the first few of them, and the others waited (the liveness guard saw them stall).
            "queued.max.messages.kbytes": 32768,
            "max.partition.fetch.bytes": 262144,
            "log_level": 3,
            "logger": KAFKA_LOG,  # through the repeat filter (hub.worker.logs)
        }

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float) -> None:
        """Stop after the batch in hand (it is committed) and leave the group (blocks)."""
        self.stopping.set()
        self.thread.join(timeout)

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # the loop is the worker: it must never end quietly
            leave(EXIT_RESTART, f"the stream loop failed: {exc!r}; starting afresh")

    def _loop(self) -> None:
        pipeline = self.pipeline
        consumer = Consumer(self.config)
        consumer.subscribe(
            sorted(pipeline.input_names),
            on_assign=lambda c, parts: pipeline.assign(_pairs(parts)),
            on_revoke=lambda c, parts: pipeline.revoke(),
            on_lost=lambda c, parts: pipeline.lose(),
        )
        try:
            while not self.stopping.is_set():
                if pipeline.frozen:  # the drill: take nothing more, as a stalled loop would
                    time.sleep(0.1)
                    continue
                # Block for the first record only: a batch timeout would hold records back. A
                # quiet moment is processed too: the reference topics may have news.
                first = consumer.poll(0.1)
                batch = [first, *consumer.consume(BATCH - 1, 0)] if first is not None else []
                pipeline.process(batch, consumer.consumer_group_metadata())
                self._past_markers(consumer)
            pipeline.commit_pending()  # stopping: what was handled is committed before leaving
        finally:
            try:
                consumer.close()  # leaves the group: the others rebalance at once
            except KafkaException as exc:
                log.warning("closing the raw-topic consumer: %s", exc)

    def _past_markers(self, consumer: Consumer) -> None:
        """Where the consumer stands on the held partitions of topics written in transactions
        (their commit markers are never delivered), for the continuity and liveness guards."""
        guard, held = self.pipeline.guard, self.pipeline.held
        gapped = [TopicPartition(t, p) for t, p in held if t in guard.gapped]
        if gapped:
            guard.advance({(tp.topic, tp.partition): tp.offset
                           for tp in consumer.position(gapped) if tp.offset >= 0})  # fmt: skip


def _pairs(partitions: list[TopicPartition]) -> list[tuple[str, int]]:
    return [(tp.topic, tp.partition) for tp in partitions]
