"""A key whose state was set wrong — a well-formed record a little ahead of the source, written to a
raw topic by someone other than Connect — is found by `hub reconcile` and repaired by the command
it prints, after which real changes flow again.

Marked ``faults``: it runs its own worker of the session's group."""

from __future__ import annotations

import json
import shlex

import orjson
import psycopg
import pytest
from confluent_kafka import Producer

from hub.kafka_io import read_to_end
from hub.topics import registry
from tests.integration.harness import Worker, drained, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.faults]

STORE, EAN = "MRS01", "3760000000048"
KEY = f"{EAN}@store:{STORE}"


def on_topic(stack) -> str | None:
    value = None
    for msg in read_to_end(stack.endpoints["kafka_bootstrap"], [registry()["unified.inventory"]]):
        if msg.key() == KEY.encode():
            value = orjson.loads(msg.value())["on_hand"] if msg.value() is not None else None
    return value


def in_source(stack) -> str:
    ((qty,),) = stack.sql("pos", "SELECT qty FROM pos.stock WHERE store_code = %s AND ean = %s",
                          (STORE, EAN))  # fmt: skip
    return str(qty)


def row_key(raw: bytes | None) -> object:
    """A raw record's row key (other tests left garbage on the raw topics: None for that)."""
    try:
        return orjson.loads(raw or b"")
    except orjson.JSONDecodeError:
        return None


def sell_one(stack) -> None:
    stack.sql("pos", "UPDATE pos.stock SET qty = qty - 1 WHERE store_code = %s AND ean = %s",
              (STORE, EAN))  # fmt: skip


def test_a_key_set_wrong_is_found_and_repaired(stack, quiet_group):
    worker = Worker(stack, "repair-worker")
    quiet_group.append(worker)
    worker.start()
    sell_one(stack)
    wait_until(lambda: on_topic(stack) == in_source(stack), "the key as the source has it")
    drained(stack)

    # A copy of the key's last change, 100 kB of WAL ahead: plausible, so it becomes the mark.
    spec = registry()["raw.pos.stock"]
    last = [m for m in read_to_end(stack.endpoints["kafka_bootstrap"], [spec])
            if m.value() and row_key(m.key()) == {"store_code": STORE, "ean": EAN}][-1]  # fmt: skip
    forged = orjson.loads(last.value())
    forged["after"]["qty"] = 9999
    forged["source"]["lsn"] += 100_000
    forged["source"]["sequence"] = json.dumps([str(forged["source"]["lsn"])] * 2)
    # Into the partition Debezium writes that key to (Kafka's Java partitioner: murmur2).
    producer = Producer({"bootstrap.servers": stack.endpoints["kafka_bootstrap"],
                         "partitioner": "murmur2_random"})  # fmt: skip
    producer.produce(spec.name, orjson.dumps(forged), last.key())
    assert producer.flush(10) == 0
    wait_until(lambda: on_topic(stack) == "9999", "the forged quantity published")
    sell_one(stack)  # a real sale, before the forged position: dropped as a replay
    drained(stack)
    assert on_topic(stack) == "9999"

    result = stack.hub("reconcile", "--json", "--wait", "0")
    report = json.loads(result.stdout)
    assert result.returncode == 1 and not report["agree"]
    assert report["topics"]["unified.inventory"]["wrong"] == {
        KEY: {"on_hand": [in_source(stack), "9999"]}
    }
    assert report["repair"] == f"hub repair {KEY}"
    repaired = stack.hub(*shlex.split(report["repair"])[1:])
    assert repaired.returncode == 0, repaired.stderr
    assert on_topic(stack) == in_source(stack)

    sell_one(stack)  # real changes flow again
    wait_until(lambda: on_topic(stack) == in_source(stack), "the next sale published")
    # Move the WAL past the forged position, so that a worker reading the raw topic from the start
    # (a later test does) ends with a real change of this key.
    superuser = stack.pos_dsn.replace("pos_app@", "postgres@")
    with psycopg.connect(superuser, autocommit=True) as admin:
        for _ in range(2):  # two segments on: 16 MB past anything written before
            admin.execute("SELECT pg_switch_wal()")
            sell_one(stack)
    wait_until(lambda: on_topic(stack) == in_source(stack), "the sale after the WAL switch")
    result = stack.hub("reconcile", "--json", "--wait", "60")
    assert json.loads(result.stdout)["agree"], result.stdout[:3000]
