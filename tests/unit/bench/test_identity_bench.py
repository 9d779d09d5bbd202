"""The identity stage's benchmark: its synthetic customers and what it reports of them."""

from __future__ import annotations

from hub.bench.identity import PLACEHOLDER, markdown, measure, synthetic
from hub.core.transforms import e164, email
from hub.customers import load_rules


def test_the_synthetic_customers_are_the_same_for_a_seed_and_spell_people_several_ways():
    first, again = synthetic(2000, 7), synthetic(2000, 7)
    assert first.records == again.records and len(first.records) == 2000
    people = set(first.person.values())
    assert 2000 / 2.2 < len(people) < 2000 / 1.3  # one to three records per person
    systems = {ref.partition(":")[0] for ref, _ in first.records}
    assert systems == {"shop", "pos", "erp"}
    assert any(record["email"] == PLACEHOLDER for _, record in synthetic(20000, 7).records)
    # Valid as the sources' mappings check them: inserted through the stack, none is refused.
    for _, record in first.records:
        if record["phone_e164"]:
            assert e164("FR")(record["phone_e164"]) == record["phone_e164"]
        if record["email"]:
            assert email(record["email"]) == record["email"]


def test_the_measure_reports_rates_memory_and_how_well_the_customers_match_the_people():
    result = measure(load_rules(), 1500, 300, 3)
    assert result["first_load_per_s"] > 0 and result["changes_per_s"] > 0
    quality = result["quality"]
    assert quality["precision"] >= 0.98 and quality["recall"] >= 0.8
    assert quality["customers"] >= quality["people"] * 0.95
    assert "pairwise precision / recall" in markdown(result)
