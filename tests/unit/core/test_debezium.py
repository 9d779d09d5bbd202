from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from hub.core.debezium import decode, micro_timestamp, postgres_position
from hub.errors import InvalidEvent


def test_decodes_a_recorded_update(recorded):
    event = decode(*recorded("pos_stock_update"))
    assert event is not None
    assert event.op == "u"
    assert event.after == {
        "store_code": "LYO01",
        "ean": "3769999999996",
        "qty": 9,
        "last_count_at": 1795163400000000,
    }
    assert event.source.table == "pos.stock"
    assert event.source.connector == "postgresql"
    assert event.source.snapshot is False
    assert event.source.committed_at == datetime(2026, 11, 23, 13, 13, 27, 626891, tzinfo=UTC)
    assert event.key == {"store_code": "LYO01", "ean": "3769999999996"}


def test_snapshot_read_is_flagged(recorded):
    event = decode(*recorded("pos_stock_read"))
    assert event is not None and event.op == "r" and event.source.snapshot is True


def test_tombstone_decodes_to_none(recorded):
    assert decode(*recorded("pos_stock_tombstone")) is None


def test_positions_sort_in_log_order(recorded):
    positions = [
        decode(*recorded(f"pos_stock_{op}")).source.position
        for op in ("create", "update", "delete")
    ]
    assert positions == sorted(positions)
    assert len(set(positions)) == 3


def test_position_format():
    assert (
        postgres_position({"lsn": 255, "sequence": '["16", "255"]'})
        == "pg:0000000000000010:00000000000000ff"
    )
    assert (
        postgres_position({"lsn": 255, "sequence": '[null, "255"]'})
        == "pg:0000000000000000:00000000000000ff"
    )


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"not json", "malformed_json"),
        (b"[1, 2]", "malformed_envelope"),
        (b'{"op": "t", "source": {}}', "unsupported_op"),
        (b'{"op": "u", "before": null, "after": null, "source": {}}', "malformed_envelope"),
        (b'{"op": "d", "before": null, "after": null, "source": {}}', "malformed_envelope"),
        (b'{"op": "c", "after": {"a": 1}}', "malformed_envelope"),
        (
            b'{"op": "c", "after": {"a": 1}, "source": {"connector": "postgresql"}}',
            "malformed_source",
        ),
        (
            b'{"op": "c", "after": {"a": 1}, "source": {"connector": "oracle", "ts_ms": 1, "db": "x",'
            b' "table": "t", "name": "n"}}',
            "unsupported_connector",
        ),
    ],
)
def test_bad_envelopes_raise_invalid_event(value, reason):
    with pytest.raises(InvalidEvent) as info:
        decode(None, value)
    assert info.value.reason == reason


def test_schema_wrapped_envelope_is_accepted(recorded):
    key, value = recorded("pos_stock_create")
    wrapped = orjson.dumps({"schema": {}, "payload": orjson.loads(value)})
    event = decode(key, wrapped)
    assert event is not None and event.op == "c" and event.after["qty"] == 12


def test_micro_timestamp():
    assert micro_timestamp(1795163400000000, "c") == datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
    assert micro_timestamp(None, "c") is None
    with pytest.raises(InvalidEvent):
        micro_timestamp("2026-11-20", "c")
