"""Repair requests: parsed strictly, applied over whatever the keys were marked with."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hub.core.records import Tombstone, Upsert
from hub.core.repair import DropRepair, Expected, Repairer, RowRepair, encode
from hub.errors import InvalidEvent
from tests.conftest import new_engine

NOW = datetime(2026, 12, 1, tzinfo=UTC)
ROW = {"store_code": "LYO01", "ean": "3769999999996", "qty": 7, "last_count_at": 1795163400000000}
KEY = {"store_code": "LYO01", "ean": "3769999999996"}


FORGED = "pg:7fffffffffffffff:7fffffffffffffff"


def row_repair(row, position="pg:0000000001a00000:0000000001a00000", seen=FORGED) -> bytes:
    expect = [
        Expected(topic_id="unified.inventory", key="3769999999996@store:LYO01", position=seen)
    ]
    return encode(RowRepair(system="pos", table="pos.stock", key=KEY, row=row, expect=expect,
                            position=position, committed_at=NOW, id="test"))  # fmt: skip


def test_a_row_repair_publishes_the_row_over_a_newer_mark():
    engine = new_engine()
    engine.published.put("out:unified.inventory:3769999999996@store:LYO01",
                         {"pos": FORGED, "hash": "forged"})  # fmt: skip
    system, outcome = Repairer(engine).apply(row_repair(ROW), NOW)
    assert system == "pos"
    (upsert,) = outcome.outputs
    assert isinstance(upsert, Upsert) and str(upsert.record.on_hand) == "7"
    assert upsert.record.source_position == "pg:0000000001a00000:0000000001a00000"


def test_a_row_that_is_gone_becomes_a_tombstone():
    engine = new_engine()
    _, outcome = Repairer(engine).apply(row_repair(None, seen=None), NOW)  # never published
    assert outcome.outputs == [
        Tombstone(
            "unified.inventory", "3769999999996@store:LYO01", "pg:0000000001a00000:0000000001a00000"
        )
    ]


def test_a_drop_tombstones_the_key():
    request = DropRepair(system="pos", topic_id="unified.inventory", key="1@store:X", expect=None,
                         position="pg:01:01", committed_at=NOW, id="test")  # fmt: skip
    _, outcome = Repairer(new_engine()).apply(encode(request), NOW)
    assert outcome.outputs == [Tombstone("unified.inventory", "1@store:X", "pg:01:01")]


@pytest.mark.parametrize(
    "value",
    [None, b"not json", b'{"kind": "row"}', b'{"kind": "rewrite", "system": "pos"}',
     row_repair(ROW).replace(b'"pos.stock"', b'"pos.nothing"'),
     encode(DropRepair(system="pos", topic_id="unified.nothing", key="k", expect=None, position="p",
                       committed_at=NOW, id="t"))],
)  # fmt: skip
def test_what_is_not_a_repair_request_is_a_bad_repair(value):
    with pytest.raises(InvalidEvent) as bad:
        Repairer(new_engine()).apply(value, NOW)
    assert bad.value.reason == "bad_repair"
