"""Declared retention: closed tickets and their lines leave the engine's state once the source's
time has passed their closing change by the declared time; open ones stay; the lists that named
them are mended."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from hub.core.engine import Engine, MemoryStore, deps_ref
from hub.core.lists import CHUNK, ChunkedList
from hub.core.records import Upsert
from hub.core.retention import BUCKET, INDEX, RetentionSpec, bucket_of
from tests.conftest import NOW, new_engine, pick

KEEP = 15 * 60  # pos.ticket's declared retention, seconds
T0 = 1_795_440_563  # the recorded sale's commit time, epoch seconds


class Source:
    """POS changes of the recorded sale, renumbered: ticket ``ticket_id``, committed at ``T0 +
    at`` seconds, each at a position after the last one made."""

    def __init__(self) -> None:
        self.lsn = 30_000_000

    def change(
        self, table: str, op: str, at: float, nth: int = 0, **after: Any
    ) -> tuple[bytes, bytes]:
        record = pick("pos_sale", f"pos.{table}", op, nth)
        envelope = orjson.loads(record.value or b"{}")
        self.lsn += 100
        micros = int((T0 + at) * 1_000_000)
        envelope["source"] |= {"lsn": self.lsn, "sequence": orjson.dumps([str(self.lsn), str(self.lsn)]).decode(),
                               "ts_us": micros, "ts_ms": micros // 1000}  # fmt: skip
        image = "before" if op == "d" else "after"
        envelope[image] = {**envelope[image], **after}
        key = {"ticket_id": envelope[image]["ticket_id"]}
        if table == "ticket_line":
            key["line_no"] = envelope[image]["line_no"]
        return orjson.dumps(key), orjson.dumps(envelope)

    def sale(self, engine: Engine, ticket: int, at: float, status: str = "C") -> list[Any]:
        """A ticket opened with two lines, then ``status`` (C paid, V voided, O still open)."""
        outputs = engine.process(
            "pos", *self.change("ticket", "c", at, ticket_id=ticket), NOW
        ).outputs
        for n in (0, 1):
            change = self.change("ticket_line", "c", at, n, ticket_id=ticket)
            outputs += engine.process("pos", *change, NOW).outputs
        if status != "O":
            change = self.change("ticket", "u", at + 1, ticket_id=ticket, status=status)
            outputs += engine.process("pos", *change, NOW).outputs
        return outputs

    def stock(self, engine: Engine, at: float) -> int:
        """Any change of the system moves its clock: a stock count at ``T0 + at``."""
        record = pick("pos_stock", "pos.stock", "u")
        envelope = orjson.loads(record.value or b"{}")
        self.lsn += 100
        micros = int((T0 + at) * 1_000_000)
        envelope["source"] |= {"lsn": self.lsn, "sequence": orjson.dumps([str(self.lsn), str(self.lsn)]).decode(),
                               "ts_us": micros, "ts_ms": micros // 1000}  # fmt: skip
        return engine.process("pos", record.key, orjson.dumps(envelope), NOW).expired


def ticket_refs(store: MemoryStore, ticket: int) -> list[str]:
    """Every state entry that names ticket ``ticket`` (rows, lists)."""
    needle = f'"ticket_id":{ticket}}}'
    return sorted(ref for ref in store if needle in ref)


def test_a_closed_ticket_and_its_lines_leave_the_state_after_the_declared_time():
    engine, source = new_engine(), Source()
    store = engine.store
    assert isinstance(store, MemoryStore)
    outputs = source.sale(engine, 1, at=0)
    assert {o.key for o in outputs if isinstance(o, Upsert)} == {"store:1:1", "store:1:2"}
    assert len(ticket_refs(store, 1)) == 4  # ticket, its 2 lines, its list of lines
    assert source.stock(engine, at=KEEP - 1) == 0  # not yet: 1 s closed + 15 min is later
    assert ticket_refs(store, 1) != []
    assert source.stock(engine, at=bucket_of(T0 + 1 + KEEP) - T0) == 3  # ticket and two lines
    assert ticket_refs(store, 1) == []
    assert INDEX not in store and not any(ref.startswith("expiry:") for ref in store)


def test_open_tickets_stay_and_a_reopened_ticket_is_not_expired_by_its_old_listing():
    engine, source = new_engine(), Source()
    source.sale(engine, 1, at=0, status="O")
    source.sale(engine, 2, at=0)
    # Ticket 2 is reopened: its listing as due stays, but its row says it is open now.
    engine.process("pos", *source.change("ticket", "u", 10, ticket_id=2, status="O"), NOW)
    assert source.stock(engine, at=3 * KEEP) == 0
    assert len(ticket_refs(engine.store, 1)) == 4 and len(ticket_refs(engine.store, 2)) == 4
    # Closed again later: due from that change.
    engine.process("pos", *source.change("ticket", "u", 4 * KEEP, ticket_id=2, status="V"), NOW)
    assert source.stock(engine, at=5 * KEEP + BUCKET) == 3
    assert ticket_refs(engine.store, 2) == [] and len(ticket_refs(engine.store, 1)) == 4


def test_expiry_follows_source_time_not_the_wall_clock():
    """Replaying the same changes expires the same rows at the same points (the worker's clock,
    ``NOW`` here, is never read)."""
    runs = []
    for _ in range(2):
        engine, source = new_engine(), Source()
        expired = []
        for n in range(1, 40):
            source.sale(engine, n, at=n * 60)
            expired.append(source.stock(engine, at=n * 60 + 30))
        runs.append((expired, sorted(engine.store)))
    assert runs[0] == runs[1]
    store = engine.store
    assert isinstance(store, MemoryStore)
    end = T0 + 39 * 60 + 30
    due = {n for n in range(1, 40) if bucket_of(T0 + n * 60 + 1 + KEEP) <= end}
    assert len(due) > 15
    assert all(ticket_refs(store, n) == [] for n in due)
    assert all(len(ticket_refs(store, n)) == 4 for n in set(range(1, 40)) - due)


def test_a_deleted_ticket_leaves_too_and_late_lines_of_an_expired_ticket_wait_for_it():
    engine, source = new_engine(), Source()
    source.sale(engine, 1, at=0, status="O")
    engine.process("pos", *source.change("ticket", "d", 5, ticket_id=1), NOW)
    assert source.stock(engine, at=KEEP + 5 + BUCKET) == 3
    assert ticket_refs(engine.store, 1) == []
    late = engine.process("pos", *source.change("ticket_line", "c", KEEP + 200, ticket_id=1), NOW)
    assert late.outputs == [] and late.skipped == "pending:pos.ticket"


def test_a_looked_up_row_drops_rows_that_left_from_its_list_when_it_changes():
    engine = new_engine()
    target = 'row:shop:shop.variant:{"id":1}'
    lines = [f'row:shop:shop.order_line:{{"line_no":1,"order_id":{n}}}' for n in range(CHUNK + 5)]
    for ref in lines:
        engine._depend(target, ref)
        engine.store.put(ref, {"row": {}, "src": {}})
    for ref in lines[: CHUNK - 3]:
        engine.store.put(ref, None)  # expired with their orders
    engine._forget_dependents(target, lines[: CHUNK - 3])
    assert engine.dependents(target) == lines[CHUNK - 3 :]
    store = engine.store
    assert isinstance(store, MemoryStore)
    assert f"{deps_ref(target)}#0" not in store  # the full chunk is gone with the rows
    engine._depend(target, lines[0])  # a row back later is listed again
    assert engine.dependents(target)[-1] == lines[0]


def test_chunked_lists_append_rewrite_and_drop():
    store = MemoryStore()
    listed = ChunkedList(store, "list")
    items = [f"i{n}" for n in range(2 * CHUNK + 3)]
    for item in items:
        listed.append(item)
    assert listed.items() == items and store["list"]["full"] == 2
    listed.rewrite(items[CHUNK:])
    assert listed.items() == items[CHUNK:] and "list#1" not in store
    listed.drop()
    assert store == {}


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("15m", 900), ("2h", 7200), ("7d", 604_800)]
)
def test_retention_durations_read_as_written(text: str, seconds: int):
    spec = RetentionSpec.model_validate({"when": {"status": ["C"]}, "keep": text})
    assert spec.keep == timedelta(seconds=seconds)


@pytest.mark.parametrize("keep", ["15 minutes", "0s", "-1h", ""])
def test_a_bad_retention_is_refused_when_the_definition_loads(keep: str):
    with pytest.raises(ValidationError, match="keep"):
        RetentionSpec.model_validate({"when": {"status": ["C"]}, "keep": keep})
