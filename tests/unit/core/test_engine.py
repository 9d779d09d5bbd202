"""The engine: the list of rows to evaluate again when a looked-up row changes; positions that
cannot be right; repairs."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from hub.core.debezium import decode
from hub.core.engine import Engine, MemoryStore, deps_ref
from hub.core.lists import CHUNK as DEPS_CHUNK
from hub.core.records import Tombstone, Upsert
from hub.errors import InvalidEvent
from tests.conftest import NOW, new_engine, pick

VARIANT = 'row:shop:shop.variant:{"id":1}'


def line(n: int) -> str:
    return f'row:shop:shop.order_line:{{"line_no":1,"order_id":{n}}}'


def _again(record, lsn: int) -> bytes:
    """``record`` as an update at a later position (the same row, changed again)."""
    envelope = orjson.loads(record.value)
    envelope["op"] = "u"
    envelope["source"] |= {"lsn": lsn, "sequence": orjson.dumps([str(lsn), str(lsn)]).decode()}
    return orjson.dumps(envelope)


class CopyingStore(MemoryStore):
    """Keeps a copy of each value put, as a store writing to disk does: a value changed after
    ``put`` is not seen."""

    def put(self, ref, value):
        super().put(ref, orjson.loads(orjson.dumps(value)) if value is not None else None)


def test_a_row_is_listed_once_on_each_row_it_looks_up_however_often_it_changes():
    engine = new_engine()
    engine.store = engine.expiry.store = CopyingStore()
    order, line_ = (
        pick("shop_order", "shop.orders", "c"),
        pick("shop_order", "shop.order_line", "c"),
    )
    engine.process("shop", order.key, order.value, NOW)
    ref = 'row:shop:shop.order_line:{"line_no":1,"order_id":900001}'
    for n in range(3):  # waits for its variant, which has not arrived: listed on it once
        engine.process("shop", line_.key, _again(line_, 90_000_000 + n), NOW)
    assert engine.dependents(VARIANT) == [ref]
    assert engine.store.get(ref)["on"] == [VARIANT]
    assert not any(key.startswith("dep:") for key in engine.store)  # no marker per pair


def test_lists_and_entries_written_by_earlier_versions_are_read_and_extended():
    engine = new_engine()
    engine.store.put(deps_ref(VARIANT), {line(1): 1, line(2): 1})  # a list as a dict
    assert engine.dependents(VARIANT) == [line(1), line(2)]
    # An entry without "on": its listings are known by their markers.
    engine.store.put(
        f"dep:{VARIANT.removeprefix('row:')}>{line(2).removeprefix('row:')}", {"listed": True}
    )
    engine._depend(VARIANT, line(2), legacy=True)
    engine._depend(VARIANT, line(3), legacy=True)
    assert engine.dependents(VARIANT) == [line(1), line(2), line(3)]


def test_a_long_list_is_written_a_chunk_at_most_at_a_time():
    engine = new_engine()
    store = engine.store
    assert isinstance(store, MemoryStore)
    count = 3 * DEPS_CHUNK + 17
    for n in range(count):
        engine._depend(VARIANT, line(n))
    assert engine.dependents(VARIANT) == [line(n) for n in range(count)]
    biggest = max(len(orjson.dumps(value)) for value in store.values())
    assert biggest < (DEPS_CHUNK + 1) * (len(orjson.dumps(line(count))) + 1)  # a chunk at most
    assert store[deps_ref(VARIANT)] == {
        "full": 3,
        "tail": [line(n) for n in range(3 * DEPS_CHUNK, count)],
    }


# -- forged positions and repairs ------------------------------------------------------------

GIB = 1 << 30


def guarded_engine() -> Engine:
    return new_engine(max_leap=GIB, log_rate=64 * 1024 * 1024)


def stock_event(
    qty: int, lsn: int, ts_us: int, txid: int = 757, last_commit: int | None = None
) -> tuple[bytes, bytes]:
    """A POS stock update as Debezium writes it, at ``lsn`` after the commit at ``last_commit``,
    committed at ``ts_us`` by transaction ``txid``."""
    record = pick("pos_stock", "pos.stock", "u")
    envelope = orjson.loads(record.value)
    envelope["after"]["qty"] = qty
    sequence = [str(last_commit if last_commit is not None else lsn), str(lsn)]
    envelope["source"] |= {"lsn": lsn, "sequence": orjson.dumps(sequence).decode(), "txId": txid,
                           "ts_us": ts_us, "ts_ms": ts_us // 1000}  # fmt: skip
    return record.key or b"", orjson.dumps(envelope)


T0 = 1795440538728366  # the recorded event's commit time, in microseconds
LATER = datetime(2026, 12, 1, tzinfo=UTC)  # the worker's clock, after every commit here
KEY = "3769999999996@store:LYO01"


def mark(engine: Engine) -> str:
    entry = engine.published.get(f"out:unified.inventory:{KEY}")
    assert entry is not None
    return str(entry["pos"])


def on_hand(outcome) -> list[str]:
    return [str(o.record.on_hand) for o in outcome.outputs if isinstance(o, Upsert)]


def test_a_forged_far_future_position_is_dead_lettered_and_the_key_stays_free():
    engine = guarded_engine()
    assert on_hand(engine.process("pos", *stock_event(9, 27066656, T0), LATER)) == ["9"]
    forged = stock_event(9999, 0x7FFF_FFFF_0000_0000, T0)  # a copy with a made-up position
    with pytest.raises(InvalidEvent) as bad:
        engine.process("pos", *forged, LATER)
    assert bad.value.reason == "implausible_position"
    assert on_hand(engine.process("pos", *stock_event(8, 27066900, T0 + 1000), LATER)) == ["8"]


def test_repair_replaces_a_wrong_mark_and_later_changes_flow_again():
    engine = guarded_engine()
    engine.process("pos", *stock_event(9, 27066656, T0), LATER)
    # A wrong record a little ahead (plausible, so it got in) locks the key: real changes drop.
    assert on_hand(engine.process("pos", *stock_event(9999, 27066656 + 10**6, T0), LATER)) == [
        "9999"
    ]
    real = engine.process("pos", *stock_event(7, 27067000, T0 + 2000), LATER)
    assert (real.outputs, real.skipped) == ([], "duplicate")
    # hub repair reads the row at the source's current position: the truth replaces the mark.
    key, value = stock_event(7, 27067100, T0 + 3000)
    event = decode(key, value)
    assert event is not None
    seen = {("unified.inventory", KEY): mark(engine)}  # what hub repair saw on the topic
    repaired = engine.repair("pos", event, LATER, seen)
    assert on_hand(repaired) == ["7"]
    assert repaired.outputs[0].position == event.source.position == mark(engine)
    assert on_hand(engine.process("pos", *stock_event(6, 27067200, T0 + 4000), LATER)) == ["6"]
    # The same request read again later (a worker replaying hub.repairs): the mark moved since
    # hub repair looked, so the usual rules apply and the older truth is not published.
    again = engine.repair("pos", event, LATER, seen)
    assert (again.outputs, again.skipped) == ([], "duplicate")


def test_a_repair_publishes_unchanged_content_too():
    engine = guarded_engine()
    engine.process("pos", *stock_event(7, 27066656 + 10**6, T0), LATER)  # right qty, wrong mark
    event = decode(*stock_event(7, 27067100, T0 + 3000))
    assert event is not None
    repaired = engine.repair("pos", event, LATER, {("unified.inventory", KEY): mark(engine)})
    assert on_hand(repaired) == ["7"]  # its position is the mark a restarted worker reads back


def test_repair_drops_a_key_no_source_row_produces():
    engine = guarded_engine()
    engine.process("pos", *stock_event(9, 27066656, T0), LATER)
    stale = engine.drop("unified.inventory", KEY, "pg:0000000001a00000:0000000001a00000", "pg:x")
    assert (stale.outputs, stale.skipped) == ([], "moved")  # not the mark hub repair saw
    outcome = engine.drop(
        "unified.inventory", KEY, "pg:0000000001a00000:0000000001a00000", mark(engine)
    )
    assert outcome.outputs == [
        Tombstone("unified.inventory", KEY, "pg:0000000001a00000:0000000001a00000")
    ]
    later = engine.process("pos", *stock_event(5, 0x1A00100, T0 + 5000), LATER)
    assert on_hand(later) == ["5"]


def test_after_a_postgres_repair_its_snapshot_says_which_changes_are_newer():
    engine = guarded_engine()
    engine.process("pos", *stock_event(9999, 27066656 + 10**6, T0, txid=700), LATER)  # wrong mark
    # The repair read at WAL 27066700, in a snapshot that saw transactions below 770 but 758.
    key, value = stock_event(7, 27066699, T0 + 3000)
    event = decode(key, value)
    assert event is not None
    seen = {("unified.inventory", KEY): mark(engine)}
    repaired = engine.repair("pos", event, LATER, seen, snapshot="756:770:758")
    assert on_hand(repaired) == ["7"] and repaired.outputs[0].snapshot == "756:770:758"
    # A change the read saw comes late: not newer, whatever its position.
    late = engine.process("pos", *stock_event(6, 27066800, T0 + 3500, txid=755), LATER)
    assert late.skipped == "duplicate"
    # The next transaction sorts by the commit before it, which precedes the read's WAL location:
    # a position would call it older; the snapshot knows the read did not see it.
    after = stock_event(5, 27066710, T0 + 4000, txid=758, last_commit=27066650)
    assert on_hand(engine.process("pos", *after, LATER)) == ["5"]
    # From there on, positions again.
    older = stock_event(4, 27066600, T0 + 4100, txid=771)
    assert engine.process("pos", *older, LATER).skipped == "duplicate"


def _rekeyed(record, key: dict) -> tuple[bytes, bytes | None]:
    """``record`` as a connector keying its table by ``key`` would write it."""
    return orjson.dumps(key), record.value


def test_rows_keyed_by_a_partition_key_are_still_told_apart_by_their_primary_key():
    engine = new_engine()
    ticket = pick("pos_sale", "pos.ticket", "c")
    first, second = (pick("pos_sale", "pos.ticket_line", "c", n) for n in (0, 1))
    ticket_id = orjson.loads(ticket.key)["ticket_id"]
    engine.process("pos", ticket.key, ticket.value, NOW)
    # Both lines come keyed {"ticket_id"} only (message.key.columns), as their ticket is.
    outputs = [
        output
        for line in (first, second)
        for output in engine.process("pos", *_rekeyed(line, {"ticket_id": ticket_id}), NOW).outputs
    ]
    assert sorted(o.key for o in outputs) == [f"store:{ticket_id}:1", f"store:{ticket_id}:2"]
    rows = sorted(ref for ref in engine.store if ref.startswith("row:pos:pos.ticket_line:"))
    assert rows == [
        f'row:pos:pos.ticket_line:{{"line_no":{n},"ticket_id":{ticket_id}}}' for n in (1, 2)
    ]
    # A delete names its row by the key columns of `before`.
    delete = pick("pos_sale", "pos.ticket_line", "d")
    (tombstone,) = engine.process("pos", *_rekeyed(delete, {"ticket_id": ticket_id}), NOW).outputs
    assert isinstance(tombstone, Tombstone) and tombstone.key == f"store:{ticket_id}:1"


def test_a_row_without_its_declared_key_columns_is_invalid():
    engine = new_engine()
    line = pick("pos_sale", "pos.ticket_line", "c")
    envelope = orjson.loads(line.value)
    del envelope["after"]["line_no"]
    with pytest.raises(InvalidEvent, match=r"without its key columns \['line_no'\]"):
        engine.process("pos", b'{"ticket_id":1}', orjson.dumps(envelope), NOW)
