"""Changes made with SQL in each of the three source databases reach the right unified topics."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal

import pytest
from confluent_kafka import Producer

from hub.simulator import SalesSimulator
from tests.conftest import recorded
from tests.integration.harness import caught_up

pytestmark = pytest.mark.integration


def test_erp_warehouse_stock_is_exact_decimal_keyed_by_gtin(stack, worker, inventory):
    (article,) = stack.sql(
        "erp", "SELECT ART_NO, EAN_CODE FROM ART_MASTER WHERE ART_NO = 'A000000005'"
    )
    stack.sql("erp", "UPDATE STK_BAL SET QTY_OH = 1234.125, QTY_ALLOC = 10.5 WHERE WHS_CODE = 'W002'"
                     " AND ART_NO = 'A000000005'")  # fmt: skip
    record = inventory.wait_for(
        f"{article[1]}@warehouse:W002", lambda v: v is not None and v["on_hand"] == "1234.125"
    )
    assert record["reserved"] == "10.500"
    assert (record["location_type"], record["source_article_id"], record["unit"]) == (
        "warehouse",
        "A000000005",
        "PCE",
    )
    assert record["source_system"] == "erp" and record["source_position"].startswith("mdb:")


def test_erp_customer_is_normalised(stack, worker, customers):
    stack.sql("erp", "INSERT INTO CUST_MAST VALUES (880001, 'DE LA FONTAINE Marc', ' Marc.Fontaine@Example.FR',"
                     " '04 91 55 12 34', '13001', '2021-03-04', '2026-11-23 09:00:00')")  # fmt: skip
    record = customers.wait_for("erp:880001", lambda v: v is not None)
    assert (record["given_name"], record["family_name"]) == ("Marc", "De La Fontaine")
    assert record["email"] == "marc.fontaine@example.fr"
    assert record["phone_e164"] == "+33491551234"
    assert record["postcode"] == "13001"
    assert record["created_at"] == "2021-03-04T00:00:00Z"


def test_web_order_lines_follow_the_order_status(stack, worker, order_lines):
    stack.sql("shop", "INSERT INTO shop.orders VALUES (880001, 7, 'paid', now(), now(), 25.80)")
    stack.sql(
        "shop",
        "INSERT INTO shop.order_line SELECT 880001, 1, id, 2, price FROM shop.variant WHERE id = 3",
    )
    (barcode, price) = stack.sql("shop", "SELECT barcode, price FROM shop.variant WHERE id = 3")[0]
    line = order_lines.wait_for("web:880001:1", lambda v: v is not None)
    assert (line["status"], line["gtin"], line["quantity"]) == ("open", barcode, "2")
    assert Decimal(line["unit_price"]) == price
    assert line["customer_ref"] == "shop:7"
    stack.sql(
        "shop", "UPDATE shop.orders SET status = 'cancelled', updated_at = now() WHERE id = 880001"
    )
    assert (
        order_lines.wait_for("web:880001:1", lambda v: v and v["status"] == "cancelled")["gtin"]
        == barcode
    )


def test_web_stock_counts_committed_units_as_on_hand(stack, worker, inventory):
    (barcode,) = stack.sql("shop", "SELECT barcode FROM shop.variant WHERE id = 4")[0]
    stack.sql("shop", "UPDATE shop.inventory_level SET available = 30, committed = 4, updated_at = now()"
                      " WHERE variant_id = 4")  # fmt: skip
    record = inventory.wait_for(
        f"{barcode}@web:1", lambda v: v is not None and v["on_hand"] == "34"
    )
    assert (record["reserved"], record["location_type"]) == ("4", "web")


def test_unchanged_toasted_note_is_published_not_the_placeholder(stack, worker, customers):
    note = "\n".join(
        f"appel {uuid.UUID(int=i * 7919 + 1).hex} {uuid.UUID(int=i * 6007).hex}" for i in range(150)
    )
    stack.sql("shop", "INSERT INTO shop.customer VALUES (880001, 'toast@example.fr', 'Tia', 'Oast', NULL, false,"
                      " %s, now(), now())", (note,))  # fmt: skip
    customers.wait_for("shop:880001", lambda v: v is not None and v["note"] == note)
    stack.sql(
        "shop",
        "UPDATE shop.customer SET phone = '06 01 02 03 04', updated_at = now() WHERE id = 880001",
    )
    record = customers.wait_for(
        "shop:880001", lambda v: v is not None and v["phone_e164"] == "+33601020304"
    )
    assert record["note"] == note


def test_till_sale_becomes_store_order_lines(stack, worker, order_lines):
    import psycopg

    with psycopg.connect(stack.pos_dsn) as conn:
        sale = SalesSimulator(conn, seed=5).sell()
    for line_no, (ean, qty, price) in enumerate(sale.lines, 1):
        line = order_lines.wait_for(f"store:{sale.ticket_id}:{line_no}", lambda v: v is not None)
        assert (line["gtin"], Decimal(line["quantity"]), Decimal(line["unit_price"])) == (
            ean,
            qty,
            price,
        )
        assert (line["status"], line["location_id"]) == ("completed", f"store:{sale.store_code}")


def test_a_column_added_upstream_is_ignored_until_mapped(stack, worker, customers):
    stack.sql("erp", "ALTER TABLE CUST_MAST ADD COLUMN LOYALTY_TIER VARCHAR(10) NULL")
    stack.sql("shop", "ALTER TABLE shop.customer ADD COLUMN tier text")
    stack.sql(
        "erp", "UPDATE CUST_MAST SET ZIP = '69003', LOYALTY_TIER = 'GOLD' WHERE CUST_NO = 1001"
    )
    stack.sql("shop", "UPDATE shop.customer SET tier = 'vip', first_name = 'Renamed' WHERE id = 2")
    assert customers.wait_for("erp:1001", lambda v: v is not None and v["postcode"] == "69003")
    assert customers.wait_for("shop:2", lambda v: v is not None and v["given_name"] == "Renamed")


def test_a_variant_arriving_after_its_inventory_row_still_yields_the_level(
    stack, worker, inventory
):
    """Real recorded envelopes, written to the raw topics in the adverse order: the level first,
    and the variant only once the worker has processed (and parked) the level."""
    events = recorded("shop_web_stock")
    level = next(r for r in events if r.topic.endswith("inventory_level") and r.op == "c")
    variant = next(r for r in events if r.topic.endswith("shop.variant") and r.op == "c")
    bootstrap = stack.endpoints["kafka_bootstrap"]
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
    producer.produce(level.topic, key=level.key, value=level.value)
    producer.flush(30)
    deadline = time.monotonic() + 120
    while not caught_up(bootstrap, stack.env["HUB_WORKER_ID"], "raw.shop.inventory_level"):
        assert time.monotonic() < deadline, "the worker never processed the inventory row"
        time.sleep(0.5)
    inventory.poll(2)
    assert "3769999999989@web:1" not in inventory.history  # parked, not published without a GTIN
    producer.produce(variant.topic, key=variant.key, value=variant.value)
    producer.flush(30)
    record = inventory.wait_for("3769999999989@web:1", lambda v: v is not None)
    assert (record["source_article_id"], record["on_hand"], record["reserved"]) == (
        "WEB-T0001",
        "42",
        "2",
    )
    # The recorded scenario goes on to delete both rows (no such rows exist in this stack's shop).
    for later in [r for r in events if r.op in ("d", None)]:
        producer.produce(later.topic, key=later.key, value=later.value)
    producer.flush(30)
    assert inventory.wait_for("3769999999989@web:1", lambda v: v is None) is None
