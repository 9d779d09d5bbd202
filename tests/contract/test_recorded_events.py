"""Recorded envelopes from the real connectors, through the real definitions → canonical records."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from hub.core.records import Tombstone, Upsert
from hub.errors import InvalidEvent
from hub.models import CustomerRecord, InventoryLevel, OrderLine
from tests.conftest import NOW, new_engine, pick, recorded


def feed(engine, records):
    outputs = []
    for record in records:
        outputs += engine.process(record.system, record.key, record.value, NOW).outputs
    return outputs


def upserts(outputs, model):
    return [o.record for o in outputs if isinstance(o, Upsert) and isinstance(o.record, model)]


def test_every_snapshot_record_maps_or_waits_without_error(engine):
    for record in recorded("snapshot"):
        outcome = engine.process(record.system, record.key, record.value, NOW)
        assert outcome.outputs or outcome.skipped, record.topic


def test_pos_stock_create_update_delete_tombstone(engine):
    outputs = feed(engine, recorded("pos_stock"))
    levels = upserts(outputs, InventoryLevel)
    assert [(lv.source_op, lv.on_hand) for lv in levels] == [("c", Decimal(12)), ("u", Decimal(9))]
    level = levels[-1]
    assert level.key == "3769999999996@store:LYO01"
    assert (level.gtin, level.location_type, level.unit) == ("3769999999996", "store", "PCE")
    assert level.updated_at == datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
    assert level.source_system == "pos" and level.source_position.startswith("pg:")
    assert outputs[-1] == Tombstone("unified.inventory", "3769999999996@store:LYO01")
    assert len(outputs) == 3  # the Debezium tombstone itself produces nothing


def test_till_sale_becomes_order_lines_that_follow_the_ticket_status(engine):
    outputs = feed(engine, recorded("pos_sale"))
    lines = upserts(outputs, OrderLine)
    latest = {line.key: line for line in lines}
    assert set(latest) == {"store:900001:1", "store:900001:2"}
    first = latest["store:900001:1"]
    assert (first.channel, first.gtin, first.quantity, first.unit_price) == (
        "store", "3760000000017", Decimal(2), Decimal("12.90"))  # fmt: skip
    assert first.customer_ref == "pos:LC00000042"  # its key on unified.customer.records
    assert first.location_id == "store:PAR01"
    assert [line.status for line in lines if line.key == "store:900001:1"] == [
        "open",
        "completed",
        "voided",
    ]
    tombstones = [o.key for o in outputs if isinstance(o, Tombstone)]
    assert sorted(tombstones) == ["store:900001:1", "store:900001:2"]


def test_ticket_lines_arriving_before_their_ticket_wait_for_it():
    engine = new_engine()
    ticket = pick("pos_sale", "pos.ticket", "c")
    line = pick("pos_sale", "pos.ticket_line", "c")
    waiting = engine.process("pos", line.key, line.value, NOW)
    assert waiting.outputs == [] and waiting.skipped == "pending:pos.ticket"
    arrived = engine.process("pos", ticket.key, ticket.value, NOW)
    (line_out,) = upserts(arrived.outputs, OrderLine)
    assert line_out.key == "store:900001:1" and line_out.status == "open"
    assert line_out.source_table == "pos.ticket_line"  # the line's own provenance, not the ticket's


def test_web_stock_needs_the_variant_barcode_whatever_the_arrival_order():
    in_order = feed(new_engine(), recorded("shop_web_stock"))
    events = recorded("shop_web_stock")
    variants = [r for r in events if r.topic.endswith("shop.variant")]
    reversed_order = feed(new_engine(), [r for r in events if r not in variants][:1] + variants[:1])
    for outputs in (in_order, reversed_order):
        level = upserts(outputs, InventoryLevel)[0]
        assert level.key == "3769999999989@web:1"
        assert (level.source_article_id, level.location_type) == ("WEB-T0001", "web")
        assert (level.on_hand, level.reserved) == (
            Decimal(42),
            Decimal(2),
        )  # available 40 + committed 2
        assert level.source_table == "shop.inventory_level"
    updated = upserts(in_order, InventoryLevel)[-1]
    assert (updated.on_hand, updated.reserved) == (Decimal(42), Decimal(5))
    assert Tombstone("unified.inventory", "3769999999989@web:1") in in_order


def test_unchanged_toasted_note_takes_its_last_value_never_the_placeholder(engine):
    outputs = feed(engine, recorded("shop_customer_toast"))
    created, updated = upserts(outputs, CustomerRecord)
    update_event = pick("shop_customer_toast", "shop.customer", "u")
    assert update_event.envelope["after"]["note"] == "__debezium_unavailable_value"
    assert updated.note == created.note
    assert len(created.note) > 4000 and "__debezium" not in updated.note
    assert updated.phone_e164 == "+33698765432" and created.phone_e164 == "+33612345678"
    assert (created.email, created.given_name, created.family_name) == (
        "marie.curie@example.fr",
        "Marie",
        "Curie",
    )
    assert created.key == "shop:900001"
    assert outputs[-1] == Tombstone("unified.customer.records", "shop:900001")


def test_placeholder_without_a_known_value_is_dead_lettered_not_published():
    update = pick("shop_customer_toast", "shop.customer", "u")
    with pytest.raises(InvalidEvent) as info:
        new_engine().process("shop", update.key, update.value, NOW)
    assert info.value.reason == "unavailable_value"


def test_web_order_lines_follow_their_order_status(engine):
    variant_1 = pick("snapshot", "shop.variant", "r")
    assert variant_1.key == b'{"id":1}'
    outputs = feed(engine, [variant_1, *recorded("shop_order")])
    lines = upserts(outputs, OrderLine)
    assert {line.key for line in lines} == {"web:900001:1"}
    assert [line.status for line in lines] == ["open", "cancelled"]
    assert lines[0].customer_ref == "shop:1"
    assert lines[0].unit_price == Decimal("19.90") and lines[0].quantity == Decimal(2)
    assert Tombstone("unified.order_lines", "web:900001:1") in outputs


def test_erp_stock_is_exact_decimal_with_unit_from_the_article(engine):
    outputs = feed(engine, recorded("erp_stock"))
    created, updated = upserts(outputs, InventoryLevel)
    assert created.key == "3769999999972@warehouse:W001"
    assert (created.on_hand, created.reserved, created.safety_stock) == (
        Decimal("12.500"), Decimal("2.250"), Decimal("5.000"))  # fmt: skip
    assert str(updated.on_hand) == "12.375"
    assert (created.unit, created.source_article_id) == ("KG", "T000000001")
    assert updated.updated_at == datetime(2026, 11, 23, 8, 15, tzinfo=UTC)
    assert updated.source_position.startswith("mdb:")
    assert Tombstone("unified.inventory", "3769999999972@warehouse:W001") in outputs
    assert (
        '"on_hand":"12.375"'
        in Upsert("unified.inventory", updated.key, updated).value_bytes().decode()
    )


def test_erp_customer_name_phone_email_and_dates(engine):
    outputs = feed(engine, recorded("erp_customer"))
    created, updated = upserts(outputs, CustomerRecord)
    assert created.key == "erp:990001"
    assert (created.given_name, created.family_name) == ("Anne-Sophie", "Le Gall")
    assert created.email == "anne-sophie.legall@example.fr"
    assert created.phone_e164 == "+33142685300" and updated.phone_e164 == "+33611223344"
    assert created.created_at == datetime(2019, 5, 17, tzinfo=UTC)
    assert created.marketing_consent is None
    assert outputs[-1] == Tombstone("unified.customer.records", "erp:990001")


def test_truncate_is_refused_loudly(engine):
    record = pick("pos_truncate", "pos.ticket_line", "t")
    with pytest.raises(InvalidEvent, match="truncated"):
        engine.process("pos", record.key, record.value, NOW)


def test_a_new_upstream_column_is_ignored_until_mapped(engine):
    record = pick("erp_customer", "erp.CUST_MAST", "c")
    envelope = record.envelope
    envelope["after"]["LOYALTY_TIER"] = "GOLD"
    import json

    outputs = engine.process("erp", record.key, json.dumps(envelope).encode(), NOW).outputs
    assert upserts(outputs, CustomerRecord)[0].key == "erp:990001"


def test_a_failing_dependent_is_reported_and_the_reference_row_goes_on(engine):
    stock = pick("erp_stock", "erp.STK_BAL", "c")
    envelope = stock.envelope
    envelope["after"]["QTY_OH"] = "12.5005"  # more decimals than DECIMAL(12,3) allows
    import json

    parked = engine.process("erp", stock.key, json.dumps(envelope).encode(), NOW)
    assert parked.skipped == "pending:erp.ART_MASTER"
    article = pick("erp_stock", "erp.ART_MASTER", "c")
    outcome = engine.process("erp", article.key, article.value, NOW)
    assert outcome.outputs == []
    (failure,) = outcome.failures
    assert failure.error.reason == "bad_value" and "STK_BAL" in failure.ref


def test_an_article_deleted_before_its_stock_events_arrive_still_keys_them():
    events = recorded("erp_stock")
    articles = [r for r in events if r.topic.endswith("ART_MASTER")]
    stock = [r for r in events if r.topic.endswith("STK_BAL")]
    assert [r.op for r in articles] == ["c", "d", None]
    outputs = feed(new_engine(), articles + stock)  # the article's topic ran ahead
    assert [(type(o).__name__, o.key) for o in outputs] == [
        ("Upsert", "3769999999972@warehouse:W001"),
        ("Upsert", "3769999999972@warehouse:W001"),
        ("Tombstone", "3769999999972@warehouse:W001"),
    ]


def test_a_level_created_and_deleted_before_its_variant_arrives_ends_as_a_tombstone():
    events = recorded("shop_web_stock")
    levels = [r for r in events if r.topic.endswith("inventory_level")]
    variants = [r for r in events if r.topic.endswith("shop.variant")]
    assert [r.op for r in levels] == ["c", "u", "d", None]
    engine = new_engine()
    assert feed(engine, levels) == []  # all parked: the variant's topic lags behind
    outputs = feed(engine, variants)
    assert outputs == [Tombstone("unified.inventory", "3769999999989@web:1")]


@pytest.mark.parametrize(
    "scenario", ["pos_stock", "pos_sale", "shop_web_stock", "shop_order", "erp_stock"]
)
def test_replaying_recorded_events_publishes_nothing_new(scenario):
    engine = new_engine()
    events = recorded(scenario)
    if scenario == "shop_order":
        events = [pick("snapshot", "shop.variant", "r"), *events]
    published = feed(engine, events)
    assert published
    again = [engine.process(r.system, r.key, r.value, NOW) for r in events]  # Debezium's redelivery
    assert [o for outcome in again for o in outcome.outputs] == []
    assert sum(outcome.duplicates for outcome in again) == len(published)


def test_an_update_that_changes_nothing_canonical_publishes_nothing(engine):
    feed(engine, [pick("pos_stock", "pos.stock", "c")])
    update = pick("pos_stock", "pos.stock", "u").envelope
    update["after"]["qty"] = 12  # same quantity as created: only the log position moved
    outcome = engine.process(
        "pos", pick("pos_stock", "pos.stock", "u").key, json.dumps(update).encode(), NOW
    )
    assert (outcome.outputs, outcome.noops, outcome.skipped) == ([], 1, "noop")


def test_an_older_position_never_overwrites_a_newer_one(engine):
    create, update = pick("pos_stock", "pos.stock", "c"), pick("pos_stock", "pos.stock", "u")
    feed(engine, [update])
    outcome = engine.process("pos", create.key, create.value, NOW)  # arrives late
    assert (outcome.outputs, outcome.duplicates) == ([], 1)
