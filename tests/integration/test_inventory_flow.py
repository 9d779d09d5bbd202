"""A sale at a till reaches unified.inventory; a deleted stock row becomes a tombstone."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import psycopg
import pytest

from hub.simulator import SalesSimulator

pytestmark = pytest.mark.integration


def qty(conn: psycopg.Connection, store: str, ean: str) -> int:
    row = conn.execute(
        "SELECT qty FROM pos.stock WHERE store_code = %s AND ean = %s", (store, ean)
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_snapshot_reaches_unified_inventory(stack, worker, inventory):
    with psycopg.connect(stack.pos_dsn) as conn:
        store, ean, on_hand = conn.execute(
            "SELECT store_code, ean, qty FROM pos.stock ORDER BY store_code DESC, ean DESC LIMIT 1"
        ).fetchone()
    key = f"{ean.strip()}@store:{store}"
    # Other tests' loads (the benchmark's) may have changed the row since the snapshot: the
    # snapshot's record is in the key's history, and its latest record is the row as it is now.
    inventory.wait_for(key, lambda v: v is not None and Decimal(v["on_hand"]) == on_hand)
    assert next(v["source_op"] for v in inventory.history[key] if v is not None) == "r"


def test_sale_updates_unified_inventory(stack, worker, inventory):
    started = datetime.now(UTC)
    with psycopg.connect(stack.pos_dsn) as conn:
        sale = SalesSimulator(conn, seed=11).sell()
        expected = {ean: qty(conn, sale.store_code, ean) for ean, _, _ in sale.lines}
    # The sale really decremented the till's stock, line by line.
    assert sale.lines

    def from_the_sale(value, q):
        # The reader goes through the topic's history: an older record of the key (a snapshot,
        # an earlier change) may hold the same quantity. Only a change made since counts.
        return (
            value is not None
            and datetime.fromisoformat(value["source_committed_at"]) >= started
            and Decimal(value["on_hand"]) == q
        )

    for ean, expected_qty in expected.items():
        key = f"{ean}@store:{sale.store_code}"
        record = inventory.wait_for(key, lambda v, q=expected_qty: from_the_sale(v, q))
        assert record["gtin"] == ean
        assert record["location_id"] == f"store:{sale.store_code}"
        assert record["source_system"] == "pos"
        assert record["source_op"] == "u"
        assert record["source_committed_at"] <= record["emitted_at"]


def test_deleted_stock_row_becomes_tombstone(stack, worker, inventory):
    store, ean = "LIL01", "3761234567892"  # an article the demo data does not stock
    key = f"{ean}@store:{store}"
    with psycopg.connect(stack.pos_dsn) as conn:
        conn.execute(
            "INSERT INTO pos.stock (store_code, ean, qty) VALUES (%s, %s, 4)", (store, ean)
        )
        conn.commit()
        assert inventory.wait_for(key, lambda v: v is not None)["on_hand"] == "4"
        conn.execute("DELETE FROM pos.stock WHERE store_code = %s AND ean = %s", (store, ean))
        conn.commit()
    assert inventory.wait_for(key, lambda v: v is None) is None
    assert [v if v is None else v["on_hand"] for v in inventory.history[key]] == ["4", None]
