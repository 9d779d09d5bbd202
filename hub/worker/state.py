"""The worker's state as Kafka holds it: per raw partition number, the engine's rows, the marks
of what it published and how far it read the reference topics, kept in memory and written to that
partition of a compacted changelog topic of the worker group, in the transactions that hold the
outputs they go with.

Whoever takes a partition number over reads its state back (``read_committed``, after fencing the
previous holder): its state is then exactly what was committed, whatever the previous holder had
time to do. The benchmark's BL4 loop starts from the state of every partition number, so that it
processes the same events from the same state as the worker it is compared with.
"""

from __future__ import annotations

from typing import Any

import orjson

from hub.core.engine import MemoryStore
from hub.kafka_io import read_to_end
from hub.topics import TopicSpec
from hub.worker.output import OutputProducer

ROWS_TABLE = "engine-rows"  # the engine's rows (their changelog topic keeps this name)


class ChangelogStore(MemoryStore):
    """The engine's ``Store`` for one raw partition number: rows in memory, and each row changed
    written to that partition of the group's changelog topic, in the transaction holding the
    outputs it led to (``write_changes`` before each commit: a row changed several times in one
    transaction is written once, with its last value).

    The topic, key and JSON value are those Faust wrote when the rows were a Faust table, so a
    changelog written by an earlier version reads the same."""

    def __init__(self, producer: OutputProducer, changelog: str, partition: int = 0) -> None:
        super().__init__()
        self.producer, self.changelog, self.partition = producer, changelog, partition
        self.changed: set[str] = set()

    def put(self, ref: str, value: dict[str, Any] | None) -> None:
        super().put(ref, value)
        self.changed.add(ref)

    def write_changes(self) -> None:
        """Hand the rows changed since the last call to the producer."""
        for ref in self.changed:
            value = self.get(ref)
            self.producer.send(
                self.changelog,
                orjson.dumps(ref),
                orjson.dumps(value) if value is not None else None,
                [],
                self.partition,
            )
        self.changed.clear()

    def replace(self, rows: MemoryStore) -> None:
        """Start over from ``rows`` (read back at a takeover); writes nothing."""
        self.clear()
        self.update(rows)
        self.changed.clear()


def rows_changelog(worker_id: str, partitions: int = 1) -> TopicSpec:
    """The changelog topic of the engine's rows of the worker group ``worker_id``: one partition
    per raw partition number (``partitions``), each written by whoever holds that number."""
    return TopicSpec(
        id="engine-rows-changelog", name=f"{worker_id}-{ROWS_TABLE}-changelog", kind="internal",
        key="row ref (JSON string)", value="stored row (JSON)", partitions=partitions,
        cleanup_policy="compact",
    )  # fmt: skip


def read_rows(bootstrap: str, worker_id: str, partition: int | None = None) -> MemoryStore:
    """The engine's state (rows, published marks, frontiers) of raw partition number
    ``partition`` (default: of all) as the worker group's changelog holds it: the last value per
    ref."""
    rows = MemoryStore()
    if partition is None:
        name = rows_changelog(worker_id).name
        spec, partitions = rows_changelog(worker_id, _partition_count(bootstrap, name)), None
    else:
        spec, partitions = rows_changelog(worker_id, partition + 1), [partition]
    for msg in read_to_end(bootstrap, [spec], partitions=partitions):
        raw = msg.value()
        rows.put(orjson.loads(msg.key() or b'""'), orjson.loads(raw) if raw is not None else None)
    return rows


def _partition_count(bootstrap: str, topic: str) -> int:
    from confluent_kafka.admin import AdminClient

    found = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=30).topics
    return max(1, len(found[topic].partitions)) if topic in found else 1
