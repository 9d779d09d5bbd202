"""Available-to-sell: per location and per group, explained, recomputed from the latest levels
(never from deltas), the same whatever the order the levels arrive in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.core.availability import TOPIC, AvailabilityStage
from hub.core.engine import MemoryStore
from hub.core.network import parse_network
from hub.core.records import Document, Tombstone, Upsert
from hub.errors import InvalidEvent
from hub.models import Availability, InventoryLevel

GTIN = "3760000000017"
NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
NETWORK = parse_network({
    "version": 4,
    "locations": {
        "warehouse:W001": {"type": "warehouse"},
        "web:1": {"type": "web"},
        "store:PAR01": {"type": "store", "tags": ["ship-from-store"]},
        "store:LYO01": {"type": "store"},
    },
    "groups": {
        "web": {"channel": "web", "types": ["warehouse", "web"], "tags": ["ship-from-store"]},
        "collect:{code}": {"channel": "collect", "each": True, "types": ["store"]},
    },
    "safety": [
        {"name": "walk-in", "channels": ["web"], "types": ["store"], "units": 2},
        {"name": "display", "locations": ["store:LYO01"], "units": 1},
    ],
})  # fmt: skip
SYSTEMS = {"warehouse": "erp", "web": "shop", "store": "pos"}


def level(
    location: str, on_hand: str, at: int = 1, gtin: str = GTIN, **more: Any
) -> dict[str, Any]:
    """The JSON of a unified.inventory record of ``location``, changed at position ``at``."""
    kind = location.split(":")[0]
    record = InventoryLevel(
        gtin=gtin, source_article_id=gtin, location_id=location, location_type=kind,  # type: ignore[arg-type]
        on_hand=Decimal(on_hand), unit="PCE", source_system=SYSTEMS[kind],
        source_table="t.t", source_position=position(at), source_op="u",
        source_committed_at=NOW + timedelta(seconds=at), emitted_at=NOW, **more,
    )  # fmt: skip
    return record.model_dump(mode="json")


def position(at: int) -> str:
    return f"pg:{at:016x}:{at:016x}"


def figures(outputs: list[Any]) -> dict[str, Availability | None]:
    return {
        o.key: (Availability.model_validate(o.content) if isinstance(o, Document) else None)
        for o in outputs if o.topic_id == "unified.availability"
    }  # fmt: skip


class Book:
    """A stage on a memory store, with what it published last per key."""

    def __init__(self) -> None:
        self.store = MemoryStore()
        self.stage = AvailabilityStage(NETWORK, self.store)
        self.latest: dict[str, Availability | None] = {}
        self.alerts: list[Any] = []

    def put(self, value: dict[str, Any], key: str | None = None) -> dict[str, Availability | None]:
        key = key or f"{value['gtin']}@{value['location_id']}"
        outcome = self.stage.apply(key, value, value["source_position"], NOW)
        self.alerts += [o for o in outcome.outputs if o.topic_id == "unified.alerts"]
        found = figures(outcome.outputs)
        self.latest |= found
        return found

    def delete(self, location: str, at: int, gtin: str = GTIN) -> dict[str, Availability | None]:
        outcome = self.stage.apply(f"{gtin}@{location}", None, position(at), NOW)
        found = figures(outcome.outputs)
        self.latest |= found
        return found


def test_a_warehouse_level_makes_its_figure_and_its_groups():
    book = Book()
    found = book.put(
        level("warehouse:W001", "10.000", reserved=Decimal(3), safety_stock=Decimal(2))
    )
    assert set(found) == {f"{GTIN}@warehouse:W001", f"{GTIN}@group:web"}
    own = found[f"{GTIN}@warehouse:W001"]
    assert own is not None
    assert (own.available, own.shortfall, own.scope, own.channel) == (5, 0, "location", None)
    assert own.rule.network_version == 4 and own.rule.network_digest == NETWORK.digest
    [source] = own.explanation
    assert (source.on_hand, source.reserved, source.safety_stock, source.available) == (10, 3, 2, 5)
    assert source.source_system == "erp" and source.source_position == position(1)
    web = found[f"{GTIN}@group:web"]
    assert web is not None
    assert (web.available, web.locations, web.contributing, web.channel) == (5, 1, 1, "web")
    assert web.rule.group == "web"


def test_a_group_adds_what_each_location_gives_after_the_channels_safety():
    book = Book()
    book.put(level("warehouse:W001", "2"))
    book.put(level("web:1", "0", reserved=Decimal(0)))
    found = book.put(level("store:PAR01", "3"))
    web = found[f"{GTIN}@group:web"]
    assert web is not None
    # PAR01 has 3 of its own, keeps 2 back from the web: gives 1; the web warehouse gives 0.
    assert (web.available, web.locations, web.contributing) == (3, 3, 2)
    by_location = {s.location_id: s for s in web.explanation}
    assert [s.location_id for s in web.explanation] == sorted(by_location)
    assert (by_location["store:PAR01"].available, by_location["store:PAR01"].kept_back,
            by_location["store:PAR01"].contributes) == (3, 2, 1)  # fmt: skip
    assert web.rule.safety_rules == ["walk-in"]
    own = found[f"{GTIN}@store:PAR01"]
    assert own is not None and own.available == 3  # every channel of its own: no walk-in rule
    collect = found[f"{GTIN}@group:collect:PAR01"]
    assert collect is not None and collect.available == 3


def test_a_till_sale_lowers_the_store_and_the_web_group():
    book = Book()
    book.put(level("warehouse:W001", "4"))
    book.put(level("store:PAR01", "5", at=2))
    found = book.put(level("store:PAR01", "4", at=3))
    assert found[f"{GTIN}@store:PAR01"].available == 4  # type: ignore[union-attr]
    assert found[f"{GTIN}@group:web"].available == 4 + 2  # type: ignore[union-attr]
    assert found[f"{GTIN}@group:web"].source_position == position(3)  # type: ignore[union-attr]


def test_location_safety_counts_for_every_channel():
    book = Book()
    found = book.put(level("store:LYO01", "3"))
    own = found[f"{GTIN}@store:LYO01"]
    assert own is not None
    assert (own.available, own.kept_back, own.rule.safety_rules) == (2, 1, ["display"])
    assert found[f"{GTIN}@group:collect:LYO01"].available == 2  # type: ignore[union-attr]


def test_below_zero_is_published_as_zero_with_the_shortfall_beside_it():
    book = Book()
    found = book.put(level("store:PAR01", "-2"))
    own = found[f"{GTIN}@store:PAR01"]
    assert own is not None and (own.available, own.shortfall, own.on_hand) == (0, 2, -2)
    found = book.put(level("warehouse:W001", "3", at=2, reserved=Decimal(5)))
    web = found[f"{GTIN}@group:web"]
    assert web is not None and (web.available, web.shortfall) == (0, 2 + 2)


def test_a_deleted_level_leaves_the_totals_and_the_last_one_leaves_tombstones():
    book = Book()
    book.put(level("warehouse:W001", "4"))
    book.put(level("store:PAR01", "5", at=2))
    found = book.delete("store:PAR01", at=3)
    assert found[f"{GTIN}@store:PAR01"] is None
    assert found[f"{GTIN}@group:collect:PAR01"] is None
    web = found[f"{GTIN}@group:web"]
    assert web is not None and (web.available, web.locations) == (4, 1)
    found = book.delete("warehouse:W001", at=4)
    assert found == {f"{GTIN}@warehouse:W001": None, f"{GTIN}@group:web": None}


def test_an_older_change_or_the_same_again_publishes_nothing():
    book = Book()
    book.put(level("store:PAR01", "5", at=5))
    assert book.stage.apply(f"{GTIN}@store:PAR01", level("store:PAR01", "9", at=4),
                            position(4), NOW).skipped == "duplicate"  # fmt: skip
    again = book.stage.apply(
        f"{GTIN}@store:PAR01", level("store:PAR01", "5", at=5), position(5), NOW
    )
    assert again.outputs == [] and again.skipped == "duplicate"
    book.delete("store:PAR01", at=6)
    late = book.stage.apply(
        f"{GTIN}@store:PAR01", level("store:PAR01", "7", at=5), position(5), NOW
    )
    assert late.outputs == []  # the delete was newer


def test_a_restarted_stage_on_the_same_state_publishes_nothing_new():
    book = Book()
    value = level("warehouse:W001", "4")
    book.put(value)
    restarted = AvailabilityStage(NETWORK, book.store)
    outcome = restarted.apply(f"{GTIN}@warehouse:W001", value, position(1), NOW)
    assert outcome.outputs == [] and outcome.skipped == "duplicate"
    assert restarted.recompute(NOW).outputs == []  # every figure is what was published


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        (f"{GTIN}@store:NICE1", level("store:PAR01", "1") | {"location_id": "store:NICE1"},
         "unknown_location"),
        (f"{GTIN}@store:PAR01", level("store:PAR01", "1") | {"on_hand": "lots"}, "invalid_record"),
        (f"{GTIN}@store:LYO01", level("store:PAR01", "1"), "invalid_record"),
        ("no-at-sign", level("store:PAR01", "1"), "invalid_record"),
    ],
)  # fmt: skip
def test_bad_levels_are_refused_with_a_reason_and_nothing_is_kept(key, value, reason):
    book = Book()
    with pytest.raises(InvalidEvent) as caught:
        book.stage.apply(key, value, value["source_position"], NOW)
    assert caught.value.reason == reason
    assert book.store == {}


def test_an_article_in_two_units_is_refused():
    book = Book()
    book.put(level("warehouse:W001", "4"))
    kilos = level("store:PAR01", "1.5") | {"unit": "KG"}
    with pytest.raises(InvalidEvent) as caught:
        book.put(kilos)
    assert caught.value.reason == "unit_mismatch" and "KG" in caught.value.detail
    assert book.latest[f"{GTIN}@group:web"].available == 4  # type: ignore[union-attr]


# -- idempotence: the same levels in any order, any number of times, give the same figures

LOCATIONS = sorted(NETWORK.spec.locations)
CHANGE = st.tuples(st.sampled_from(LOCATIONS), st.integers(-3, 12), st.booleans())


def history(changes: list[tuple[str, int, bool]]) -> list[tuple[str, dict[str, Any] | None, str]]:
    """Each change at its own position, in log order: (key, value or None, position)."""
    made = []
    for at, (location, on_hand, deleted) in enumerate(changes, start=1):
        key = f"{GTIN}@{location}"
        made.append((key, None if deleted else level(location, str(on_hand), at), position(at)))
    return made


def content(figure: Availability | None) -> dict[str, Any] | None:
    if figure is None:
        return None
    dumped = figure.model_dump(mode="json")
    for name in ("source_system", "source_position", "source_committed_at", "emitted_at"):
        dumped.pop(name)
    return dumped


def final(records: list[tuple[str, dict[str, Any] | None, str]], repeat: int = 1) -> dict[str, Any]:
    stage, latest = AvailabilityStage(NETWORK, MemoryStore()), {}
    for _ in range(repeat):
        for key, value, at in records:
            latest |= figures(stage.apply(key, value, at, NOW).outputs)
    return {key: content(figure) for key, figure in latest.items() if figure is not None}


@settings(max_examples=150, deadline=None)
@given(changes=st.lists(CHANGE, min_size=1, max_size=12), seed=st.randoms(use_true_random=False))
def test_any_order_and_any_replay_give_the_same_figures(changes, seed):
    records = history(changes)
    expected = final(records)
    shuffled = list(records)
    seed.shuffle(shuffled)
    # Out of order, the stage publishes what it has; once it has seen every change, what it
    # published last for each key is the figure of the latest level of each location.
    assert final(shuffled + records) == expected
    assert final(records, repeat=3) == expected
    # The figures are those of a batch recomputation from the latest level per location.
    latest: dict[str, tuple[dict[str, Any] | None, str]] = {}
    for key, value, at in records:
        latest[key] = (value, at)
    assert final([(k, v, at) for k, (v, at) in latest.items() if v is not None]) == expected


def batched(
    records: list[tuple[str, dict[str, Any] | None, str]], cuts: list[int]
) -> dict[str, Any]:
    """The final figures of ``records`` applied in batches split at ``cuts``."""
    from hub.core.availability import Change

    stage, latest = AvailabilityStage(NETWORK, MemoryStore()), {}
    bounds = sorted({0, len(records), *(cut % (len(records) + 1) for cut in cuts)})
    for start, end in pairwise(bounds):
        changes = [Change(key, value, at) for key, value, at in records[start:end]]
        applied = stage.apply_batch(changes, NOW)
        assert applied.refused == []
        made = figures(applied.outputs)
        assert len(made) == len([o for o in applied.outputs if o.topic_id == TOPIC])  # once each
        latest |= made
    return {key: content(figure) for key, figure in latest.items() if figure is not None}


@settings(max_examples=150, deadline=None)
@given(changes=st.lists(CHANGE, min_size=1, max_size=14),
       cuts=st.lists(st.integers(0, 14), max_size=4))  # fmt: skip
def test_batches_of_any_size_give_the_figures_of_one_change_at_a_time(changes, cuts):
    records = history(changes)
    assert batched(records, cuts) == final(records)


def test_a_batch_makes_each_figure_once_with_the_last_change_behind_it_as_its_cause():
    from hub.core.availability import Change

    stage = AvailabilityStage(NETWORK, MemoryStore())
    changes = [level("warehouse:W001", "4", at=1), level("store:PAR01", "5", at=2),
               level("warehouse:W001", "3", at=3), level("store:LYO01", "1", at=4)]  # fmt: skip
    applied = stage.apply_batch(
        [Change(f"{GTIN}@{c['location_id']}", c, c["source_position"]) for c in changes], NOW
    )
    found = {o.key: o for o in applied.outputs if o.topic_id == TOPIC}
    assert len(found) == len([o for o in applied.outputs if o.topic_id == TOPIC])
    assert found[f"{GTIN}@warehouse:W001"].content["available"] == "3"
    assert found[f"{GTIN}@warehouse:W001"].content["source_position"] == position(3)
    assert found[f"{GTIN}@store:PAR01"].content["source_position"] == position(2)
    web = found[f"{GTIN}@group:web"].content  # W001 and PAR01; LYO01 is not in it
    assert (web["available"], web["source_position"]) == ("6", position(3))  # 3 + (5 - 2 walk-in)


def test_what_a_batch_refuses_is_said_by_index_and_the_rest_goes_on():
    from hub.core.availability import Change

    stage = AvailabilityStage(NETWORK, MemoryStore())
    good = level("warehouse:W001", "4")
    kilos = level("store:PAR01", "1.5", at=2) | {"unit": "KG"}
    applied = stage.apply_batch([
        Change(f"{GTIN}@store:NICE1", good | {"location_id": "store:NICE1"}, position(1)),
        Change(f"{GTIN}@warehouse:W001", good, position(1)),
        Change(f"{GTIN}@store:PAR01", kilos, position(2)),
        Change("3760000000024@store:LYO01", good, position(3)),  # a record of another key
    ], NOW)  # fmt: skip
    assert [(index, error.reason) for index, error in applied.refused] == [
        (0, "unknown_location"), (2, "unit_mismatch"), (3, "invalid_record"),
    ]  # fmt: skip
    assert set(figures(applied.outputs)) == {f"{GTIN}@warehouse:W001", f"{GTIN}@group:web"}
    assert stage.store.get("stock:3760000000024") is None  # nothing kept of what was refused


def test_tombstones_are_figures_that_went_away():
    book = Book()
    book.put(level("store:PAR01", "1"))
    found = book.delete("store:PAR01", at=2)
    assert all(figure is None for figure in found.values())
    outcome = book.stage.apply(f"{GTIN}@store:PAR01", None, position(2), NOW)
    assert outcome.outputs == []


def test_outputs_are_keyed_as_declared():
    book = Book()
    outcome = book.stage.apply(f"{GTIN}@store:PAR01", level("store:PAR01", "1"), position(1), NOW)
    for output in outcome.outputs:
        if isinstance(output, Document):
            assert output.key == Availability.model_validate(output.content).key
        assert not isinstance(output, Tombstone)


def test_the_feed_carries_levels_and_deletes_to_the_stage():
    from hub.core.availability import feed_change, feed_record

    record = InventoryLevel.model_validate(level("store:PAR01", "6", at=7))
    key, value = feed_record(Upsert.of("unified.inventory", record, record.key, position(7)))
    assert key == GTIN.encode()
    book = Book()
    found = figures(book.stage.apply_batch([feed_change(value)], NOW).outputs)
    assert found[f"{GTIN}@store:PAR01"].available == 6  # type: ignore[union-attr]
    key, value = feed_record(Tombstone("unified.inventory", f"{GTIN}@store:PAR01", position(8)))
    assert key == GTIN.encode()
    assert (
        figures(book.stage.apply_batch([feed_change(value)], NOW).outputs)[f"{GTIN}@store:PAR01"]
        is None
    )


@pytest.mark.parametrize(
    "value", [b"not json", b"{}", b'{"key": 1, "position": "", "level": null}', None]
)
def test_what_is_not_a_feed_record_is_refused(value):
    from hub.core.availability import feed_change

    with pytest.raises(InvalidEvent) as caught:
        feed_change(value)
    assert caught.value.reason == "invalid_record"


def test_a_new_network_file_recomputes_every_figure_and_drops_what_it_no_longer_declares():
    book = Book()
    book.put(level("warehouse:W001", "4"))
    book.put(level("store:PAR01", "5", at=2))
    book.put(level("store:LYO01", "3", at=3, gtin="3760000000024"))
    assert book.stage.recompute(NOW).outputs == []  # same file: nothing new
    document = NETWORK.spec.model_dump(mode="json", exclude_defaults=True)
    document["locations"]["store:PAR01"]["tags"] = []  # PAR01 no longer ships web orders
    document["groups"]["web"]["tags"] = []
    del document["groups"]["collect:{code}"]
    document["groups"]["stores"] = {"channel": "store", "types": ["store"]}
    document["version"] = 5
    changed = AvailabilityStage(parse_network(document), book.store)
    found = figures(changed.recompute(NOW).outputs)
    web = found[f"{GTIN}@group:web"]
    assert web is not None and (web.available, web.locations, web.rule.network_version) == (4, 1, 5)
    assert found[f"{GTIN}@group:collect:PAR01"] is None
    assert found["3760000000024@group:collect:LYO01"] is None
    assert found[f"{GTIN}@group:stores"].available == 5  # type: ignore[union-attr]
    assert found[f"{GTIN}@store:PAR01"].rule.network_version == 5  # type: ignore[union-attr]
    assert changed.recompute(NOW).outputs == []


@settings(max_examples=60, deadline=None)
@given(changes=st.lists(CHANGE, min_size=1, max_size=12))
def test_figures_made_as_json_are_valid_records_serialised_as_the_model_would(changes):
    stage = AvailabilityStage(NETWORK, MemoryStore())
    for key, value, at in history(changes):
        for output in stage.apply(key, value, at, NOW).outputs:
            if isinstance(output, Document):
                record = Availability.model_validate(output.content)  # valid, as made
                assert record.model_dump(mode="json") == output.content  # as pydantic writes it


def test_a_taken_over_state_publishes_where_the_topic_holds_something_else():
    from hub.core.availability import figure_mark

    book = Book()
    book.put(level("warehouse:W001", "4"))
    book.put(level("store:PAR01", "5", at=2))
    on_topic = {GTIN: {key: figure_mark(figure.model_dump(mode="json"))
                       for key, figure in book.latest.items() if figure is not None}}  # fmt: skip
    assert book.stage.recompute(NOW, on_topic).outputs == []  # the topic holds what it makes
    stale = book.latest[f"{GTIN}@group:web"]
    assert stale is not None
    on_topic[GTIN][f"{GTIN}@group:web"] = figure_mark(
        stale.model_dump(mode="json") | {"available": "1"}
    )
    found = figures(book.stage.recompute(NOW, on_topic).outputs)
    assert list(found) == [f"{GTIN}@group:web"]
    assert found[f"{GTIN}@group:web"].available == stale.available  # type: ignore[union-attr]


def test_a_state_behind_the_topic_never_publishes_an_older_figure():
    from hub.core.availability import figure_mark

    ahead = Book()  # the group that has seen everything, and published it
    changes = [level("warehouse:W001", "4"), level("store:PAR01", "5", at=2),
               level("store:PAR01", "3", at=3)]  # fmt: skip
    for change in changes:
        ahead.put(change)
    on_topic = {GTIN: {key: figure_mark(figure.model_dump(mode="json"))
                       for key, figure in ahead.latest.items() if figure is not None}}  # fmt: skip
    behind = AvailabilityStage(NETWORK, MemoryStore())  # another group, reading the feed from 0
    assert behind.recompute(NOW, on_topic).outputs == []  # it knows no article yet
    published = []
    for change in changes:
        key = f"{GTIN}@{change['location_id']}"
        published += behind.apply(key, change, change["source_position"], NOW).outputs
    # Half way it knew W001 and PAR01 at 5: older than the topic's figures; never published.
    assert published == []
