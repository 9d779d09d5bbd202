"""The identity stage, streaming: golden customers kept as records change, splits when a link no
longer holds, typed merge/split events, and the same final state whatever the order of the
change log."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.core.engine import MemoryStore
from hub.core.golden import EVENTS, GOLDEN, IDENTIFYING, LINKS, OF, IdentityStage
from hub.core.identity import Person, golden_id, parse_rules, resolve, survivors
from hub.core.records import Document, Tombstone
from hub.models import CustomerEvent, CustomerLink, GoldenCustomer

DOCUMENT = yaml.safe_load((Path(__file__).parents[3] / "connectors/identity.yaml").read_text())
RULES = parse_rules(DOCUMENT)
STORMY = parse_rules(DOCUMENT | {"max_block": 2})  # a key on three records links nothing
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def at(day: int) -> str:
    return datetime(2026, 1, day, tzinfo=UTC).isoformat()


def record(**fields: Any) -> dict[str, Any]:
    return {"created_at": at(1), "updated_at": at(1)} | fields


MODELS = {GOLDEN: GoldenCustomer, LINKS: CustomerLink, EVENTS: CustomerEvent}


class Hub:
    """A stage on a memory store, and what it published last per topic and key (each record
    valid against its topic's model)."""

    def __init__(self, rules: Any = RULES) -> None:
        self.store = MemoryStore()
        self.stage = IdentityStage(rules, self.store)
        self.topics: dict[str, dict[str, Any]] = {GOLDEN: {}, LINKS: {}, EVENTS: {}}
        self.events: list[dict[str, Any]] = []
        self.refused: list[str] = []
        self.at = 0

    def put(self, ref: str, value: dict[str, Any] | None, position: str | None = None) -> None:
        self.at += 1
        outcome = self.stage.apply(ref, value, position or f"p:{self.at:08d}", NOW)
        self.refused += [failure.error.reason for failure in outcome.failures]
        for output in outcome.outputs:
            if isinstance(output, Document):
                assert MODELS[output.topic_id].model_validate(output.content).key == output.key
                self.topics[output.topic_id][output.key] = output.content
                if output.topic_id == EVENTS:
                    self.events.append(output.content)
            elif isinstance(output, Tombstone):
                self.topics.setdefault(output.topic_id, {}).pop(output.key, None)

    def golden_of(self, ref: str) -> dict[str, Any]:
        return self.topics[GOLDEN][self.topics[LINKS][ref]["golden_id"]]


MARIE_SHOP = record(email="marie.dupont@example.fr", given_name="Marie", family_name="Dupont",
                    phone_e164="+33612345678", updated_at=at(5))  # fmt: skip
MARIE_TILL = record(phone_e164="+33612345678", given_name="Marie", family_name="DUPONT",
                    postcode="75011", created_at=at(3), updated_at=at(3))  # fmt: skip
MARIE_ERP = record(given_name="Marie", family_name="Dupont", postcode="75011",
                   created_at=at(2), updated_at=at(2))  # fmt: skip


def test_the_same_person_from_the_shop_a_till_and_the_erp_becomes_one_golden_customer():
    hub = Hub()
    hub.put("shop:12", MARIE_SHOP)
    first = hub.topics[LINKS]["shop:12"]["golden_id"]
    hub.put("loyalty:C042", MARIE_TILL)
    assert hub.topics[LINKS]["loyalty:C042"]["golden_id"] == first  # the id did not change
    hub.put("erp:4711", MARIE_ERP)
    golden = hub.golden_of("erp:4711")
    assert golden["members"] == ["erp:4711", "loyalty:C042", "shop:12"]
    assert golden["fields"]["email"] == {"value": "marie.dupont@example.fr", "record": "shop:12",
                                         "policy": "most_recent"}  # fmt: skip
    assert golden["fields"]["postcode"]["value"] == "75011"
    assert {link["rule"] for link in golden["links"]} <= {
        "phone-and-family-name",
        "name-and-postcode",
        "email-and-given-name",
    }
    assert len(hub.topics[GOLDEN]) == 1


def test_an_edit_that_breaks_the_link_splits_the_record_out_again():
    hub = Hub()
    hub.put("shop:12", MARIE_SHOP)
    hub.put("erp:4711", MARIE_ERP | {"phone_e164": "+33612345678"})
    together = hub.topics[LINKS]["erp:4711"]["golden_id"]
    assert hub.topics[LINKS]["shop:12"]["golden_id"] == together
    hub.put("erp:4711", MARIE_ERP | {"family_name": "Durand", "phone_e164": "+33700000000"})
    apart = {hub.topics[LINKS][ref]["golden_id"] for ref in ("erp:4711", "shop:12")}
    assert len(apart) == 2 and len(hub.topics[GOLDEN]) == 2
    [event] = hub.events
    assert event["event"] == "split" and event["from"] == together
    assert sorted(event["into"]) == sorted(apart)


def test_two_golden_customers_joined_by_a_new_record_merge_with_an_event():
    hub = Hub()
    hub.put("shop:12", MARIE_SHOP)
    hub.put("erp:4711", MARIE_ERP)  # no link to the shop's yet: two customers
    ids = {hub.topics[LINKS][ref]["golden_id"] for ref in ("shop:12", "erp:4711")}
    assert len(ids) == 2
    hub.put("loyalty:C042", MARIE_TILL)  # phone like the shop's, name and postcode like the ERP's
    [event] = hub.events
    survivor = hub.topics[LINKS]["shop:12"]["golden_id"]
    assert event["event"] == "merged" and event["into"] == survivor and event["from"] in ids
    assert event["from"] not in hub.topics[GOLDEN]
    # The shop's account was created first: its customer's id survives.
    assert survivor == golden_id([Person.of_record("shop:12", MARIE_SHOP)])


def test_a_deleted_record_leaves_its_customer_and_its_link():
    hub = Hub()
    hub.put("shop:12", MARIE_SHOP)
    hub.put("loyalty:C042", MARIE_TILL)
    hub.put("loyalty:C042", None)
    assert "loyalty:C042" not in hub.topics[LINKS]
    assert hub.golden_of("shop:12")["members"] == ["shop:12"]
    hub.put("shop:12", None)
    assert hub.topics[GOLDEN] == {} and hub.topics[LINKS] == {}


def test_a_family_email_keeps_two_customers_and_each_names_the_other_as_related():
    hub = Hub()
    hub.put("shop:12", MARIE_SHOP)
    hub.put("shop:13", record(email="marie.dupont@example.fr", given_name="Paul",
                              family_name="Dupont"))  # fmt: skip
    marie, paul = hub.golden_of("shop:12"), hub.golden_of("shop:13")
    assert marie["golden_id"] != paul["golden_id"]
    assert [(r["member"], r["record"], r["rule"]) for r in marie["related"]] == [
        ("shop:12", "shop:13", "shared-contact-other-given-name")
    ]
    assert [r["record"] for r in paul["related"]] == ["shop:12"]


def test_a_record_with_nothing_to_tell_who_it_is_is_refused_and_leaves_its_customer():
    hub = Hub()
    hub.put("shop:12", MARIE_SHOP)
    hub.put("loyalty:C042", MARIE_TILL)
    hub.put("loyalty:C042", record(postcode="75011"))  # no email, no phone, no name
    assert hub.refused == ["no_identity"]
    assert "loyalty:C042" not in hub.topics[LINKS]
    assert hub.golden_of("shop:12")["members"] == ["shop:12"]
    hub.put("loyalty:C042", MARIE_TILL)  # filled in again at its source: back in
    assert hub.golden_of("loyalty:C042")["members"] == ["loyalty:C042", "shop:12"]


def test_a_golden_record_says_which_change_made_it_and_when_that_committed():
    hub = Hub()
    hub.put("shop:12", MARIE_SHOP | {"source_committed_at": "2026-12-07T11:59:59.5Z"}, "p:7")
    golden = hub.golden_of("shop:12")
    assert (golden["source_position"], golden["source_committed_at"]) == (
        "p:7",
        "2026-12-07T11:59:59.5Z",
    )


def test_an_older_change_of_a_record_is_a_replay():
    hub = Hub()
    hub.put("shop:12", MARIE_SHOP, "p:00000005")
    outcome = hub.stage.apply("shop:12", MARIE_SHOP | {"email": "old@example.fr"}, "p:00000004",
                              NOW)  # fmt: skip
    assert outcome.skipped == "duplicate" and outcome.outputs == []


# -- sequence neutrality: any order of the change log gives the same customers

GIVEN = ["Paul", "Paule", "Claire", "Bob", "Robert", None]
FAMILY = ["Martin", "Dupont", None]
EMAIL = ["home@example.fr", "paul@example.fr", None]
PHONE = ["+33600000001", "+33600000002", None]
POSTCODE = ["69001", None]
CHANGE = st.tuples(
    st.integers(0, 5),  # which record
    st.one_of(st.none(), st.tuples(st.sampled_from(GIVEN), st.sampled_from(FAMILY),
                                   st.sampled_from(EMAIL), st.sampled_from(PHONE),
                                   st.sampled_from(POSTCODE), st.integers(1, 28))),
)  # fmt: skip


def final_state(hub: Hub) -> tuple[list[tuple[str, ...]], dict[str, Any]]:
    clusters: dict[str, list[str]] = {}
    for key, value in sorted(hub.store.items()):
        if key.startswith(OF):
            clusters.setdefault(value["g"], []).append(key.removeprefix(OF))
    assert set(clusters) == set(hub.topics[GOLDEN])  # the topic holds exactly the customers
    return sorted(tuple(sorted(m)) for m in clusters.values()), {
        gid: (golden["members"], golden["fields"]) for gid, golden in hub.topics[GOLDEN].items()
    }


@settings(max_examples=150, deadline=None)
@given(changes=st.lists(CHANGE, min_size=1, max_size=14), seed=st.randoms(use_true_random=False),
       stormy=st.booleans())  # fmt: skip
def test_any_order_of_a_change_log_gives_the_same_customers_as_a_batch(changes, seed, stormy):
    rules = STORMY if stormy else RULES  # keys crossing the merge-storm limit, both ways
    log = []
    for n, (which, fields) in enumerate(changes, start=1):
        value = None
        if fields is not None:
            g, f, e, p, c, day = fields
            value = record(given_name=g, family_name=f, email=e, phone_e164=p, postcode=c,
                           created_at=at(day), updated_at=at(day))  # fmt: skip
        log.append((f"s:{which}", value, f"p:{n:08d}"))
    in_order, shuffled = Hub(rules), Hub(rules)
    for ref, value, position in log:
        in_order.put(ref, value, position)
    mixed = list(log)
    seed.shuffle(mixed)
    for ref, value, position in mixed:
        shuffled.put(ref, value, position)
    expected = final_state(in_order)
    assert final_state(shuffled) == expected
    # And the same as a batch resolution of the latest value of each record.
    latest = {ref: value for ref, value, _ in log}
    people = [Person.of_record(ref, value) for ref, value in latest.items() if value is not None]
    people = [person for person in people if any(person.value(name) for name in IDENTIFYING)]
    batch = resolve(rules, people)
    by_ref = {person.ref: person for person in people}
    assert expected[0] == batch.clusters
    for cluster in batch.clusters:
        members = [by_ref[ref] for ref in cluster]
        gid = golden_id(members)
        fields = {name: {"value": s.value, "record": s.ref, "policy": s.policy}
                  for name, s in survivors(rules, members).items()}  # fmt: skip
        assert expected[1][gid] == (list(cluster), fields)


# -- manual decisions


def decision(kind: str, a: str, b: str) -> Any:
    from hub.core.identity import Decision

    return Decision(kind, a, b, "ops@example.fr", "same person, confirmed at the till", at(9))  # type: ignore[arg-type]


def test_a_manual_link_merges_and_an_unlink_splits_again_and_both_survive_a_restart():
    hub = Hub()
    hub.put("shop:12", MARIE_SHOP)
    hub.put("erp:4711", MARIE_ERP)  # no rule links them
    outcome = hub.stage.decide(decision("link", "erp:4711", "shop:12"), NOW)
    hub.topics[LINKS] |= {o.key: o.content for o in outcome.outputs
                          if isinstance(o, Document) and o.topic_id == LINKS}  # fmt: skip
    assert hub.topics[LINKS]["erp:4711"]["golden_id"] == hub.topics[LINKS]["shop:12"]["golden_id"]
    restarted = IdentityStage(RULES, hub.store)  # the decision is in the state
    assert restarted.decisions.links == {("erp:4711", "shop:12")}
    outcome = restarted.decide(decision("unlink", "erp:4711", "shop:12"), NOW)
    events = [o.content for o in outcome.outputs if o.topic_id == EVENTS]
    assert [event["event"] for event in events] == ["split"]
    assert restarted.decisions.links == set() and restarted.decisions.bans == {
        ("erp:4711", "shop:12")
    }
    assert [d.kind for d in restarted.decisions.made] == ["link", "unlink"]  # the audit trail


def test_explain_shows_the_manual_decisions_with_who_why_and_when():
    from hub.core.identity import Decisions, explain

    people = [Person.of_record("shop:12", MARIE_SHOP), Person.of_record("erp:4711", MARIE_ERP)]
    decisions = Decisions.of([decision("link", "shop:12", "erp:4711")])
    found = explain(RULES, resolve(RULES, people, decisions), people, "erp:4711", decisions)
    assert found["members"] == ["erp:4711", "shop:12"]
    [made] = found["decisions"]
    assert (made["kind"], made["who"], made["why"]) == (
        "link",
        "ops@example.fr",
        "same person, confirmed at the till",
    )


def test_a_component_judges_merge_storms_by_every_record_holding_the_key():
    # s:2 and s:3 share an email, a phone and a name with postcode. s:1 joins the phone and the
    # name keys (three holders: storms), then s:0 the email key (a storm too): nothing links them
    # any more, although only some of the phone key's holders are in s:0's component.
    paul = {"given_name": "Paul", "family_name": "Martin", "postcode": "69001"}
    hub = Hub(STORMY)
    hub.put("s:3", record(**paul, email="paul@example.fr", phone_e164="+33600000002"))
    hub.put("s:2", record(**paul, email="paul@example.fr", phone_e164="+33600000002"))
    assert hub.topics[LINKS]["s:2"]["golden_id"] == hub.topics[LINKS]["s:3"]["golden_id"]
    hub.put("s:1", record(**paul, email="home@example.fr", phone_e164="+33600000002"))
    hub.put("s:0", record(**paul, email="paul@example.fr", phone_e164="+33600000001"))
    assert final_state(hub)[0] == [("s:0",), ("s:1",), ("s:2",), ("s:3",)]


# -- erasure


def erasure(ref: str) -> Any:
    from hub.core.golden import Erasure

    return Erasure(ref, "dpo@example.fr", "GDPR request 2026-118", at(20))


def test_erasing_a_customer_tombstones_everything_of_theirs_and_keeps_only_a_salted_hash():
    from hub.core.golden import ERASED_TOPIC, ERASURES, RECORDS, REQUESTS, erasure_key

    hub = Hub()
    hub.stage.salt = b"pepper"
    hub.put("shop:12", MARIE_SHOP)
    hub.put("loyalty:C042", MARIE_TILL)
    hub.put(
        "shop:13", record(email="marie.dupont@example.fr", given_name="Paul", family_name="Dupont")
    )  # fmt: skip: a household member
    hub.stage.decide(decision("link", "shop:12", "erp:9"), NOW)
    gid = hub.topics[LINKS]["shop:12"]["golden_id"]
    outcome = hub.stage.erase(erasure("loyalty:C042"), NOW)  # any of their refs, or the id
    dead = {(o.topic_id, o.key) for o in outcome.outputs if isinstance(o, Tombstone)}
    assert {(GOLDEN, gid), (LINKS, "shop:12"), (LINKS, "loyalty:C042"), (RECORDS, "shop:12"),
            (RECORDS, "loyalty:C042")} <= dead  # fmt: skip
    assert (REQUESTS, f"{at(9)}|link|shop:12|erp:9") in dead  # the decision naming them
    # Each record's tombstone comes right after its last change, in its source's order.
    assert {o.key: o.position for o in outcome.outputs if o.topic_id == RECORDS} == {
        "shop:12": "p:00000001:erased", "loyalty:C042": "p:00000002:erased"
    }  # fmt: skip
    made = {(o.topic_id, o.key): o.content for o in outcome.outputs if isinstance(o, Document)}
    assert made[(ERASURES, gid)]["records"] == ["loyalty:C042", "shop:12"]
    assert (ERASED_TOPIC, erasure_key(b"pepper", "shop:12")) in made
    paul = made[(GOLDEN, hub.topics[LINKS]["shop:13"]["golden_id"])]
    assert paul["related"] == []  # the household member, republished without them
    # Nothing of them stays in the state: no ref, no value.
    text = repr(sorted(hub.store.items()))
    for trace in (
        "shop:12",
        "loyalty:C042",
        "Marie",
        "+33612345678",
        "75011",
    ):  # (Paul keeps the email)
        assert trace not in text, trace
    assert hub.stage.erased("shop:12") and not hub.stage.erased("shop:13")


def test_an_erased_record_does_not_come_back_until_its_source_deletes_it():
    from hub.core.golden import ERASED_TOPIC, RECORDS

    hub = Hub()
    hub.put("shop:12", MARIE_SHOP, "p:00000001")
    hub.stage.erase(erasure("shop:12"), NOW)
    late = hub.stage.apply("shop:12", MARIE_SHOP, "p:00000002", NOW)  # a late change, a replay
    assert [(type(o).__name__, o.topic_id) for o in late.outputs] == [("Tombstone", RECORDS)]
    assert late.outputs[0].position == "p:00000002:erased"  # never the position it erases
    replay = hub.stage.apply("shop:12", MARIE_SHOP, "p:00000001", NOW)
    assert [o.topic_id for o in replay.outputs] == [RECORDS]
    deleted = hub.stage.apply("shop:12", None, "p:00000003", NOW)  # the source deleted the row
    assert [(type(o).__name__, o.topic_id) for o in deleted.outputs] == [
        ("Tombstone", ERASED_TOPIC)
    ]
    assert not hub.stage.erased("shop:12")
    hub.put("shop:12", MARIE_SHOP, "p:00000004")  # a new row of that id: a new customer
    assert hub.golden_of("shop:12")["members"] == ["shop:12"]


def test_erasing_a_ref_the_stage_has_not_seen_blocks_it_all_the_same():
    from hub.core.golden import ERASURES

    hub = Hub()
    outcome = hub.stage.erase(erasure("erp:77"), NOW)
    [event] = [o for o in outcome.outputs if o.topic_id == ERASURES]
    assert event.key == "erp:77" and event.content["golden_id"] is None
    hub.put("erp:77", MARIE_ERP)
    assert "erp:77" not in hub.topics[LINKS]
    assert hub.stage.erase(erasure("g-0123456789abcdef"), NOW).skipped == "unknown"


# -- a change of rules


def test_new_rules_rebuild_every_customer_and_publish_what_they_change():
    hub = Hub()
    assert hub.stage.fresh()
    hub.stage.seed({}, {}, {}, [], [], NOW)  # a new state (empty topics) takes the rules it has
    assert not hub.stage.fresh() and not hub.stage.rules_changed()
    hub.put("shop:12", MARIE_SHOP)
    hub.put("loyalty:C042", MARIE_TILL)  # one customer by phone and family name
    hub.put("erp:4711", MARIE_ERP | {"given_name": "Marion"})  # 0.89 < 0.9: alone
    assert len(hub.topics[GOLDEN]) == 2
    looser = parse_rules(DOCUMENT | {"version": 2, "match": [
        rule if rule["name"] != "name-and-postcode" else
        rule | {"when": [*rule["when"][:2], {"field": "given_name", "compare": "name", "min": 0.8}]}
        for rule in DOCUMENT["match"]]})  # fmt: skip
    stage = IdentityStage(looser, hub.store)
    assert stage.rules_changed()
    outcome = stage.rebuild(["shop:12", "loyalty:C042", "erp:4711", "shop:99"], NOW)
    hub.stage = stage
    for output in outcome.outputs:
        if isinstance(output, Document):
            hub.topics[output.topic_id][output.key] = output.content
        else:
            hub.topics[output.topic_id].pop(output.key, None)
    [customer] = hub.topics[GOLDEN].values()
    assert customer["members"] == ["erp:4711", "loyalty:C042", "shop:12"]
    assert customer["rules_version"] == 2
    assert not stage.rules_changed()
    # The same as a store built with the new rules from the start.
    fresh = Hub(looser)
    for ref, value in (("erp:4711", MARIE_ERP | {"given_name": "Marion"}), ("shop:12", MARIE_SHOP),
                       ("loyalty:C042", MARIE_TILL)):  # fmt: skip
        fresh.put(ref, value)
    assert {k: v["members"] for k, v in fresh.topics[GOLDEN].items()} == {
        k: v["members"] for k, v in hub.topics[GOLDEN].items()
    }


def test_a_key_crossing_the_merge_storm_limit_is_reported_once():
    hub = Hub(STORMY)  # max_block 2
    for n in range(4):
        hub.put(f"shop:{n}", record(email="noemail@example.com", given_name="Client",
                                    family_name=f"Walk{n}"))  # fmt: skip
    assert hub.stage.take_storms() == [("email-and-given-name|noemail@example.com", 3)]
    assert hub.stage.take_storms() == []
    assert len(hub.topics[GOLDEN]) == 4  # linked to none


# -- a new state, made from what the topics hold


def test_a_new_state_seeded_from_the_topics_publishes_nothing_and_skips_older_feed_records():
    hub = Hub()
    hub.put("shop:12", MARIE_SHOP, "p:00000001")
    hub.put("loyalty:C042", MARIE_TILL, "p:00000002")
    hub.put("shop:13", record(email="marie.dupont@example.fr", given_name="Paul",
                              family_name="Dupont"), "p:00000003")  # fmt: skip
    hub.put("shop:12", MARIE_SHOP | {"marketing_consent": True}, "p:00000004")
    records = {"shop:12": MARIE_SHOP | {"marketing_consent": True, "source_position": "p:00000004"},
               "loyalty:C042": MARIE_TILL | {"source_position": "p:00000002"},
               "shop:13": record(email="marie.dupont@example.fr", given_name="Paul",
                                 family_name="Dupont") | {"source_position": "p:00000003"}}  # fmt: skip
    links = {ref: link["golden_id"] for ref, link in hub.topics[LINKS].items()}
    fresh = IdentityStage(RULES, MemoryStore())
    assert fresh.fresh()
    outcome = fresh.seed(records, hub.topics[GOLDEN], links, [], [], NOW)
    assert outcome.outputs == [] and not fresh.fresh()
    # The feed read from its start: every record older than the state is a replay.
    for ref, value, position in (("shop:12", MARIE_SHOP, "p:00000001"),
                                 ("shop:12", MARIE_SHOP, "p:00000004")):  # fmt: skip
        assert fresh.apply(ref, value, position, NOW).skipped == "duplicate"
    # A golden record the topic holds stale is published right.
    stale = {gid: dict(golden) for gid, golden in hub.topics[GOLDEN].items()}
    marie = links["shop:12"]
    stale[marie]["fields"] = {}
    again = IdentityStage(RULES, MemoryStore()).seed(records, stale, links, [], [], NOW)
    assert [(o.topic_id, o.key) for o in again.outputs] == [(GOLDEN, marie)]
    assert again.outputs[0].content["fields"] == hub.topics[GOLDEN][marie]["fields"]


def test_a_seed_drops_the_links_and_customers_of_records_the_topics_no_longer_hold():
    # The previous holder stopped after a record's deletion committed and before its customer's
    # did: the topics still link shop:13 (gone) to Marie, and hold Paul's customer (all gone).
    hub = Hub()
    hub.put("shop:12", MARIE_SHOP, "p:00000001")
    hub.put("loyalty:C042", MARIE_TILL, "p:00000002")
    hub.put("shop:20", record(email="paul@example.fr", given_name="Paul"), "p:00000003")
    links = {ref: link["golden_id"] for ref, link in hub.topics[LINKS].items()}
    records = {"shop:12": MARIE_SHOP | {"source_position": "p:00000001"}}
    marie, paul = links["shop:12"], links["shop:20"]
    outcome = IdentityStage(RULES, MemoryStore()).seed(records, hub.topics[GOLDEN], links, [],
                                                       [], NOW)  # fmt: skip
    published = {(o.topic_id, o.key): o for o in outcome.outputs}
    assert isinstance(published[(LINKS, "loyalty:C042")], Tombstone)
    assert isinstance(published[(LINKS, "shop:20")], Tombstone)
    assert isinstance(published[(GOLDEN, paul)], Tombstone)
    assert published[(GOLDEN, marie)].content["members"] == ["shop:12"]
    assert (LINKS, "shop:12") not in published  # unchanged
