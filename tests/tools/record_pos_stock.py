"""Record real Debezium envelopes for pos.stock as test fixtures (run against a live stack).

    .venv/bin/python tests/tools/record_pos_stock.py

Makes one insert, one update and one delete in the POS database, reads them back from the raw
topic with the snapshot read that precedes them, and writes tests/fixtures/debezium/pos_stock_*.json.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
from confluent_kafka import Consumer

from hub.topics import registry

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "debezium"
EAN = "3769999999996"


def main() -> None:
    env = json.loads(subprocess.run([sys.executable, "-m", "hub", "stack", "env", "--json"],
                                    capture_output=True, text=True, check=True).stdout)  # fmt: skip
    topic = registry()["raw.pos.stock"].name
    with psycopg.connect(env["sources"]["pos"], autocommit=True) as conn:
        conn.execute("DELETE FROM pos.stock WHERE ean = %s", (EAN,))
        conn.execute(
            "INSERT INTO pos.stock VALUES ('LYO01', %s, 12, '2026-11-20 08:30:00')", (EAN,)
        )
        conn.execute(
            "UPDATE pos.stock SET qty = qty - 3 WHERE store_code = 'LYO01' AND ean = %s", (EAN,)
        )
        conn.execute("DELETE FROM pos.stock WHERE store_code = 'LYO01' AND ean = %s", (EAN,))
    consumer = Consumer({"bootstrap.servers": env["kafka_bootstrap"], "group.id": f"rec-{uuid.uuid4()}",
                         "auto.offset.reset": "earliest"})  # fmt: skip
    consumer.subscribe([topic])
    wanted: dict[str, dict[str, object]] = {}
    while len(wanted) < 5:
        msg = consumer.poll(10)
        if msg is None:
            raise SystemExit(f"only found {sorted(wanted)}")
        if msg.error():
            continue
        key = msg.key().decode()
        record = {
            "topic": msg.topic(),
            "key": key,
            "value": msg.value().decode() if msg.value() else None,
        }
        if msg.value() is None:
            if EAN in key:
                wanted["tombstone"] = record
            continue
        op = json.loads(msg.value())["op"]
        if op == "r" and "read" not in wanted:
            wanted["read"] = record
        elif EAN in key and op in "cud":
            wanted[{"c": "create", "u": "update", "d": "delete"}[op]] = record
    consumer.close()
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for name, record in wanted.items():
        (FIXTURES / f"pos_stock_{name}.json").write_text(json.dumps(record, indent=2) + "\n")
        print("wrote", FIXTURES / f"pos_stock_{name}.json")


if __name__ == "__main__":
    main()
