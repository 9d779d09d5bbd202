"""Where ``hub repair`` sends each request: to the partition number holding its row."""

from __future__ import annotations

from confluent_kafka import murmur2

from hub.connectors import load_definitions
from hub.core.repair import DropRepair, RowRepair
from hub.repair import route
from tests.conftest import NOW

DEFINITIONS = load_definitions()
POSITION = "pg:0000000001a00000:0000000001a00000"


def row(system: str, table: str, key: dict, values: dict | None) -> RowRepair:
    return RowRepair(system=system, table=table, key=key, row=values, position=POSITION,
                     committed_at=NOW, id="t")  # fmt: skip


def test_a_row_goes_where_its_raw_topic_has_it():
    line = row("shop", "shop.order_line", {"order_id": 42, "line_no": 1},
               {"order_id": 42, "line_no": 1, "variant_id": 3})  # fmt: skip
    order = row("shop", "shop.orders", {"id": 42}, {"id": 42, "status": "paid"})
    (key, where), (order_key, order_where) = (route(r, DEFINITIONS, 4) for r in (line, order))
    assert key == order_key == b'{"order_id":42}'  # an order and its lines: one partition
    assert where == order_where == [murmur2(key, 4)]


def test_a_reference_row_goes_to_every_partition():
    article = row("shop", "shop.variant", {"id": 3}, {"id": 3, "barcode": "3760000000001"})
    assert route(article, DEFINITIONS, 4) == (b'{"id":3}', [0, 1, 2, 3])


def test_a_drop_goes_to_one_partition_whoever_marked_its_key():
    def drop(expect: str | None) -> DropRepair:
        return DropRepair(system="pos", topic_id="unified.inventory", key="k", expect=expect,
                          position=POSITION, committed_at=NOW, id="t")  # fmt: skip

    key, where = route(drop(POSITION), DEFINITIONS, 4)
    assert key == b"unified.inventory:k" and where == [murmur2(key, 4)]
    assert route(drop(None), DEFINITIONS, 4) == (key, where)
