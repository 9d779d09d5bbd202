"""The write-back records a JDBC sink upserts into a channel's table: Connect JSON with schemas,
exact decimals, group figures only, tombstones as deletions."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from hub.core.records import Document, Tombstone
from hub.core.writeback import SCALE, connect_decimal, writeback_record

EXAMPLE = json.loads(
    (Path(__file__).parents[3] / "schemas/examples/availability.v1.json").read_text()
)


def unscaled(text: str) -> int:
    return int.from_bytes(base64.b64decode(text), "big", signed=True)


@pytest.mark.parametrize("value", ["0", "4", "4.000", "-2.5", "1234567.891", "127", "128", "-129"])
def test_a_connect_decimal_holds_the_exact_value(value):
    assert Decimal(unscaled(connect_decimal(Decimal(value)))).scaleb(-SCALE) == Decimal(value)


def test_a_group_figure_becomes_a_row_keyed_by_article_and_group():
    output = Document("unified.availability", EXAMPLE["key"], EXAMPLE["value"])
    key, value = writeback_record(output)  # type: ignore[misc]
    assert orjson.loads(key)["payload"] == {"gtin": "3760000000017", "group_name": "web-fulfilment"}
    row = orjson.loads(value)
    assert row["schema"]["type"] == "struct" and row["payload"]["channel"] == "web"
    assert Decimal(unscaled(row["payload"]["available"])).scaleb(-SCALE) == Decimal("4.000")
    assert row["payload"]["updated_at"] == 1796635815345  # 2026-12-07T09:30:15.345Z, in ms
    fields = [f["field"] for f in row["schema"]["fields"]]
    assert fields == list(row["payload"])  # every field declared, in order


def test_a_group_figure_gone_deletes_its_row_and_a_location_figure_is_not_written_back():
    key, value = writeback_record(Tombstone("unified.availability", EXAMPLE["key"]))  # type: ignore[misc]
    assert value is None and orjson.loads(key)["payload"]["group_name"] == "web-fulfilment"
    location = Document("unified.availability", "3760000000017@store:PAR01", EXAMPLE["value"])
    assert writeback_record(location) is None
