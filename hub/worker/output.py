"""The worker's producer for canonical records: confluent-kafka (librdkafka), not Faust's send path.

Faust's own send path measured a few hundred to a few thousand records/s here; librdkafka batches
and sends from its own thread. Keys go to the partition Kafka's Java producer would choose
(``partitioner=murmur2_random``), and idempotence keeps each partition in order without duplicates
across librdkafka's own retries.

Delivery is confirmed in bulk: ``flush()`` waits until every record handed over since the last
call is acknowledged, and returns the ones that failed. The worker calls it before Faust commits
input offsets, so an offset is committed only once the outputs of its event are in Kafka.
"""

from __future__ import annotations

import threading

from confluent_kafka import KafkaError, Message, Producer

from hub.core.records import Output, Upsert

# The source position of the change a unified record was made from (also in the record itself;
# a tombstone has only this).
POSITION_HEADER = "hub.source_position"


class OutputProducer:
    def __init__(self, bootstrap: str, client_id: str) -> None:
        self.config = {
            "bootstrap.servers": bootstrap,
            "client.id": client_id,
            "acks": "all",
            "enable.idempotence": True,
            "partitioner": "murmur2_random",
            "linger.ms": 1,
            "log_level": 3,
        }
        self._producer: Producer | None = None
        self._failures: list[str] = []
        self._lock = threading.Lock()

    @property
    def producer(self) -> Producer:
        if self._producer is None:  # made at first use: tests build the app without a broker
            self._producer = Producer(self.config)
        return self._producer

    def send(
        self,
        topic: str,
        key: bytes,
        value: bytes | None,
        headers: list[tuple[str, str | bytes | None]],
    ) -> None:
        """Hand one record over (never blocks for long: a full queue is drained first)."""
        while True:
            try:
                self.producer.produce(
                    topic, value, key, headers=headers, on_delivery=self._delivered
                )
                break
            except BufferError:  # librdkafka's queue is full: let it deliver some
                self.producer.poll(0.05)
        self.producer.poll(0)

    def publish(self, topic: str, output: Output) -> None:
        """Hand one canonical record over: an upsert's JSON, or a tombstone."""
        value = output.value_bytes() if isinstance(output, Upsert) else None
        self.send(topic, output.key.encode(), value, [(POSITION_HEADER, output.position.encode())])

    def flush(self, timeout: float) -> list[str]:
        """Wait for every record handed over; returns what failed since the last call (blocks)."""
        left = self.producer.flush(timeout) if self._producer is not None else 0
        with self._lock:
            failures, self._failures = self._failures, []
        if left:
            failures.append(f"{left} records not acknowledged within {timeout:.0f} s")
        return failures

    def _delivered(self, error: KafkaError | None, msg: Message) -> None:
        if error is not None:
            with self._lock:
                self._failures.append(f"{msg.topic()} key {msg.key()!r}: {error}")
