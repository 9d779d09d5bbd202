"""Record real Debezium events as test fixtures, from a running local stack (`hub stack up`).

    .venv/bin/python tests/tools/record_fixtures.py [SCENARIO ...]

Each scenario runs SQL against a source database, then reads every record the connectors wrote to
the raw topics meanwhile and saves them, in topic order, to tests/fixtures/debezium/<scenario>.json.
The `snapshot` scenario saves the first (snapshot) record of every raw topic. Scenarios write rows
with ids far from the demo data's, and clean up after themselves where they can.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from hub.settings import get_settings
from hub.stack.manager import Stack
from hub.topics import registry

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "debezium"
# Incompressible enough that PostgreSQL stores it out of line (TOAST), as real support notes end up.
NOTE = "\n".join(
    f"2026-11-{i % 28 + 1:02d} ticket {uuid.UUID(int=i * 7919 + 13).hex} {uuid.UUID(int=i * 104729).hex}"
    for i in range(160)
)


def _sql(stack: Stack, system: str, *statements: tuple[str, tuple[Any, ...]]) -> None:
    with stack.open(system) as conn:
        for statement, params in statements:
            with conn.cursor() as cur:
                cur.execute(statement, params)
            conn.commit()


SCENARIOS: dict[str, Callable[[Stack], None]] = {
    "pos_stock": lambda s: _sql(s, "pos",
        ("DELETE FROM pos.stock WHERE ean = '3769999999996'", ()),
        ("INSERT INTO pos.stock VALUES ('LYO01', '3769999999996', 12, '2026-11-20 08:30:00')", ()),
        ("UPDATE pos.stock SET qty = qty - 3 WHERE store_code = 'LYO01' AND ean = '3769999999996'", ()),
        ("DELETE FROM pos.stock WHERE store_code = 'LYO01' AND ean = '3769999999996'", ())),
    "pos_sale": lambda s: _sql(s, "pos",
        ("INSERT INTO pos.ticket VALUES (900001, 'PAR01', 3, 'LC00000042', '2026-11-23 10:15:00+01',"
         " NULL, 0, 'O')", ()),
        ("INSERT INTO pos.ticket_line VALUES (900001, 1, '3760000000017', 2, 12.90),"
         " (900001, 2, '3760000000024', 1, 4.50)", ()),
        ("UPDATE pos.ticket SET status = 'C', closed_at = '2026-11-23 10:16:30+01', total = 30.30"
         " WHERE ticket_id = 900001", ()),
        ("UPDATE pos.ticket SET status = 'V' WHERE ticket_id = 900001", ()),
        ("DELETE FROM pos.ticket_line WHERE ticket_id = 900001", ()),
        ("DELETE FROM pos.ticket WHERE ticket_id = 900001", ())),
    "pos_truncate": lambda s: _sql(s, "pos",
        ("DELETE FROM pos.ticket_line WHERE ticket_id = 900002", ()),
        ("DELETE FROM pos.ticket WHERE ticket_id = 900002", ()),
        ("INSERT INTO pos.ticket VALUES (900002, 'PAR01', 1, NULL, now(), now(), 1.00, 'C')", ()),
        ("INSERT INTO pos.ticket_line VALUES (900002, 1, '3760000000017', 1, 1.00)", ()),
        ("TRUNCATE pos.ticket_line", ())),
    "shop_web_stock": lambda s: _sql(s, "shop",
        ("DELETE FROM shop.inventory_level WHERE variant_id = 90001", ()),
        ("DELETE FROM shop.variant WHERE id = 90001", ()),
        ("INSERT INTO shop.variant VALUES (90001, 1, 'WEB-T0001', '3769999999989', 19.90)", ()),
        ("INSERT INTO shop.inventory_level VALUES (90001, 1, 40, 2, '2026-11-23 09:00:00+00')", ()),
        ("UPDATE shop.inventory_level SET available = 37, committed = 5, updated_at = "
         "'2026-11-23 09:05:00+00' WHERE variant_id = 90001", ()),
        ("DELETE FROM shop.inventory_level WHERE variant_id = 90001", ()),
        ("DELETE FROM shop.variant WHERE id = 90001", ())),
    "shop_customer_toast": lambda s: _sql(s, "shop",
        ("DELETE FROM shop.customer WHERE id = 900001", ()),
        ("INSERT INTO shop.customer VALUES (900001, ' Marie.Curie@Example.FR ', 'Marie', 'Curie',"
         " '06 12 34 56 78', true, %s, '2026-11-01 10:00:00+01', '2026-11-01 10:00:00+01')", (NOTE,)),
        ("UPDATE shop.customer SET phone = '+33 6 98 76 54 32', updated_at = '2026-11-23 12:00:00+01'"
         " WHERE id = 900001", ()),
        ("DELETE FROM shop.customer WHERE id = 900001", ())),
    "shop_order": lambda s: _sql(s, "shop",
        ("INSERT INTO shop.orders VALUES (900001, 1, 'pending', '2026-11-23 09:00:00+00',"
         " '2026-11-23 09:00:00+00', 39.80)", ()),
        ("INSERT INTO shop.order_line VALUES (900001, 1, 1, 2, 19.90)", ()),
        ("UPDATE shop.orders SET status = 'cancelled', updated_at = '2026-11-23 09:30:00+00'"
         " WHERE id = 900001", ()),
        ("DELETE FROM shop.order_line WHERE order_id = 900001", ()),
        ("DELETE FROM shop.orders WHERE id = 900001", ())),
    "erp_stock": lambda s: _sql(s, "erp",
        ("DELETE FROM STK_BAL WHERE ART_NO = 'T000000001'", ()),
        ("DELETE FROM ART_MASTER WHERE ART_NO = 'T000000001'", ()),
        ("INSERT INTO ART_MASTER VALUES ('T000000001', 'ARTICLE DE TEST', '3769999999972', 'KG', 'A')", ()),
        ("INSERT INTO STK_BAL VALUES ('W001', 'T000000001', 12.5, 2.25, 5, '2026-11-23 08:00:00')", ()),
        ("UPDATE STK_BAL SET QTY_OH = QTY_OH - 0.125, LAST_UPD = '2026-11-23 08:15:00'"
         " WHERE ART_NO = 'T000000001'", ()),
        ("DELETE FROM STK_BAL WHERE ART_NO = 'T000000001'", ()),
        ("DELETE FROM ART_MASTER WHERE ART_NO = 'T000000001'", ())),
    "erp_customer": lambda s: _sql(s, "erp",
        ("DELETE FROM CUST_MAST WHERE CUST_NO = 990001", ()),
        ("INSERT INTO CUST_MAST VALUES (990001, 'LE GALL Anne-Sophie', 'ANNE-SOPHIE.LEGALL@EXAMPLE.FR',"
         " '01 42 68 53 00', '75008', '2019-05-17', '2026-11-23 08:00:00')", ()),
        ("UPDATE CUST_MAST SET TEL_NO = '06 11 22 33 44', UPD_TS = '2026-11-23 08:30:00'"
         " WHERE CUST_NO = 990001", ()),
        ("DELETE FROM CUST_MAST WHERE CUST_NO = 990001", ())),
}  # fmt: skip


def record_precise_decimals(stack: Stack, consumer: Consumer) -> list[dict[str, Any]]:
    """ERP stock with decimal.handling.mode=precise and schemas in the JSON: base64 decimals.

    A temporary second connector (own prefix, server id and history topic) streams one update.
    """
    from hub.connect_client import ConnectClient
    from hub.connectors import load_definitions, render_config
    from hub.stack.manager import wait_running

    client = ConnectClient(stack.connect.url)
    config = render_config(load_definitions()["erp"], stack.endpoint("erp"), registry()) | {
        "topic.prefix": "fixture.erp", "database.server.id": "184099",
        "schema.history.internal.kafka.topic": "_fixture_schema_history.erp",
        "table.include.list": "erp.STK_BAL", "snapshot.mode": "no_data",
        "decimal.handling.mode": "precise",
        "key.converter": "org.apache.kafka.connect.json.JsonConverter", "key.converter.schemas.enable": "true",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter", "value.converter.schemas.enable": "true",
    }  # fmt: skip
    client.apply("fixture-erp-precise", config)
    try:
        wait_running(client, "fixture-erp-precise", 120)
        time.sleep(3)
        _sql(stack, "erp", ("UPDATE STK_BAL SET QTY_OH = QTY_OH + 0.125 WHERE WHS_CODE = 'W001'"
                            " AND ART_NO = 'A000000001'", ()))  # fmt: skip
        deadline, records = time.monotonic() + 60, []
        while not records and time.monotonic() < deadline:
            time.sleep(2)
            with contextlib.suppress(Exception):
                records = _read(
                    consumer, [TopicPartition("fixture.erp.erp.STK_BAL", 0, OFFSET_BEGINNING)]
                )
        return records
    finally:
        client.delete("fixture-erp-precise")


def _raw_partitions() -> list[TopicPartition]:
    return [TopicPartition(spec.name, p) for spec in registry().topics.values() if spec.kind == "raw"
            for p in range(spec.partitions)]  # fmt: skip


def _read(
    consumer: Consumer, start: list[TopicPartition], quiet: float = 4.0
) -> list[dict[str, Any]]:
    consumer.assign(start)
    records, last = [], time.monotonic()
    while time.monotonic() - last < quiet:
        msg = consumer.poll(0.2)
        if msg is None or msg.error():
            continue
        last = time.monotonic()
        records.append({
            "topic": msg.topic(), "partition": msg.partition(), "offset": msg.offset(),
            "key": msg.key().decode() if msg.key() is not None else None,
            "value": msg.value().decode() if msg.value() is not None else None,
        })  # fmt: skip
    return in_log_order(sorted(records, key=lambda r: (r["topic"], r["partition"], r["offset"])))


def in_log_order(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Order across topics as the source committed them; a tombstone follows its delete."""
    ordered: list[tuple[tuple[int, str, int], dict[str, Any]]] = []
    last_position: dict[tuple[str, str | None], tuple[int, str, int]] = {}
    for record in records:  # within a topic partition, Kafka order is already log order
        if record["value"] is None:
            position = last_position[(record["topic"], record["key"])]
            ordered.append(((position[0], position[1], position[2] + 1), record))
            continue
        source = json.loads(record["value"])["source"]
        position = (int(source.get("ts_us") or source["ts_ms"] * 1000),
                    decode_position(source), 0)  # fmt: skip
        last_position[(record["topic"], record["key"])] = position
        ordered.append((position, record))
    return [record for _, record in sorted(ordered, key=lambda item: item[0])]


