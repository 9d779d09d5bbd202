from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from hub.core.debezium import decode, postgres_position
from hub.errors import InvalidEvent
from tests.conftest import pick, recorded


def test_decodes_a_recorded_postgres_update():
    record = pick("pos_stock", "pos.stock", "u")
    event = decode(record.key, record.value)
    assert event is not None
    assert event.op == "u"
    assert event.after["store_code"] == "LYO01" and event.after["ean"] == "3769999999996"
    assert event.after["qty"] == 9
    assert event.source.table == "pos.stock"
    assert event.source.connector == "postgresql"
    assert event.source.snapshot is False
    micros = record.envelope["source"]["ts_us"]
    assert event.source.committed_at == datetime.fromtimestamp(micros / 1e6, UTC)
    assert event.key == {"store_code": "LYO01", "ean": "3769999999996"}


def test_decodes_a_recorded_mariadb_update():
    record = pick("erp_stock", "erp.STK_BAL", "u")
    event = decode(record.key, record.value)
    assert event is not None and event.source.connector == "mariadb"
    assert event.source.table == "erp.STK_BAL"
    assert event.after["QTY_OH"] == "12.375"  # decimal.handling.mode=string
    assert event.source.position.startswith("mdb:binlog.")


def test_snapshot_reads_are_flagged():
    snapshot = [r for r in recorded("snapshot") if r.op == "r"]
    assert len(snapshot) >= 8
    for record in snapshot:
        event = decode(record.key, record.value)
        assert event is not None and event.source.snapshot is True, record.topic


def test_tombstone_decodes_to_none():
    record = pick("pos_stock", "pos.stock", None)
    assert record.key is not None
    assert decode(record.key, record.value) is None


@pytest.mark.parametrize("scenario", ["pos_stock", "erp_stock", "shop_web_stock"])
def test_positions_sort_in_log_order_within_a_topic(scenario):
    by_topic: dict[str, list[str]] = {}
    for record in recorded(scenario):
        event = decode(record.key, record.value)
        if event is not None:
            by_topic.setdefault(record.topic, []).append(event.source.position)
    for positions in by_topic.values():
        assert positions == sorted(positions)
        assert len(set(positions)) == len(positions)


def test_position_format():
    assert (
        postgres_position({"lsn": 255, "sequence": '["16", "255"]'})
        == "pg:0000000000000010:00000000000000ff"
    )
    assert (
        postgres_position({"lsn": 255, "sequence": '[null, "255"]'})
        == "pg:0000000000000000:00000000000000ff"
    )


def test_truncate_is_an_invalid_event_with_its_own_reason():
    record = pick("pos_truncate", "pos.ticket_line", "t")
    with pytest.raises(InvalidEvent) as info:
        decode(record.key, record.value)
    assert info.value.reason == "truncate"
    assert "pos.ticket_line" in info.value.detail


def test_precise_decimals_with_schema_are_decoded_exactly():
    (record,) = recorded("erp_stock_precise")
    assert set(record.envelope) == {"schema", "payload"}
    assert isinstance(record.envelope["payload"]["after"]["QTY_OH"], str)  # base64 bytes
    event = decode(record.key, record.value)
    assert event is not None
    assert event.key == {"WHS_CODE": "W001", "ART_NO": "A000000001"}
    assert event.after["QTY_OH"] == "4693.125"
    assert event.after["QTY_ALLOC"] == "31.000"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"not json", "malformed_json"),
        (b"[1, 2]", "malformed_envelope"),
        (b'{"op": "x", "source": {}}', "unsupported_op"),
        (b'{"op": "u", "before": null, "after": null, "source": {}}', "malformed_envelope"),
        (b'{"op": "d", "before": null, "after": null, "source": {}}', "malformed_envelope"),
        (b'{"op": "c", "after": {"a": 1}}', "malformed_envelope"),
        (b'{"op": "c", "after": {"a": 1}, "source": {"connector": "postgresql"}}', "malformed_source"),
        (b'{"op": "c", "after": {"a": 1}, "source": {"connector": "oracle", "ts_ms": 1, "db": "x",'
         b' "table": "t", "name": "n"}}', "unsupported_connector"),
        (b'{"op": "c", "after": {"a": 1}, "source": {"connector": "mariadb", "ts_ms": 1, "db": "x",'
         b' "table": "t", "name": "n"}}', "malformed_source"),
    ],
)  # fmt: skip
def test_bad_envelopes_raise_invalid_event(value, reason):
    with pytest.raises(InvalidEvent) as info:
        decode(None, value)
    assert info.value.reason == reason


@pytest.mark.parametrize(
    ("value", "hint"),
    [(b'{"schema": {}, "payload": null}', "schemas.enable=true"),
     (b'{"payload": {"op": "c"}}', "half {\"schema\", \"payload\"} wrapper"),
     (b'{"id": 1, "qty": 3}', "ExtractNewRecordState")],
)  # fmt: skip
def test_an_envelope_that_is_not_one_says_what_it_looks_like(value, hint):
    with pytest.raises(InvalidEvent) as info:
        decode(None, value)
    assert info.value.reason == "malformed_envelope"
    assert hint in info.value.detail


def test_schema_wrapped_envelope_is_accepted():
    record = pick("pos_stock", "pos.stock", "c")
    wrapped = orjson.dumps({"schema": {}, "payload": record.envelope})
    event = decode(record.key, wrapped)
    assert event is not None and event.op == "c" and event.after["qty"] == 12
