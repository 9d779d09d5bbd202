"""One customer across every channel, on the real stack: records of one person created in the shop,
at a till and in the ERP become one golden customer; an edit that breaks the evidence splits it;
a family email keeps two people apart; manual decisions are applied and explained."""

from __future__ import annotations

from typing import Any

import orjson
import requests

from hub.customers import load_rules
from hub.models import CustomerEvent, GoldenCustomer
from tests.integration.conftest import TopicReader
from tests.integration.harness import wait_until


def golden_of(links: Any, golden: Any, ref: str, members: list[str]) -> dict[str, Any]:
    """The golden customer ``ref`` links to, once it has exactly ``members``."""
    found: dict[str, Any] = {}

    def ready(link: dict[str, Any] | None) -> bool:
        if link is None:
            return False
        golden.poll(0.2)
        records = golden.history.get(link["golden_id"])
        if records and records[-1] and records[-1]["members"] == members:
            found.update(records[-1])
            return True
        return False

    links.wait_for(ref, ready)
    return GoldenCustomer.model_validate(found).model_dump(mode="json")


def test_one_person_from_the_shop_a_till_and_the_erp_becomes_one_golden_customer_and_splits_again(
    stack, worker, golden, customer_links, customer_events
):
    stack.sql("shop", "INSERT INTO shop.customer VALUES (880101, ' Heloise.Marchand.IT@example.fr',"
              " 'Héloïse', 'Marchand', '06 98 76 54 32', true, NULL, '2026-11-01T10:00:00Z',"
              " '2026-11-30T10:00:00Z')")  # fmt: skip
    first = golden_of(customer_links, golden, "shop:880101", ["shop:880101"])
    # At a till: no email, the same mobile and family name.
    stack.sql("pos", "INSERT INTO pos.loyalty_member VALUES ('LC88010100', 'Heloise Marchand',"
              " NULL, '+33 6 98 76 54 32', '44000', '2026-11-15T09:00:00Z', false)")  # fmt: skip
    two = golden_of(customer_links, golden, "pos:LC88010100", ["pos:LC88010100", "shop:880101"])
    assert two["golden_id"] == first["golden_id"]  # a record joined: the id stays
    assert two["links"][0]["rule"] == "phone-and-family-name"
    # In the ERP: the same email (upper case) and given name, a landline, the postcode.
    stack.sql("erp", "INSERT INTO CUST_MAST VALUES (880101, 'MARCHAND Héloïse',"
              " 'HELOISE.MARCHAND.IT@EXAMPLE.FR', '02 40 11 22 33', '44000', '2026-12-01',"
              " '2026-12-01 08:00:00')")  # fmt: skip
    members = ["erp:880101", "pos:LC88010100", "shop:880101"]
    one = golden_of(customer_links, golden, "erp:880101", members)
    assert one["golden_id"] == first["golden_id"]
    fields = {name: (field["value"], field["record"]) for name, field in one["fields"].items()}
    assert fields == {
        "email": ("heloise.marchand.it@example.fr", "erp:880101"),  # the latest updated
        "phone_e164": ("+33240112233", "erp:880101"),
        "given_name": ("Héloïse", "erp:880101"),  # the most complete record
        "family_name": ("Marchand", "erp:880101"),
        "postcode": ("44000", "erp:880101"),
        "marketing_consent": (True, "shop:880101"),  # the latest explicit choice
    }
    assert one["rules_version"] == load_rules().version
    assert one["source_committed_at"] is not None and one["source_position"].startswith("mdb:")
    # The ERP row becomes someone else: it splits out, both customers are republished.
    stack.sql("erp", "UPDATE CUST_MAST SET CUST_NAME = 'MARCHAND Bernard', EMAIL_ADDR ="
              " 'bernard.marchand@example.fr', UPD_TS = '2026-12-02 08:00:00' WHERE CUST_NO = 880101")  # fmt: skip
    alone = golden_of(customer_links, golden, "erp:880101", ["erp:880101"])
    rest = golden_of(customer_links, golden, "shop:880101", ["pos:LC88010100", "shop:880101"])
    assert rest["golden_id"] == first["golden_id"] != alone["golden_id"]
    assert rest["fields"]["given_name"]["value"] == "Héloïse"
    event = customer_events.wait_for(first["golden_id"], lambda v: v is not None)
    assert CustomerEvent.model_validate(event).event == "split"
    assert sorted(event["into"]) == sorted([first["golden_id"], alone["golden_id"]])


