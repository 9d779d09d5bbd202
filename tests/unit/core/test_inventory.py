from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from hub.core.pipeline import process
from hub.core.records import Tombstone, Upsert
from hub.errors import InvalidEvent
from hub.models import InventoryLevel

NOW = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)
KEY = "3769999999996@store:LYO01"


def only_output(recorded, name):
    outcome = process("pos", *recorded(name), NOW)
    assert outcome.skipped is None
    assert len(outcome.outputs) == 1
    return outcome.outputs[0]


@pytest.mark.parametrize(
    ("name", "op", "on_hand"), [("pos_stock_create", "c", 12), ("pos_stock_update", "u", 9)]
)
def test_insert_and_update_become_inventory_levels(recorded, name, op, on_hand):
    output = only_output(recorded, name)
    assert isinstance(output, Upsert)
    assert output.topic_id == "unified.inventory"
    assert output.key == KEY
    level = output.record
    assert isinstance(level, InventoryLevel)
    assert (level.sku, level.location_id, level.location_type) == (
        "3769999999996",
        "store:LYO01",
        "store",
    )
    assert level.on_hand == on_hand
    assert level.source_op == op
    assert level.source_system == "pos" and level.source_table == "pos.stock"
    assert level.counted_at == datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
    assert level.emitted_at == NOW
    assert level.source_position.startswith("pg:")


def test_snapshot_read_becomes_inventory_level(recorded):
    output = only_output(recorded, "pos_stock_read")
    assert isinstance(output, Upsert)
    assert output.key == "3760000000086@store:PAR01"
    assert output.record.on_hand == 109
    assert output.record.source_op == "r"


def test_delete_becomes_tombstone(recorded):
    assert only_output(recorded, "pos_stock_delete") == Tombstone("unified.inventory", KEY)


def test_debezium_tombstone_is_skipped_not_dropped_silently(recorded):
    outcome = process("pos", *recorded("pos_stock_tombstone"), NOW)
    assert outcome.outputs == [] and outcome.skipped == "debezium_tombstone"


def test_value_json_round_trips(recorded):
    output = only_output(recorded, "pos_stock_update")
    assert isinstance(output, Upsert)
    assert InventoryLevel.model_validate_json(output.value_bytes()) == output.record


def mutate(recorded, name, **after):
    key, value = recorded(name)
    envelope = orjson.loads(value)
    envelope["after"].update(after)
    return key, orjson.dumps(envelope)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"qty": "12"}, "bad_value"),
        ({"qty": None}, "bad_value"),
        ({"ean": "37699"}, "bad_value"),
        ({"store_code": "LYO 01"}, "bad_value"),
        ({"last_count_at": "yesterday"}, "bad_value"),
    ],
)
def test_bad_rows_raise_invalid_event(recorded, change, reason):
    with pytest.raises(InvalidEvent) as info:
        process("pos", *mutate(recorded, "pos_stock_update", **change), NOW)
    assert info.value.reason == reason


def test_blank_padded_char_columns_are_trimmed(recorded):
    output = process(
        "pos", *mutate(recorded, "pos_stock_update", store_code="LYO01  "), NOW
    ).outputs[0]
    assert output.key == KEY


def test_unrouted_table_is_an_error(recorded):
    key, value = recorded("pos_stock_update")
    envelope = orjson.loads(value)
    envelope["source"]["table"] = "ticket"
    with pytest.raises(InvalidEvent) as info:
        process("pos", key, orjson.dumps(envelope), NOW)
    assert info.value.reason == "no_route"
