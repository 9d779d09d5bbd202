"""``hub tail`` has a line for every unified topic's records (the examples of the registry)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from hub.tail import _line
from hub.topics import SCHEMAS_DIR, registry

UNIFIED = [spec for spec in registry().topics.values() if spec.kind == "unified"]


@pytest.mark.parametrize("spec", UNIFIED, ids=lambda s: s.id)
def test_every_unified_record_and_its_tombstone_has_a_line(spec):
    example = json.loads((SCHEMAS_DIR / (spec.example or "")).read_text())
    line = _line(spec, example["key"], example["value"], datetime.now(UTC))
    assert example["key"] in line and "ms after commit" in line
    assert "deleted" in _line(spec, example["key"], None, datetime.now(UTC))


def test_an_availability_line_says_where_it_comes_from():
    spec = registry()["unified.availability"]
    example = json.loads((SCHEMAS_DIR / (spec.example or "")).read_text())
    line = _line(spec, example["key"], example["value"], datetime.now(UTC))
    assert "2 at store:PAR01" in line and "at warehouse:W001" in line


def test_a_golden_customer_line_names_the_person_and_their_records():
    spec = registry()["unified.customer"]
    example = json.loads((SCHEMAS_DIR / (spec.example or "")).read_text())
    line = _line(spec, example["key"], example["value"], datetime.now(UTC))
    assert "Nathalie Richard" in line and "3 records (erp:1034, pos:LC00000187, shop:412)" in line
