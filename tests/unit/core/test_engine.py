"""The engine's list of rows to evaluate again when a looked-up row changes."""

from __future__ import annotations

import orjson

from hub.core.engine import DEPS_CHUNK, MemoryStore, deps_ref
from tests.conftest import new_engine

VARIANT = 'row:shop:shop.variant:{"id":1}'


def line(n: int) -> str:
    return f'row:shop:shop.order_line:{{"line_no":1,"order_id":{n}}}'


def test_each_dependent_is_listed_once_and_costs_the_same_however_long_the_list():
    engine = new_engine()
    store = engine.store
    assert isinstance(store, MemoryStore)
    count = 3 * DEPS_CHUNK + 17
    for n in range(count):
        engine._depend(VARIANT, line(n))
        engine._depend(VARIANT, line(n))  # an update of the same line: already listed
    assert engine._dependents(VARIANT) == [line(n) for n in range(count)]
    biggest = max(len(orjson.dumps(value)) for value in store.values())
    assert biggest < (DEPS_CHUNK + 1) * (len(orjson.dumps(line(count))) + 1)  # a chunk at most
    assert store[deps_ref(VARIANT)] == {
        "full": 3,
        "tail": [line(n) for n in range(3 * DEPS_CHUNK, count)],
    }


def test_a_list_written_by_an_earlier_version_is_read_and_extended():
    engine = new_engine()
    engine.store.put(deps_ref(VARIANT), {line(1): 1, line(2): 1})
    assert engine._dependents(VARIANT) == [line(1), line(2)]
    engine._depend(VARIANT, line(2))
    engine._depend(VARIANT, line(3))
    assert engine._dependents(VARIANT) == [line(1), line(2), line(3)]
