"""Identity resolution: rules, comparators, clusters over evidence, negative evidence across a
cluster, merge storms, stable golden ids, and clusters independent of arrival order."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.core.identity import (
    Decisions,
    IdentityRulesError,
    Person,
    golden_id,
    match,
    parse_rules,
    resolve,
    survivors,
)

RULES_FILE = Path(__file__).parents[3] / "connectors/identity.yaml"
RULES = parse_rules(yaml.safe_load(RULES_FILE.read_text()))


def at(day: int) -> datetime:
    return datetime(2026, 1, day, tzinfo=UTC)


def person(ref: str, **fields: object) -> Person:
    return Person(ref, **fields)  # type: ignore[arg-type]


def test_the_same_person_in_three_systems_is_one_cluster():
    shop = person(
        "shop:12",
        email="marie.dupont@example.fr",
        given_name="Marie",
        family_name="Dupont",
        phone_e164="+33612345678",
        created_at=at(1),
    )
    till = person(
        "loyalty:C042",
        phone_e164="+33612345678",
        given_name="Marie",
        family_name="DUPONT",
        postcode="75011",
        created_at=at(3),
    )
    erp = person(
        "erp:4711", given_name="Marie", family_name="Dupont", postcode="75011", created_at=at(2)
    )
    result = resolve(RULES, [till, erp, shop])
    assert result.clusters == [("erp:4711", "loyalty:C042", "shop:12")]
    assert {link.rule for link in result.links} <= {
        "phone-and-family-name",
        "name-and-postcode",
        "email-and-given-name",
    }
    assert golden_id([shop, till, erp]) == golden_id([shop])  # the first created is the anchor


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("Bob", "Robert"),
        ("Jon", "John"),
        ("Bill", "William"),
        ("Stephane", "Stéphane"),
        ("Jean-Baptiste", "jean baptiste"),
    ],
)
def test_nicknames_accents_and_small_typos_are_one_given_name(one, other):
    a = person("shop:1", email="x@example.fr", given_name=one)
    b = person("pos:2", email="X@Example.fr ", given_name=other)
    found = match(RULES, a, b)
    assert found is not None and found.rule == "email-and-given-name"


def test_two_people_sharing_a_family_email_stay_two():
    a = person("shop:1", email="famille.martin@example.fr", given_name="Paul", family_name="Martin")
    b = person(
        "shop:2", email="famille.martin@example.fr", given_name="Claire", family_name="Martin"
    )
    result = resolve(RULES, [a, b])
    assert result.clusters == [("shop:1",), ("shop:2",)]
    [kept] = result.apart
    assert kept.rule == "shared-contact-other-given-name" and "email" in kept.detail


def household() -> tuple[Person, Person, Person]:
    """A household phone: Paul's account and Claire's share it, and a loyalty card with no given
    name matches both (phone and family name)."""
    paul = person("shop:1", phone_e164="+33600000001", given_name="Paul", family_name="Martin",
                  updated_at=at(4))  # fmt: skip
    card = person("loyalty:2", phone_e164="+33600000001", family_name="Martin", updated_at=at(2))
    claire = person("erp:3", phone_e164="+33600000001", given_name="Claire", family_name="Martine")
    return paul, card, claire


def test_no_weak_bridge_negative_evidence_holds_across_the_cluster():
    # Paul and Claire are kept apart, so the three are not one customer: the weaker of the two
    # links through the card is cut.
    paul, card, claire = household()
    for order in ([paul, card, claire], [claire, card, paul]):
        result = resolve(RULES, order)
        assert result.clusters == [("erp:3",), ("loyalty:2", "shop:1")]
        [(cut, why)] = result.cut
        assert (cut.a, cut.b, cut.rule) == ("erp:3", "loyalty:2", "phone-and-family-name")
        assert cut.score < 1.0  # Martin / Martine: weaker than the card's link to Paul
        assert (why.a, why.b, why.rule) == ("erp:3", "shop:1", "shared-contact-other-given-name")


def test_records_sharing_only_a_contact_point_are_not_merged():
    a = person("shop:1", email="home@example.fr", given_name="Paul", family_name="Martin")
    b = person(
        "loyalty:2",
        email="home@example.fr",
        given_name="Paul",
        family_name="Martin",
        phone_e164="+33600000001",
    )
    c = person(
        "erp:3",
        email="home@example.fr",
        given_name="Claire",
        family_name="Martin",
        phone_e164="+33600000001",
    )
    result = resolve(RULES, [c, b, a])
    assert result.clusters == [("erp:3",), ("loyalty:2", "shop:1")]
    assert {(found.a, found.b) for found in result.apart} == {
        ("erp:3", "shop:1"),
        ("erp:3", "loyalty:2"),
    }


def test_the_weakest_link_of_a_bridge_is_cut():
    # A~B (email + given name), B~C (name + postcode), A and C kept apart by hand.
    a = person("shop:1", email="p.m@example.fr", given_name="Paul", family_name="Martin")
    b = person(
        "loyalty:2",
        email="p.m@example.fr",
        given_name="Paul",
        family_name="Martin",
        postcode="69001",
    )
    c = person("erp:3", given_name="Pau", family_name="Martin", postcode="69001")
    together = resolve(RULES, [a, b, c])
    assert together.clusters == [("erp:3", "loyalty:2", "shop:1")]
    banned = resolve(RULES, [a, b, c], Decisions(bans=frozenset({("shop:1", "erp:3")})))
    assert banned.clusters == [("erp:3",), ("loyalty:2", "shop:1")]
    [(link, why)] = banned.cut
    assert (link.a, link.b, link.rule, why.rule) == (
        "erp:3",
        "loyalty:2",
        "name-and-postcode",
        "manual-ban",
    )


def test_a_manual_link_joins_what_no_rule_would():
    a, b = person("shop:1", given_name="Ann"), person("erp:9", given_name="Anne")
    assert resolve(RULES, [a, b]).clusters == [("erp:9",), ("shop:1",)]
    linked = resolve(RULES, [a, b], Decisions(links=frozenset({("shop:1", "erp:9")})))
    assert linked.clusters == [("erp:9", "shop:1")]
    assert linked.links[0].rule == "manual-link"


def test_a_record_with_nothing_to_match_on_stays_alone():
    empty = person("pos:7")
    other = person("pos:8", email="a@example.fr", given_name="A")
    assert resolve(RULES, [empty, other]).clusters == [("pos:7",), ("pos:8",)]


def test_a_merge_storm_links_nothing_and_is_reported():
    walk_ins = [
        person(f"loyalty:{n}", email="noemail@example.com", given_name="Client")
        for n in range(RULES.spec.max_block + 1)
    ]
    result = resolve(RULES, walk_ins)
    assert len(result.clusters) == len(walk_ins)
    assert result.storms == {"email-and-given-name|noemail@example.com": len(walk_ins)}


def test_a_golden_id_keeps_its_anchor_when_a_newer_record_joins():
    first = person("erp:1", created_at=at(1))
    later = person("aaa:0", created_at=at(9))  # a smaller ref, created later
    undated = person("000:0")
    assert golden_id([first, later, undated]) == golden_id([first])
    assert golden_id([later]) != golden_id([first])
    assert golden_id([first]).startswith("g-") and len(golden_id([first])) == 18


@pytest.mark.parametrize(
    ("document", "says"),
    [
        (
            {
                "version": 1,
                "match": [{"name": "x", "when": [{"field": "email", "compare": "soundex"}]}],
            },
            "compare",
        ),
        (
            {
                "version": 1,
                "match": [{"name": "x", "when": [{"field": "mail", "compare": "exact"}]}],
            },
            "field",
        ),
        (
            {
                "version": 1,
                "match": [
                    {"name": "x", "when": [{"field": "given_name", "compare": "name", "min": 0.9}]}
                ],
            },
            "needs an exact comparison",
        ),
        (
            {
                "version": 1,
                "match": [{"name": "x", "when": [{"field": "email", "compare": "exact"}]}],
                "colour": "blue",
            },
            "colour",
        ),
        (
            {
                "version": 1,
                "match": [
                    {
                        "name": "x",
                        "when": [
                            {"field": "email", "compare": "exact"},
                            {"field": "given_name", "compare": "name"},
                        ],
                    }
                ],
            },
            "needs 'min'",
        ),
        (
            {
                "version": 1,
                "match": [{"name": "x", "when": [{"field": "email", "compare": "exact"}]}],
                "apart": [
                    {
                        "name": "x",
                        "shared": ["email"],
                        "differ": {"field": "given_name", "compare": "name", "below": 0.7},
                    }
                ],
            },
            "used twice",
        ),
    ],
)
def test_a_rules_file_with_an_unknown_field_or_comparator_is_refused(document, says):
    with pytest.raises(IdentityRulesError) as caught:
        parse_rules(document)
    assert says in str(caught.value)


# -- sequence neutrality

GIVEN = ["Paul", "Paule", "Claire", "Bob", "Robert", None]
FAMILY = ["Martin", "Martine", "Dupont", None]
EMAIL = ["home@example.fr", "paul@example.fr", None]
PHONE = ["+33600000001", "+33600000002", None]
POSTCODE = ["69001", "75011", None]
PEOPLE = st.lists(
    st.tuples(
        st.sampled_from(GIVEN),
        st.sampled_from(FAMILY),
        st.sampled_from(EMAIL),
        st.sampled_from(PHONE),
        st.sampled_from(POSTCODE),
        st.integers(1, 28),
    ),
    min_size=1,
    max_size=9,
)


@settings(max_examples=200, deadline=None)
@given(rows=PEOPLE, seed=st.randoms(use_true_random=False))
def test_any_arrival_order_gives_the_same_clusters_and_ids(rows, seed):
    people = [
        person(
            f"s:{n}",
            given_name=g,
            family_name=f,
            email=e,
            phone_e164=p,
            postcode=c,
            created_at=at(day),
        )
        for n, (g, f, e, p, c, day) in enumerate(rows)
    ]
    shuffled = list(people)
    seed.shuffle(shuffled)
    expected, got = resolve(RULES, people), resolve(RULES, shuffled)
    assert got.clusters == expected.clusters and got.links == expected.links
    by_ref = {p.ref: p for p in people}
    ids = [golden_id([by_ref[r] for r in cluster]) for cluster in expected.clusters]
    assert ids == [golden_id([by_ref[r] for r in reversed(cluster)]) for cluster in got.clusters]
    # No cluster holds two records kept apart.
    for found in expected.apart:
        assert expected.cluster_of(found.a) != expected.cluster_of(found.b)


# -- the golden record


def test_each_golden_field_survives_by_its_policy_and_says_where_from():
    old_erp = person(
        "erp:4711",
        email="m.dupont@old.fr",
        given_name="M",
        family_name="Dupont",
        postcode="75011",
        updated_at=at(1),
        marketing_consent=True,
    )
    shop = person(
        "shop:12",
        email="marie.dupont@example.fr",
        given_name="Marie",
        family_name="Dupont",
        phone_e164="+33612345678",
        postcode="75011",
        updated_at=at(5),
        marketing_consent=None,
    )
    till = person(
        "pos:C042",
        phone_e164="+33699999999",
        given_name="Marie",
        family_name="DUPONT",
        updated_at=at(3),
        marketing_consent=False,
    )
    golden = survivors(RULES, [till, old_erp, shop])
    assert (golden["email"].value, golden["email"].ref) == ("marie.dupont@example.fr", "shop:12")
    assert golden["phone_e164"].ref == "shop:12"  # the most recent that has one
    assert (golden["given_name"].value, golden["given_name"].policy) == ("Marie", "most_complete")
    assert golden["given_name"].ref == "shop:12"  # the member with the most identity fields
    # Consent: the latest explicit choice (the shop never recorded one).
    assert (golden["marketing_consent"].value, golden["marketing_consent"].ref) == (
        False,
        "pos:C042",
    )


def test_on_a_tie_the_more_trusted_system_wins_and_no_beats_yes():
    a = person("pos:1", email="a@example.fr", updated_at=at(2), marketing_consent=True)
    b = person("erp:1", email="b@example.fr", updated_at=at(2), marketing_consent=False)
    golden = survivors(RULES, [a, b])
    assert golden["email"].ref == "erp:1"  # erp before pos in the trust order
    assert golden["marketing_consent"].value is False


def test_a_rules_file_must_say_how_every_golden_field_survives():
    document = yaml.safe_load(RULES_FILE.read_text())
    del document["survivorship"]["fields"]["email"]
    with pytest.raises(IdentityRulesError) as caught:
        parse_rules(document)
    assert "missing ['email']" in str(caught.value)


def test_a_customer_record_is_read_as_a_person():
    from hub.models import CustomerRecord

    record = CustomerRecord(
        source_system="shop", source_table="shop.customer", source_id="12",  # type: ignore[call-arg]
        source_position="pg:1:1", source_op="c", source_committed_at=at(2), emitted_at=at(2),
        email="marie@example.fr", given_name="Marie", marketing_consent=False,
        created_at=at(1), updated_at=at(2),
    ).model_dump(mode="json")  # fmt: skip
    found = Person.of_record("shop:12", record)
    assert (found.email, found.given_name, found.phone_e164) == ("marie@example.fr", "Marie", None)
    assert (found.created_at, found.updated_at, found.marketing_consent) == (at(1), at(2), False)
    assert found.system == "shop"


def test_explain_says_who_is_linked_by_what_what_was_kept_out_and_where_each_field_came_from():
    from hub.core.identity import explain

    paul, card, claire = household()
    people = [paul, card, claire]
    found = explain(RULES, resolve(RULES, people), people, "loyalty:2")
    assert found["members"] == ["loyalty:2", "shop:1"]
    assert found["golden_id"] == golden_id([paul, card])
    [link] = found["links"]
    assert (link["rule"], link["features"], link["score"]) == (
        "phone-and-family-name",
        ["phone_e164", "family_name"],
        1.0,
    )
    [cut] = found["cut"]
    assert cut["a"] == "erp:3" and cut["kept_apart_by"]["rule"] == "shared-contact-other-given-name"
    assert "Claire" in cut["kept_apart_by"]["detail"]
    assert found["fields"]["given_name"] == {
        "value": "Paul",
        "record": "shop:1",
        "policy": "most_complete",
    }
    assert found["rules_version"] == 1


def test_exact_values_differ_by_every_character_but_case_and_spaces():
    a = person("shop:1", email="jean_paul@example.fr", given_name="Jean-Paul")
    b = person("shop:2", email="jean-paul@example.fr", given_name="Jean-Paul")
    c = person("shop:3", email=" Jean_Paul@Example.FR", given_name="Jean Paul")
    assert match(RULES, a, b) is None
    assert match(RULES, a, c) is not None


def test_the_records_reachable_from_one_resolve_to_its_cluster_in_a_resolution_of_all():
    from hub.core.identity import block_index, reachable

    people = [
        person("shop:1", email="ana@example.fr", given_name="Ana", family_name="Roux"),
        person("erp:1", email="ana@example.fr", given_name="Ana", phone_e164="+33600000001"),
        person("pos:1", phone_e164="+33600000001", family_name="Roux", given_name="Anna"),
        person("shop:2", email="leo@example.fr", given_name="Léo"),
    ]
    people += [person(f"pos:{n}", email="noemail@example.com", given_name="Ana")
               for n in range(10, 70)]  # a merge storm: it reaches nothing  # fmt: skip
    blocks = block_index(RULES, people)
    found = reachable(RULES, people, ["pos:1"], Decisions(), blocks)
    assert [p.ref for p in found] == ["erp:1", "pos:1", "shop:1"]
    alone = resolve(RULES, found, Decisions(), lambda key: len(blocks.get(key, ())))
    assert alone.cluster_of("pos:1") == resolve(RULES, people).cluster_of("pos:1")
