"""Reading topics to their current end (for tools and start-up), with confluent-kafka."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from hub.topics import TopicSpec


def read_to_end(
    bootstrap: str, specs: Sequence[TopicSpec], idle_timeout: float = 10.0, group: str | None = None,
    partitions: Sequence[int] | None = None,
) -> Iterator[Message]:  # fmt: skip
    """Every committed record of ``specs`` (of these ``partitions`` only, if given) up to the end
    offsets seen at the start: from the beginning, or from ``group``'s committed offsets (the
    beginning where it committed none). Commits nothing.

    Reads ``read_committed``: records of aborted transactions are skipped, and a partition is done
    once the consumer's position reaches its end (a transaction's commit marker takes the last
    offset and is never handed out as a record). Blocks; raises ``RuntimeError`` when Kafka gives
    nothing for ``idle_timeout`` seconds while records are still due.
    """
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group or f"hub-read-{uuid.uuid4()}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "isolation.level": "read_committed"})  # fmt: skip
    try:
        wanted = [TopicPartition(s.name, p) for s in specs for p in range(s.partitions)
                  if partitions is None or p in partitions]  # fmt: skip
        ends = {
            (tp.topic, tp.partition): consumer.get_watermark_offsets(tp, 10)[1] for tp in wanted
        }
        if group is None:
            starts = {key: OFFSET_BEGINNING for key in ends}
        else:  # an uncommitted partition comes back as OFFSET_INVALID: auto.offset.reset applies
            starts = {(tp.topic, tp.partition): tp.offset for tp in consumer.committed(wanted, 10)}
        todo = {key for key, end in ends.items() if end > max(starts[key], 0)}
        consumer.assign([TopicPartition(t, p, starts[(t, p)]) for t, p in todo])
        last_record = time.monotonic()
        while todo:
            msg = consumer.poll(0.2)
            if msg is None:
                for tp in consumer.position([TopicPartition(t, p) for t, p in todo]):
                    if tp.offset >= ends[(tp.topic, tp.partition)]:
                        todo.discard((tp.topic, tp.partition))
                if todo and time.monotonic() - last_record > idle_timeout:
                    raise RuntimeError(
                        f"Kafka stopped answering with {len(todo)} partitions still unread"
                    )
                continue
            if msg.error():
                continue
            last_record = time.monotonic()
            topic, partition, offset = msg.topic() or "", msg.partition() or 0, msg.offset() or 0
            if offset < ends[(topic, partition)]:
                yield msg
            if offset + 1 >= ends[(topic, partition)]:
                todo.discard((topic, partition))
    finally:
        consumer.close()


def read_compacted(bootstrap: str, spec: TopicSpec) -> dict[str, dict[str, Any]]:
    """What a compacted topic holds now: key → its latest JSON value (a tombstone removes it)."""
    held: dict[str, dict[str, Any]] = {}
    for message in read_to_end(bootstrap, [spec]):
        key, raw = (message.key() or b"").decode(), message.value()
        if raw is None:
            held.pop(key, None)
        else:
            held[key] = orjson.loads(raw)
    return held


def header(msg: Message, name: str) -> str | None:
    """One header's value as text, or None."""
    raw: Any = msg.headers() or []
    for key, value in raw.items() if isinstance(raw, dict) else raw:
        if key == name:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


def group_positions(
    bootstrap: str, group: str, partitions: Sequence[tuple[str, int]]
) -> dict[tuple[str, int], tuple[int, int]]:
    """Per partition, where ``group`` resumes (its committed offset, or the log start when it has
    none or retention deleted it: the worker reads from the earliest offset) and the log end."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    try:
        positions = {}
        for tp in consumer.committed([TopicPartition(t, p) for t, p in partitions], 30):
            low, high = consumer.get_watermark_offsets(tp, 30)
            positions[(tp.topic, tp.partition)] = (max(tp.offset, low), high)
        return positions
    finally:
        consumer.close()


def resume_offsets(
    bootstrap: str, group: str, partitions: Sequence[tuple[str, int]]
) -> dict[tuple[str, int], int]:
    """Where ``group`` resumes each partition (see ``group_positions``)."""
    return {key: start for key, (start, _) in group_positions(bootstrap, group, partitions).items()}


def group_lag(bootstrap: str, group: str, specs: Sequence[TopicSpec]) -> int:
    """Records of ``specs`` that ``group`` has not committed yet."""
    partitions = [(s.name, p) for s in specs for p in range(s.partitions)]
    return sum(end - start for start, end in group_positions(bootstrap, group, partitions).values())


def partition_mismatches(
    existing: Mapping[str, Any], specs: Iterable[TopicSpec]
) -> dict[str, tuple[int, int]]:
    """Topics of ``specs`` that exist (``existing``: ``AdminClient.list_topics().topics``) with
    another partition count than declared: name → (actual, declared)."""
    return {
        spec.name: (len(existing[spec.name].partitions), spec.partitions)
        for spec in specs
        if spec.name in existing and len(existing[spec.name].partitions) != spec.partitions
    }


@dataclass
class TopicsApplied:
    """What ``apply_topics`` found: topics created, missing (not created), differing (``partitions``:
    name → (actual, declared) partition counts of those whose count differs), and how many were as
    declared."""

    created: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    differs: dict[str, str] = field(default_factory=dict)
    partitions: dict[str, tuple[int, int]] = field(default_factory=dict)
    ok: int = 0


def apply_topics(
    bootstrap: str, specs: Iterable[TopicSpec], create: bool = True, check_configs: bool = True
) -> TopicsApplied:
    """Create the declared topics that do not exist (unless ``create`` is False, or a declared
    topic has another partition count: that needs a decision first) and compare the others with
    their declarations: partition count and (``check_configs``) the topic configs declared."""
    from confluent_kafka.admin import (  # type: ignore[attr-defined]
        AdminClient,
        ConfigResource,
        NewTopic,
    )

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
    existing = admin.list_topics(timeout=10).topics
    specs = list(specs)
    report = TopicsApplied()
    report.partitions = partition_mismatches(existing, specs)
    for name, (actual, declared) in report.partitions.items():
        report.differs[name] = f"{actual} partitions, declared {declared}"
    present = [s for s in specs if s.name in existing and s.name not in report.differs]
    if present and check_configs:
        resources = [ConfigResource(ConfigResource.Type.TOPIC, s.name) for s in present]
        described = admin.describe_configs(resources, request_timeout=30)
        for spec, resource in zip(present, resources, strict=True):
            entries = described[resource].result()
            wrong = {
                key: (entries[key].value if key in entries else None, value)
                for key, value in spec.kafka_config().items()
                if key not in entries or entries[key].value != value
            }
            if wrong:
                report.differs[spec.name] = "; ".join(
                    f"{key} is {actual}, declared {declared}"
                    for key, (actual, declared) in wrong.items()
                )
            else:
                report.ok += 1
    absent = [s for s in specs if s.name not in existing]
    if not create or report.partitions:
        report.missing = [s.name for s in absent]
        return report
    if absent:
        futures = admin.create_topics(
            [NewTopic(s.name, s.partitions, 1, config=s.kafka_config()) for s in absent],
            request_timeout=30,
        )
        for name, future in futures.items():
            try:
                future.result()
            except Exception as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise RuntimeError(f"could not create topic {name}: {exc}") from exc
                continue  # created by someone else meanwhile
            report.created.append(name)
    return report
