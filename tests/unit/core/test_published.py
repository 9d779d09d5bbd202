"""The published-state entries the worker reads back from the unified topics after a crash."""

from __future__ import annotations

import orjson

from hub.core.engine import digest, seed_entry
from hub.core.records import Tombstone, Upsert
from hub.errors import InvalidEvent
from tests.conftest import FIXTURES, NOW, new_engine, pick, recorded


def test_entry_read_back_from_a_topic_equals_the_one_the_engine_kept():
    record = pick("erp_customer", "erp.CUST_MAST", "c")
    article = pick("erp_stock", "erp.ART_MASTER", "c")
    stock = pick("erp_stock", "erp.STK_BAL", "c")
    engine = new_engine()
    outputs = [*engine.process("erp", record.key, record.value, NOW).outputs]
    engine.process("erp", article.key, article.value, NOW)
    outputs += engine.process("erp", stock.key, stock.value, NOW).outputs
    for output in outputs:
        assert isinstance(output, Upsert)
        read_back = orjson.loads(output.value_bytes())
        assert seed_entry(read_back, output.position) == {
            "pos": output.position,
            "hash": digest(output),
        }


def test_a_seeded_engine_publishes_nothing_it_had_published_before_the_crash():
    events = [pick("pos_stock", "pos.stock", op) for op in ("c", "u", "d")]
    first = new_engine()
    published = [o for r in events for o in first.process("pos", r.key, r.value, NOW).outputs]
    restarted = new_engine()  # its row state is gone; what it published is on the topic
    for output in published:
        value = orjson.loads(output.value_bytes()) if isinstance(output, Upsert) else None
        restarted.published.put(
            f"out:{output.topic_id}:{output.key}", seed_entry(value, output.position)
        )
    again = [o for r in events for o in restarted.process("pos", r.key, r.value, NOW).outputs]
    assert again == []
    assert isinstance(published[-1], Tombstone)


def test_the_engines_value_bytes_are_pydantics_own_json_for_every_recorded_change():
    engine = new_engine()
    upserts = [
        output
        for scenario in sorted(p.stem for p in FIXTURES.glob("*.json"))
        for event in recorded(scenario)
        for output in _outputs(engine, event)
        if isinstance(output, Upsert)
    ]
    assert len(upserts) > 20
    for upsert in upserts:
        assert upsert.content is not None  # made once by the engine
        assert upsert.value_bytes() == upsert.record.model_dump_json().encode()
        assert digest(upsert) == digest(Upsert(upsert.topic_id, upsert.key, upsert.record))


def _outputs(engine, event):
    if event.topic.startswith("fixture."):
        return []  # made up for a test of its own: not on a declared topic
    try:
        return engine.process(event.system, event.key, event.value, NOW).outputs
    except InvalidEvent:
        return []
