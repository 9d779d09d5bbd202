"""The read model behind ``hub api``: answers from the unified topics' latest values, freshness,
errors for bad questions, and the change log a stream resumes from."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.core.readmodel import (
    ALERTS,
    AVAILABILITY,
    GOLDEN,
    INVENTORY,
    LINKS,
    ORDER_LINES,
    ChangeLog,
    Position,
    QueryError,
    ReadModel,
)

EXAMPLES = Path(__file__).parents[3] / "schemas/examples"
GTIN = "3760000000017"


def example(name: str) -> tuple[str, dict[str, Any]]:
    document = json.loads((EXAMPLES / f"{name}.json").read_text())
    return document["key"], document["value"]


class Feed:
    """Applies records to a model as a reader of the topics would (offsets per partition 0)."""

    def __init__(self) -> None:
        self.model = ReadModel()
        self.offsets: dict[str, int] = {}

    def put(self, topic: str, key: str, value: dict[str, Any] | None) -> None:
        offset = self.offsets.get(topic, 0)
        self.offsets[topic] = offset + 1
        self.model.apply(topic, key, value, 0, offset)


def level(location: str, on_hand: str, committed: str = "2026-12-07T09:30:00Z") -> dict[str, Any]:
    _, value = example("inventory_level.v2")
    kind = location.partition(":")[0]
    return value | {"gtin": GTIN, "location_id": location, "location_type": kind,
                    "on_hand": on_hand, "source_committed_at": committed}  # fmt: skip


def figure(scope_id: str, available: str, committed: str, channel: str | None = None
           ) -> dict[str, Any]:  # fmt: skip
    _, value = example("availability.v1")
    value = copy.deepcopy(value)
    scope = "group" if scope_id.startswith("group:") else "location"
    return value | {"gtin": GTIN, "scope": scope, "scope_id": scope_id, "available": available,
                    "channel": channel, "source_committed_at": committed,
                    "source_position": f"pos-{committed}"}  # fmt: skip


@pytest.fixture
def stocked() -> Feed:
    feed = Feed()
    feed.put(INVENTORY, f"{GTIN}@store:PAR01", level("store:PAR01", "4"))
    feed.put(INVENTORY, f"{GTIN}@warehouse:W001", level("warehouse:W001", "3.000"))
    feed.put(
        AVAILABILITY,
        f"{GTIN}@group:web-fulfilment",
        figure("group:web-fulfilment", "4.000", "2026-12-07T09:30:15Z", "web"),
    )
    feed.put(
        AVAILABILITY,
        f"{GTIN}@group:stores",
        figure("group:stores", "2", "2026-12-07T09:30:10Z", "store"),
    )
    feed.put(
        AVAILABILITY, f"{GTIN}@store:PAR01", figure("store:PAR01", "4", "2026-12-07T09:30:11Z")
    )
    feed.put(
        AVAILABILITY, f"{GTIN}@store:LYO01", figure("store:LYO01", "0", "2026-12-07T09:30:12Z")
    )
    return feed


def test_availability_per_group_and_location_with_its_explanation_and_freshness(stocked):
    answer = stocked.model.availability(GTIN)
    assert [g["scope_id"] for g in answer["groups"]] == ["group:stores", "group:web-fulfilment"]
    assert [f["scope_id"] for f in answer["locations"]] == ["store:LYO01", "store:PAR01"]
    assert answer["groups"][1]["explanation"][0]["location_id"] == "store:PAR01"
    # As fresh as the newest figure shown.
    assert answer["freshness"]["source_committed_at"] == "2026-12-07T09:30:15Z"
    assert answer["freshness"]["source_position"] == "pos-2026-12-07T09:30:15Z"


def test_availability_of_one_channel_shows_its_groups_and_their_locations(stocked):
    answer = stocked.model.availability(GTIN, channel="web")
    assert [g["scope_id"] for g in answer["groups"]] == ["group:web-fulfilment"]
    # The web group's explanation names store:PAR01 and warehouse:W001; only PAR01 has a figure.
    assert [f["scope_id"] for f in answer["locations"]] == ["store:PAR01"]
    assert answer["freshness"]["source_committed_at"] == "2026-12-07T09:30:15Z"


def test_inventory_levels_and_one_location(stocked):
    answer = stocked.model.inventory(GTIN)
    assert [lv["location_id"] for lv in answer["levels"]] == ["store:PAR01", "warehouse:W001"]
    one = stocked.model.inventory(GTIN, location="warehouse:W001")
    assert [lv["on_hand"] for lv in one["levels"]] == ["3.000"]


def test_a_tombstone_removes_a_level_and_an_article_with_nothing_left_is_unknown(stocked):
    for key in list(stocked.model.values[INVENTORY]) + list(stocked.model.values[AVAILABILITY]):
        stocked.put(INVENTORY if key in stocked.model.values[INVENTORY] else AVAILABILITY, key,
                    None)  # fmt: skip
    with pytest.raises(QueryError) as caught:
        stocked.model.availability(GTIN)
    assert (caught.value.status, caught.value.code) == (404, "unknown_article")


@pytest.mark.parametrize(
    ("ask", "status", "code"),
    [
        (lambda m: m.availability("37600"), 400, "bad_gtin"),
        (lambda m: m.availability("3760000000024"), 404, "unknown_article"),
        (lambda m: m.inventory(GTIN, location="PAR01"), 400, "bad_location"),
        (lambda m: m.customer("nobody"), 400, "bad_customer_ref"),
        (lambda m: m.customer("g-0000000000000000"), 404, "unknown_customer"),
        (lambda m: m.customer("shop:999"), 404, "unknown_customer"),
        (lambda m: m.order_lines("shop:999"), 404, "unknown_customer"),
        (lambda m: m.alerts(gtin="x"), 400, "bad_gtin"),
    ],
)
def test_a_bad_question_is_a_clear_error(stocked, ask, status, code):
    with pytest.raises(QueryError) as caught:
        ask(stocked.model)
    assert (caught.value.status, caught.value.code) == (status, code)
    assert caught.value.detail


@pytest.fixture
def customers() -> Feed:
    feed = Feed()
    _, golden = example("golden_customer.v1")
    gid = golden["golden_id"]
    feed.put(GOLDEN, gid, golden)
    for ref in golden["members"]:
        feed.put(LINKS, ref, {"schema_version": 1, "ref": ref, "golden_id": gid,
                              "emitted_at": "2026-12-07T09:31:00Z"})  # fmt: skip
    _, line = example("order_line.v1")
    for n, (ref, at) in enumerate([(golden["members"][0], "2026-12-01T10:00:00Z"),
                                   (golden["members"][-1], "2026-12-05T10:00:00Z"),
                                   ("shop:424242", "2026-12-06T10:00:00Z")]):  # fmt: skip
        feed.put(ORDER_LINES, f"web:{n}:1", line | {"order_id": str(n), "line_no": 1,
                                                   "customer_ref": ref, "ordered_at": at})  # fmt: skip
    return feed


def test_a_golden_customer_by_its_id_or_by_any_member_ref(customers):
    _, golden = example("golden_customer.v1")
    for ref in (golden["golden_id"], *golden["members"]):
        assert customers.model.customer(ref)["customer"]["golden_id"] == golden["golden_id"]


def test_order_lines_of_a_customer_across_its_members_newest_first(customers):
    _, golden = example("golden_customer.v1")
    answer = customers.model.order_lines(golden["members"][0])
    assert [line["order_id"] for line in answer["lines"]] == ["1", "0"]
    assert answer["golden_id"] == golden["golden_id"]
    # A line whose customer changes leaves the old customer's list.
    customers.put(ORDER_LINES, "web:1:1", None)
    assert [
        line["order_id"] for line in customers.model.order_lines(golden["golden_id"])["lines"]
    ] == ["0"]


def test_alerts_firing_by_article_and_location():
    feed = Feed()
    _, alert = example("stock_alert.v1")
    key = f"{alert['rule']}:{alert['gtin']}@{alert['scope_id']}"
    feed.put(ALERTS, key, alert | {"status": "firing"})
    assert len(feed.model.alerts()["alerts"]) == 1
    assert len(feed.model.alerts(gtin=alert["gtin"])["alerts"]) == 1
    assert feed.model.alerts(gtin="3760000000024")["alerts"] == []
    assert len(feed.model.alerts(location=alert["scope_id"])["alerts"]) == 1
    feed.put(ALERTS, key, alert | {"status": "resolved"})
    assert feed.model.alerts()["alerts"] == []
    assert len(feed.model.alerts(status=None)["alerts"]) == 1


def test_changes_name_their_subjects_before_and_after(customers):
    _, golden = example("golden_customer.v1")
    change = customers.model.apply(GOLDEN, golden["golden_id"], None, 0, 99)
    # A deletion still names the members it had.
    assert {f"customer:{ref}" for ref in golden["members"]} <= change.subjects
    inv = customers.model.apply(INVENTORY, f"{GTIN}@store:PAR01", level("store:PAR01", "1"), 0, 7)
    assert inv.subjects == {f"article:{GTIN}", "location:store:PAR01"}
    alert = customers.model.apply(ALERTS, f"out-of-stock:{GTIN}@group:web", None, 1, 3)
    assert alert.subjects == {f"article:{GTIN}", "location:group:web"}


def test_a_position_reads_back_from_its_text_and_bad_text_is_refused():
    position = Position({(INVENTORY, 1): 734, (GOLDEN, 0): 88})
    assert Position.parse(str(position)) == position
    assert Position.parse("") == Position()
    for bad in ("x", "9.0.1", "0.1", "0.-1.4"):
        with pytest.raises(QueryError) as caught:
            Position.parse(bad)
        assert caught.value.code == "bad_position"


def test_the_change_log_resumes_after_a_position_and_says_when_it_no_longer_can():
    log = ChangeLog(size=3)
    model = ReadModel()
    model.log = log
    for offset in range(5):
        model.apply(INVENTORY, f"{GTIN}@store:PAR01", level("store:PAR01", str(offset)), 0, offset)
    # Offsets 2, 3, 4 kept: from after offset 1 (position 2) on, everything is there.
    cursor = log.cursor(Position({(INVENTORY, 0): 2}))
    assert cursor is not None
    assert [change.offset for change in cursor.read(log)] == [2, 3, 4]
    assert str(cursor.position) == "0.0.5"
    later = log.cursor(Position({(INVENTORY, 0): 4}))
    assert later is not None and [c.offset for c in later.read(log)] == [4]
    assert log.cursor(Position({(INVENTORY, 0): 1})) is None  # offset 1 is gone
    assert log.cursor(Position()) is None
    # From now on: nothing yet, then what comes next.
    live = log.live()
    assert list(live.read(log)) == []
    model.apply(INVENTORY, f"{GTIN}@store:PAR01", None, 0, 5)
    assert [c.offset for c in live.read(log)] == [5]
    assert str(live.position) == "0.0.6"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 3), st.booleans()), max_size=40),
       st.integers(0, 40), st.integers(1, 50))  # fmt: skip
def test_resuming_from_any_position_gives_exactly_the_changes_after_it(ops, cut, size):
    model = ReadModel()
    model.log = ChangeLog(size)
    offsets = [0, 0, 0]
    applied = []
    for partition, store, gone in ops:
        key = f"{GTIN}@store:S{store}"
        value = None if gone else level(f"store:S{store}", "1")
        model.apply(INVENTORY, key, value, partition, offsets[partition])
        applied.append((partition, offsets[partition]))
        offsets[partition] += 1
    position = Position()
    for partition, offset in applied[:cut]:
        position = position.after(INVENTORY, partition, offset)
    cursor = model.log.cursor(position)
    if len(applied) - min(cut, len(applied)) > size:  # some of what comes after is gone
        assert cursor is None
        return
    assert cursor is not None
    assert [(c.partition, c.offset) for c in cursor.read(model.log)] == applied[cut:]
    assert cursor.position == Position({(INVENTORY, p): n for p, n in enumerate(offsets) if n})
