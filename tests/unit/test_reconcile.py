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