def decode_position(source: dict[str, Any]) -> str:
    from hub.core.debezium import mariadb_position, postgres_position

    return (
        postgres_position(source)
        if source["connector"] == "postgresql"
        else mariadb_position(source)
    )


def main(names: list[str]) -> None:
    stack = Stack(get_settings())
    bootstrap = stack.env()["kafka_bootstrap"]
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"rec-{uuid.uuid4()}",
                         "enable.auto.commit": False})  # fmt: skip
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for name in names or ["snapshot", *SCENARIOS, "erp_stock_precise"]:
        if name == "erp_stock_precise":
            records = record_precise_decimals(stack, consumer)
        elif name == "snapshot":
            start = [
                TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING) for tp in _raw_partitions()
            ]
            consumer.assign(start)
            firsts: dict[str, dict[str, Any]] = {}
            for record in _read(consumer, start, quiet=3.0):
                if record["value"] and json.loads(record["value"])["op"] == "r":
                    firsts.setdefault(record["topic"], record)
            records = list(firsts.values())
        else:
            ends = [TopicPartition(tp.topic, tp.partition, consumer.get_watermark_offsets(tp, 10)[1])
                    for tp in _raw_partitions()]  # fmt: skip
            SCENARIOS[name](stack)
            records = _read(consumer, ends)
        for record in records:
            record.pop("offset"), record.pop("partition")
        path = FIXTURES / f"{name}.json"
        path.write_text(json.dumps(records, indent=2, ensure_ascii=False) + "\n")
        print(f"{path.name}: {len(records)} records")
    consumer.close()


if __name__ == "__main__":
    main(sys.argv[1:])
