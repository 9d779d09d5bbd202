"""The worker's producer for everything it writes: canonical records, the engine's row changelog and
dead letters. confluent-kafka (librdkafka), not Faust's send path.

Faust's own send path measured a few hundred to a few thousand records/s here; librdkafka batches
and sends from its own thread. Keys go to the partition Kafka's Java producer would choose
(``partitioner=murmur2_random``).

**Fenced.** The worker that holds the raw topics writes in Kafka transactions under a stable
transactional id (``transactional_id``: one per raw partition number it holds). Taking the raw
topics over starts with ``init_transactions``, which aborts whatever transaction the previous
holder left open and fences it: a worker that was paused past its session timeout (SIGSTOP, a
long GC, a frozen VM) and wakes after the takeover can no longer write or commit anything, and
what it wrote before is aborted, invisible to every ``read_committed`` consumer.

Without a transactional id (the benchmark's baseline loops) records go out idempotently and
``flush()`` confirms them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer, TopicPartition

from hub.core.records import Output, Tombstone

# The source position of the change a unified record was made from (also in the record itself;
# a tombstone has only this).
POSITION_HEADER = "hub.source_position"
SNAPSHOT_HEADER = "hub.repair_snapshot"


# The first record of a transaction waits until its partitions are added to it, and the broker
# answers "concurrent transactions" while it still writes the previous commit's markers: librdkafka
# then retries after retry.backoff.ms (100 ms by default, measured here as ~30 ms per commit of a
# back-to-back transaction). Short retries bring a whole commit to ~6 ms on a local broker.
#
# A transaction lasts one batch (well under a second). One left open by a worker that died or froze
# holds back the group's offsets of its partitions and every read_committed reader until the next
# holder fences it or the broker aborts it after ``transaction.timeout.ms``: 10 s, not 60.
TRANSACTION_TUNING = {
    "retry.backoff.ms": 2, "retry.backoff.max.ms": 20, "transaction.timeout.ms": 10_000,
}  # fmt: skip


class Fenced(RuntimeError):
    """Another worker took the raw topics over: this one must not write or commit anything."""


class TransactionFailed(RuntimeError):
    """A transaction could not be committed; it was aborted (nothing of it is visible)."""


def transactional_id(worker_id: str, number: int) -> str:
    """The stable transactional id of whoever holds raw partition number ``number`` (of every
    raw topic) in the worker group ``worker_id``."""
    return f"{worker_id}-raw-p{number}"


class OutputProducer:
    def __init__(self, bootstrap: str, client_id: str) -> None:
        """Idempotent, not transactional, until ``use`` gives it a transactional id."""
        self.config: dict[str, object] = {
            "bootstrap.servers": bootstrap,
            "client.id": client_id,
            "acks": "all",
            "enable.idempotence": True,
            "partitioner": "murmur2_random",
            # Outputs become visible at the commit (which sends what lingers): batching them
            # costs no latency, and a wakeup of librdkafka's thread per record at 1 ms cost the
            # stream loop a system call per record. JSON compresses well: lz4 is cheap for the
            # broker and for every consumer.
            "linger.ms": 20,
            "compression.type": "lz4",
            "log_level": 3,
        }
        self._producer: Producer | None = None
        self._failures: list[str] = []
        self._lock = threading.Lock()
        self.pending = 0  # records handed over since the last commit (transactional)

    @property
    def producer(self) -> Producer:
        if self._producer is None:  # made at first use: tests build the app without a broker
            self._producer = Producer(self.config)
        return self._producer

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, str | bytes | None]],
        partition: int = -1,
        delivered: Callable[[Message], None] | None = None,
    ) -> None:
        """Hand one record over (never blocks for long: a full queue is drained first), to
        ``partition`` or, by default, to the one its key hashes to. Raises ``Fenced`` once another
        worker took over. Delivery reports are served by ``serve`` (call it once per batch) and
        by commits; ``delivered`` is then called with the record as written (its partition and
        offset), unless it failed."""
        report = self._delivered if delivered is None else self._reporting(delivered)
        while True:
            try:
                self.producer.produce(
                    topic, value, key, partition, headers=headers, on_delivery=report
                )
                break
            except BufferError:  # librdkafka's queue is full: let it deliver some
                self.producer.poll(0.05)
            except KafkaException as exc:
                error = _translate(exc)
                if error is exc:
                    raise
                raise error from exc
        self.pending += 1

    def serve(self) -> None:
        """Serve the delivery reports that arrived (never blocks)."""
        if self._producer is not None:
            self._producer.poll(0)

    def publish(self, topic: str, output: Output) -> None:
        """Hand one canonical record over: an upsert's JSON, or a tombstone."""
        value = None if isinstance(output, Tombstone) else output.value_bytes()
        headers: list[tuple[str, str | bytes | None]] = [
            (POSITION_HEADER, output.position.encode())
        ]
        if output.snapshot is not None:
            headers.append((SNAPSHOT_HEADER, output.snapshot.encode()))
        self.send(topic, output.key.encode(), value, headers)

    def flush(self, timeout: float) -> list[str]:
        """Wait for every record handed over; returns what failed since the last call (blocks)."""
        left = self.producer.flush(timeout) if self._producer is not None else 0
        with self._lock:
            failures, self._failures = self._failures, []
        if left:
            failures.append(f"{left} records not acknowledged within {timeout:.0f} s")
        return failures

    # -- transactions (blocking calls: the worker runs them off its event loop)

    def fence(self, timeout: float) -> None:
        """Take the transactional id: aborts the previous holder's open transaction and fences it,
        then opens a transaction. Raises ``Fenced`` if a newer holder fenced this one already."""
        try:
            self.producer.init_transactions(timeout)
            self.producer.begin_transaction()
        except KafkaException as exc:
            raise _translate(exc) from exc
        self.pending = 0

    def commit(
        self, timeout: float, offsets: list[TopicPartition] | None = None, group: Any = None
    ) -> None:
        """Commit what was sent since the last commit (all of it becomes visible at once), with
        ``offsets`` (the next input offsets, committed for consumer group metadata ``group`` in
        the same transaction), and open the next transaction. Raises ``Fenced``, or
        ``TransactionFailed`` after aborting."""
        try:
            if offsets:
                self._retrying(
                    lambda: self.producer.send_offsets_to_transaction(offsets, group, timeout)
                )
            self._retrying(lambda: self.producer.commit_transaction(timeout))
        except KafkaException as exc:
            error = _translate(exc)
            if isinstance(error, Fenced):
                raise error from exc
            self.abort(timeout)
            raise TransactionFailed(f"{error}; failed outputs: {self.flush(0)[:3]}") from exc
        self.pending = 0
        self.producer.begin_transaction()

    def abort(self, timeout: float) -> None:
        """Drop the open transaction: nothing sent since the last commit becomes visible."""
        try:
            self.producer.abort_transaction(timeout)
        except KafkaException as exc:
            raise _translate(exc) from exc
        self.pending = 0

    def use(self, transactional_id: str | None) -> None:
        """Write under another transactional id from now on (a new assignment): the current
        producer is dropped (its open transaction, if any, is aborted by the next holder of its
        id, or by the transaction timeout); ``fence`` makes the next one."""
        if transactional_id:
            self.config["transactional.id"] = transactional_id
            self.config |= TRANSACTION_TUNING
        else:
            self.config.pop("transactional.id", None)
        self._producer = None
        self.pending = 0

    def _retrying(self, call: Callable[[], None]) -> None:
        for attempt in range(5):
            try:
                call()
                return
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                if not error.retriable() or attempt == 4:
                    raise

    def _reporting(
        self, delivered: Callable[[Message], None]
    ) -> Callable[[KafkaError | None, Message], None]:
        def report(error: KafkaError | None, msg: Message) -> None:
            self._delivered(error, msg)
            if error is None:
                delivered(msg)

        return report

    def _delivered(self, error: KafkaError | None, msg: Message) -> None:
        if error is not None:
            with self._lock:
                self._failures.append(f"{msg.topic()} key {msg.key()!r}: {error}")


def _translate(exc: KafkaException) -> Exception:
    error: KafkaError = exc.args[0]
    if error.code() in (
        KafkaError._FENCED,
        KafkaError.PRODUCER_FENCED,
        KafkaError.INVALID_PRODUCER_EPOCH,
    ):
        return Fenced(f"another worker took the raw topics over: {error.str()}")
    if error.fatal() or error.code() == KafkaError._FATAL:  # the producer can write no more
        return Fenced(f"the output producer failed for good: {error.str()}")
    return TransactionFailed(error.str()) if error.txn_requires_abort() else exc
