"""Every producer of a keyed topic puts a key in the partition Kafka's Java producer would.

Channels written in Java (or reading with Kafka Streams joins) rely on it: one key, one partition,
whoever produced it. The worker produces with aiokafka, `hub dlq replay` with confluent-kafka set
to murmur2; both are compared here with Java's own partitioner on the same keys.
"""

from __future__ import annotations

import subprocess
import time
import uuid

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from hub.kafka_io import read_to_end
from hub.settings import REPO_ROOT, HubSettings
from hub.stack.runtime import runtime_dir
from hub.topics import registry

pytestmark = pytest.mark.integration

JAVA_PARTITION = REPO_ROOT / "tests" / "tools" / "JavaPartition.java"


def java_partitions(keys: list[str], partitions: int) -> list[int]:
    """Kafka's Java producer's choice for each key (kafka-clients from the stack's runtime)."""
    classpath = runtime_dir(HubSettings()) / "kafka" / "lib" / "*"
    result = subprocess.run(
        ["java", "-cp", str(classpath), str(JAVA_PARTITION), str(partitions)],
        input="\n".join(keys) + "\n", capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return [int(line) for line in result.stdout.split()]


def unified_keys(bootstrap: str, minimum: int) -> dict[str, dict[str, int]]:
    """Topic → key → partition, as the worker produced them (waits for ``minimum`` keys)."""
    specs = [spec for spec in registry().topics.values() if spec.kind == "unified"]
    deadline = time.monotonic() + 180
    while True:
        seen: dict[str, dict[str, int]] = {spec.name: {} for spec in specs}
        for msg in read_to_end(bootstrap, specs):
            seen[msg.topic() or ""][(msg.key() or b"").decode()] = msg.partition() or 0
        if sum(map(len, seen.values())) >= minimum or time.monotonic() > deadline:
            return seen
        time.sleep(2)


def test_the_worker_partitions_every_unified_key_as_the_java_producer(stack, worker):
    seen = unified_keys(stack.endpoints["kafka_bootstrap"], minimum=1000)
    assert sum(map(len, seen.values())) >= 1000, {t: len(k) for t, k in seen.items()}
    for topic, partition_of in seen.items():
        spec = registry().by_name(topic)
        assert spec.partitions > 1, f"{topic}: one partition would prove nothing"
        keys = sorted(partition_of)
        java = dict(zip(keys, java_partitions(keys, spec.partitions), strict=True))
        differ = {
            key: (partition_of[key], java[key]) for key in keys if partition_of[key] != java[key]
        }
        assert not differ, (
            f"{topic}: {len(differ)} keys (worker, java) differ: {list(differ.items())[:5]}"
        )
        # Every partition is used: the keys really spread, the comparison is not vacuous (a
        # topic of rare events, merges or erasures, may hold a few keys only).
        if len(keys) >= 20 * spec.partitions:
            assert set(partition_of.values()) == set(range(spec.partitions))
    spread = [topic for topic, keys in seen.items() if len(keys) >= 80]
    assert len(spread) >= 5, {t: len(k) for t, k in seen.items()}


def test_confluent_kafka_with_murmur2_partitions_as_the_java_producer(stack):
    bootstrap = stack.endpoints["kafka_bootstrap"]
    topic = f"it.partitioning.{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 6, 1)])[topic].result(30)
    keys = [
        f"{gtin}@store:S{n % 7:02d}" for n, gtin in enumerate(range(3760000000000, 3760000000500))
    ]
    # The settings `hub dlq replay` produces with (hub/dlq.py).
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
    landed: dict[str, int] = {}

    def delivered(err, msg) -> None:
        assert err is None, err
        landed[msg.key().decode()] = msg.partition()

    for key in keys:
        producer.produce(topic, key=key.encode(), value=b"x", on_delivery=delivered)
    assert producer.flush(60) == 0
    admin.delete_topics([topic])
    assert [landed[key] for key in keys] == java_partitions(keys, 6)
    assert set(landed.values()) == set(range(6))
