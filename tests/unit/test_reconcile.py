"""hub reconcile's availability: recomputed from the truth's levels, compared without provenance,
kept to the systems it could read."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

from hub.reconcile import TopicState, Truth, _availability, compare
from hub.topics import registry
from tests.unit.core.test_availability import level

NOW = datetime(2026, 12, 7, 11, 0, tzinfo=UTC)
GTIN = "3760000000017"


def truth_of(*levels: dict) -> Truth:
    names = {spec.id: spec.name for spec in registry().topics.values()}
    result = Truth({"unified.inventory": {}, "unified.availability": {}})
    for value in levels:
        result.expected["unified.inventory"][f"{value['gtin']}@{value['location_id']}"] = value
    _availability(result, names, NOW)
    return result


def test_availability_is_recomputed_from_the_truths_levels_with_the_network_file():
    found = truth_of(level("store:PAR01", "5"), level("warehouse:W001", "3"))
    figures = found.expected["unified.availability"]
    assert figures[f"{GTIN}@store:PAR01"]["available"] == "5"
    web = figures[f"{GTIN}@group:web-fulfilment"]
    assert web["available"] == "6" and web["locations"] == 2  # 5 - 2 walk-in + 3
    assert f"{GTIN}@group:click-and-collect:PAR01" in figures


def test_a_level_of_an_undeclared_location_is_reported_not_counted():
    found = truth_of(level("store:PAR01", "5") | {"location_id": "store:NICE1"})
    assert [row["reason"] for row in found.invalid] == ["unknown_location"]
    assert found.expected["unified.availability"] == {}


def test_figures_agree_whatever_the_positions_and_times_of_the_changes_behind_them():
    want = truth_of(level("store:PAR01", "5")).expected["unified.availability"]
    have = copy.deepcopy(want)
    for figure in have.values():
        figure["source_system"], figure["source_position"] = "hub", "network:2:abc"
        for entry in figure["explanation"]:
            entry["source_position"], entry["source_committed_at"] = "pg:1:2", NOW.isoformat()
    report = compare({"unified.availability": want}, {"unified.availability": have})
    assert report["unified.availability"].differences == 0
    have[f"{GTIN}@store:PAR01"]["available"] = "4"
    report = compare({"unified.availability": want}, {"unified.availability": have})
    assert list(report["unified.availability"].wrong) == [f"{GTIN}@store:PAR01"]


def test_a_figure_counts_as_checked_only_when_every_system_behind_it_was_read():
    figures = truth_of(level("store:PAR01", "5"), level("warehouse:W001", "3"))
    state = TopicState({"unified.availability": figures.expected["unified.availability"]}, {})
    kept = state.of_systems({"pos"})["unified.availability"]
    assert f"{GTIN}@store:PAR01" in kept and f"{GTIN}@group:web-fulfilment" not in kept
    assert len(state.of_systems({"pos", "erp"})["unified.availability"]) == len(
        figures.expected["unified.availability"]
    )


def test_figures_that_add_a_level_of_a_system_not_read_are_neither_expected_nor_found():
    from hub.reconcile import comparable

    read = truth_of(level("store:PAR01", "5")).expected  # what pos alone says
    on_topic = truth_of(level("store:PAR01", "5"), level("warehouse:W001", "3")).expected
    state = TopicState({"unified.availability": on_topic["unified.availability"]}, {})
    wanted, actual = comparable(
        {"unified.availability": read["unified.availability"]}, state, {"pos"}
    )
    report = compare(wanted, actual)["unified.availability"]
    assert report.differences == 0  # the web group's figure holds the ERP's level: left out
    assert f"{GTIN}@group:web-fulfilment" not in wanted["unified.availability"]
    assert f"{GTIN}@store:PAR01" in wanted["unified.availability"]


def test_repair_is_asked_only_for_keys_the_engine_writes():
    from hub.reconcile import differing_keys

    want = truth_of(level("store:PAR01", "5")).expected
    reports = compare(want, {"unified.inventory": {}, "unified.availability": {}})
    assert differing_keys(reports) == [f"{GTIN}@store:PAR01"]  # the level, not its figures


# -- golden customers


def customers_truth(records: dict[str, dict], erased: set[str] = frozenset(), decisions=None):
    from hub.core.identity import Decisions
    from hub.customers import load_rules
    from hub.reconcile import Identity, _golden

    names = {spec.id: spec.name for spec in registry().topics.values()}
    result = Truth({"unified.customer.records": dict(records), "unified.customer": {},
                    "unified.customer.links": {}})  # fmt: skip
    _golden(
        result, names, NOW, Identity(load_rules(), decisions or Decisions(), erased.__contains__)
    )
    return result


def customer(**fields) -> dict:
    return {"source_position": "truth", "created_at": "2026-01-01T00:00:00+00:00"} | fields


def test_golden_customers_are_recomputed_from_the_truths_records_without_the_erased_ones():
    records = {
        "shop:1": customer(email="ana@example.fr", given_name="Ana", family_name="Roux"),
        "erp:1": customer(email="ana@example.fr", given_name="Ana", family_name="ROUX"),
        "shop:2": customer(email="leo@example.fr", given_name="Léo", family_name="Petit"),
    }
    found = customers_truth(records, erased={"shop:2"})
    assert "shop:2" not in found.expected["unified.customer.records"]  # expected gone
    links = found.expected["unified.customer.links"]
    assert (
        set(links) == {"shop:1", "erp:1"}
        and links["shop:1"]["golden_id"] == links["erp:1"]["golden_id"]
    )
    [person] = found.expected["unified.customer"].values()
    assert person["members"] == ["erp:1", "shop:1"]
    # What the topics hold agrees whatever change made it, and is kept to the systems read.
    held = copy.deepcopy(found.expected)
    person = next(iter(held["unified.customer"].values()))
    person["source_position"], person["emitted_at"] = "pg:9", NOW.isoformat()
    person["source_system"] = "pos"  # the change that made it on the topic, not the truth
    assert all(t.differences == 0 for t in compare(found.expected, held).values())
    state = TopicState(held, {})
    assert state.of_systems({"shop"})["unified.customer"] == {}  # made of erp's record too
    assert len(state.of_systems({"shop", "erp"})["unified.customer"]) == 1
