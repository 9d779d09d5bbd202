"""Bad input on a raw topic: dead-lettered with provenance, the pipeline goes on; a flood stops loudly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from decimal import Decimal

import psycopg
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from hub.bench.replay import scratch_registry
from hub.settings import HubSettings
from hub.simulator import SalesSimulator
from hub.stack.procs import free_port
from hub.topics import registry
from tests.integration.harness import caught_up

pytestmark = pytest.mark.integration


def produce_garbage(bootstrap: str, count: int, marker: bytes) -> list[int]:
    """Write ``count`` undecodable records to partition 0 of the POS stock raw topic."""
    offsets: list[int] = []
    producer = Producer({"bootstrap.servers": bootstrap})
    for n in range(count):
        producer.produce(registry()["raw.pos.stock"].name, key=marker, value=b"not json %d" % n,
                         partition=0, on_delivery=lambda err, msg: offsets.append(msg.offset()))  # fmt: skip
    producer.flush(30)
    assert len(offsets) == count
    return offsets


def dead_letters(bootstrap: str, marker: bytes, count: int, timeout: float = 120) -> list:
    spec = registry()["hub.dlq"]
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"it-{uuid.uuid4()}"})
    consumer.assign(
        [TopicPartition(spec.name, p, OFFSET_BEGINNING) for p in range(spec.partitions)]
    )
    found, deadline = [], time.monotonic() + timeout
    while len(found) < count and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and not msg.error() and msg.key() == marker:
            found.append(msg)
    consumer.close()
    return found


def test_bad_record_is_dead_lettered_and_the_pipeline_goes_on(stack, worker, inventory):
    bootstrap = stack.endpoints["kafka_bootstrap"]
    marker = f"bad-{uuid.uuid4()}".encode()
    (offset,) = produce_garbage(bootstrap, 1, marker)
    (letter,) = dead_letters(bootstrap, marker, 1)
    headers = {k: v.decode() for k, v in letter.headers()}
    assert letter.value() == b"not json 0"
    assert headers["hub.dlq.topic"] == registry()["raw.pos.stock"].name
    assert (headers["hub.dlq.partition"], headers["hub.dlq.offset"]) == ("0", str(offset))
    assert headers["hub.dlq.reason"] == "malformed_json"
    assert headers["hub.dlq.step"] == "normalise"

    with psycopg.connect(stack.pos_dsn) as conn:
        sale = SalesSimulator(conn, seed=99).sell()
        ean = sale.lines[0][0]
        expected = conn.execute("SELECT qty FROM pos.stock WHERE store_code = %s AND ean = %s",
                                (sale.store_code, ean)).fetchone()[0]  # fmt: skip
    inventory.wait_for(
        f"{ean}@store:{sale.store_code}",
        lambda v: v is not None and Decimal(v["on_hand"]) == expected,
    )


def test_a_flood_of_bad_records_stops_the_worker_loudly(stack):
    # A new group reads every raw topic from the start, so the flood at the end of the POS stock
    # topic arrives while the other topics' history is still being read: valid events of other
    # streams interleave with it (they once reset a shared breaker, and the worker never stopped).
    bootstrap = stack.endpoints["kafka_bootstrap"]
    group = f"hub-flood-{uuid.uuid4().hex[:8]}"
    # Unified and control topics of its own: a second group writing the session's would race its
    # worker (each publishes customers and figures as its own state says, the last writer wins).
    topics = scratch_registry(HubSettings(kafka_bootstrap=bootstrap), group,
                              stack.state_dir / "logs")  # fmt: skip
    env = {**stack.env, "HUB_WORKER_ID": group, "HUB_DLQ_MAX_CONSECUTIVE": "5",
           "HUB_WORKER_WEB_PORT": str(free_port()), "HUB_TOPICS_FILE": str(topics)}  # fmt: skip
    log = stack.state_dir / "logs" / f"{group}.log"
    marker = f"flood-{uuid.uuid4()}".encode()
    produce_garbage(bootstrap, 8, marker)
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "hub", "worker"], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        assert proc.wait(300) != 0
    finally:
        if proc.poll() is None:  # the supervisor and its worker (a session of their own)
            os.killpg(proc.pid, signal.SIGKILL)
    text = log.read_text(errors="replace")
    assert f"{registry()['raw.pos.stock'].name}[0]: 5 invalid events in a row" in text, text[-3000:]
    # Nothing was swallowed: the five it judged are in the DLQ; the rest wait for a restart.
    assert len(dead_letters(bootstrap, marker, 8, timeout=15)) >= 5
    assert not caught_up(bootstrap, group), "the flood's offsets were committed"


def test_dlq_lists_and_replays_each_dead_letter_once(stack, worker):
    bootstrap = stack.endpoints["kafka_bootstrap"]
    marker = f"replay-{uuid.uuid4()}".encode()
    produce_garbage(bootstrap, 2, marker)
    dead_letters(bootstrap, marker, 2)
    listed = stack.hub("dlq", "list", "--json", "--limit", "0")
    assert listed.returncode == 0, listed.stderr
    mine = [json.loads(line) for line in listed.stdout.splitlines() if marker.decode() in line]
    assert len(mine) == 2 and {m["reason"] for m in mine} == {"malformed_json"}

    dry = stack.hub("dlq", "replay", "--reason", "malformed_json", "--dry-run")
    assert "would replay" in dry.stderr, dry.stderr
    raw = registry()["raw.pos.stock"]
    ends = {p: _end(bootstrap, raw.name, p) for p in range(raw.partitions)}
    first = stack.hub("dlq", "replay", "--reason", "malformed_json")
    assert first.returncode == 0, first.stderr
    replayed = _read_from(bootstrap, raw.name, ends)
    again = [m for m in replayed if m.key() == marker]
    assert sorted(m.value() for m in again) == [b"not json 0", b"not json 1"]
    assert all(dict(m.headers())["hub.replayed_from"].startswith(b"hub.dlq:") for m in again)
    # Still garbage: dead-lettered again, marked as a failed replay; progress is kept, so a second
    # replay sends nothing of these.
    failed_again = dead_letters(bootstrap, marker, 4)[2:]
    assert all("hub.dlq.replayed_from" in dict(m.headers()) for m in failed_again)
    ends = {p: _end(bootstrap, raw.name, p) for p in range(raw.partitions)}
    second = stack.hub("dlq", "replay", "--reason", "malformed_json")
    assert "left alone" in second.stderr
    assert [m for m in _read_from(bootstrap, raw.name, ends) if m.key() == marker] == []


def _end(bootstrap: str, topic: str, partition: int) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"it-{uuid.uuid4()}"})
    try:
        return int(consumer.get_watermark_offsets(TopicPartition(topic, partition), 10)[1])
    finally:
        consumer.close()


def _read_from(bootstrap: str, topic: str, starts: dict[int, int], quiet: float = 3.0) -> list:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"it-{uuid.uuid4()}"})
    consumer.assign([TopicPartition(topic, p, o) for p, o in starts.items()])
    found, last = [], time.monotonic()
    while time.monotonic() - last < quiet:
        msg = consumer.poll(0.2)
        if msg is not None and not msg.error():
            found.append(msg)
            last = time.monotonic()
    consumer.close()
    return found