def test_two_people_sharing_a_family_email_stay_two_and_a_manual_link_is_applied_and_explained(
    stack, worker, golden, customer_links
):
    for n, given in ((880201, "Claire"), (880202, "Paul")):
        stack.sql("shop", "INSERT INTO shop.customer VALUES (%s, 'fabre.famille@example.fr', %s,"
                  " 'Fabre', NULL, false, NULL, now(), now())", (n, given))  # fmt: skip
    claire = golden_of(customer_links, golden, "shop:880201", ["shop:880201"])
    paul = golden_of(customer_links, golden, "shop:880202", ["shop:880202"])
    assert claire["golden_id"] != paul["golden_id"]
    assert [(r["record"], r["rule"]) for r in claire["related"]] == [
        ("shop:880202", "shared-contact-other-given-name")
    ]
    # An operator knows better: a forced link, audited, then taken back.
    done = stack.hub("customer", "link", "shop:880201", "shop:880202", "--why", "one account",
                     "--who", "it-test")  # fmt: skip
    assert done.returncode == 0, done.stderr
    both = golden_of(customer_links, golden, "shop:880202", ["shop:880201", "shop:880202"])
    assert both["links"] == [{"a": "shop:880201", "b": "shop:880202", "rule": "manual-link",
                              "score": 1.0}]  # fmt: skip
    shown = stack.hub("customer", "explain", "shop:880201", "--json")
    assert shown.returncode == 0, shown.stderr
    found = orjson.loads(shown.stdout)
    assert found["golden_id"] == both["golden_id"] and found["members"] == both["members"]
    assert [(d["kind"], d["who"], d["why"]) for d in found["decisions"]] == [
        ("link", "it-test", "one account")
    ]
    assert set(found["published"].values()) == {both["golden_id"]}
    done = stack.hub("customer", "unlink", "shop:880201", "shop:880202", "--why", "two people",
                     "--who", "it-test")  # fmt: skip
    assert done.returncode == 0, done.stderr
    golden_of(customer_links, golden, "shop:880202", ["shop:880202"])
    golden_of(customer_links, golden, "shop:880201", ["shop:880201"])
    shown = orjson.loads(stack.hub("customer", "explain", both["golden_id"], "--json").stdout)
    assert [d["kind"] for d in shown["decisions"]] == ["link", "unlink"]
    assert [(a["a"], a["b"], a["rule"]) for a in shown["apart"]] == [
        ("shop:880201", "shop:880202", "manual-ban")
    ]


def outcome_count(stack: Any, system: str, outcome: str) -> float:
    """A counter of the worker's /metrics: hub_outcomes{system, outcome}."""
    text = requests.get(f"http://127.0.0.1:{stack.env['HUB_WORKER_WEB_PORT']}/metrics",
                        timeout=5).text  # fmt: skip
    wanted = f'hub_outcomes_total{{outcome="{outcome}",system="{system}"}}'
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(wanted))


def test_an_erased_customer_is_gone_everywhere_and_a_later_update_does_not_bring_them_back(
    stack, worker, golden, customer_links, customers
):
    from hub.core.golden import erasure_key
    from hub.customers import erasure_salt
    from hub.settings import HubSettings

    stack.sql("shop", "INSERT INTO shop.customer VALUES (880301, 'yann.kerboul@example.fr', 'Yann',"
              " 'Kerboul', '06 55 44 33 22', true, 'allergic to nuts', '2026-10-01T10:00:00Z',"
              " now())")  # fmt: skip
    stack.sql("pos", "INSERT INTO pos.loyalty_member VALUES ('LC88030100', 'Yann Kerboul',"
              " 'yann.kerboul@example.fr', NULL, '29200', '2026-10-05T09:00:00Z', true)")  # fmt: skip
    members = ["pos:LC88030100", "shop:880301"]
    person = golden_of(customer_links, golden, "shop:880301", members)
    erasures = TopicReader(stack.endpoints["kafka_bootstrap"], "unified.customer.erasures")
    erased = TopicReader(stack.endpoints["kafka_bootstrap"], "hub.customer.erased")
    try:
        done = stack.hub("customer", "erase", person["golden_id"], "--why", "GDPR art. 17",
                         "--who", "it-test")  # fmt: skip
        assert done.returncode == 0, done.stderr
        event = erasures.wait_for(person["golden_id"], lambda v: v is not None)
        assert event["records"] == members
        for ref in members:  # tombstones on every topic the hub wrote them to
            customer_links.wait_for(ref, lambda v: v is None)
            customers.wait_for(ref, lambda v: v is None)
        golden.wait_for(person["golden_id"], lambda v: v is None)
        salt = erasure_salt(HubSettings(state_dir=stack.state_dir))
        hashed = erasure_key(salt, "shop:880301")
        assert erased.wait_for(hashed, lambda v: v is not None)["who"] == "it-test"
        # Later changes of the source rows: counted as erased, never published.
        blocked = outcome_count(stack, "shop", "erased")
        stack.sql("shop", "UPDATE shop.customer SET first_name = 'Yannick', updated_at = now()"
                  " WHERE id = 880301")  # fmt: skip
        wait_until(lambda: outcome_count(stack, "shop", "erased") > blocked,
                   "the erased row's change refused")  # fmt: skip
        customers.poll(2)
        customer_links.poll(1)
        assert customers.history["shop:880301"][-1] is None
        assert customer_links.history["shop:880301"][-1] is None
        shown = stack.hub("customer", "explain", "shop:880301")
        assert shown.returncode == 1 and "no record shop:880301" in shown.stderr
        # The shop deletes the row: nothing is left to block; a new row of that id is new.
        stack.sql("shop", "DELETE FROM shop.customer WHERE id = 880301")
        erased.wait_for(hashed, lambda v: v is None)
        stack.sql("shop", "INSERT INTO shop.customer VALUES (880301, 'new.person@example.fr',"
                  " 'Nouvelle', 'Personne', NULL, false, NULL, now(), now())")  # fmt: skip
        again = golden_of(customer_links, golden, "shop:880301", ["shop:880301"])
        assert again["fields"]["given_name"]["value"] == "Nouvelle"
    finally:
        erasures.close()
        erased.close()
