"""Availability written back into the shop's database by the JDBC sink connector
(connectors/sinks/shop-availability.yaml), and never captured back into the pipeline."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest
import requests
from confluent_kafka.admin import AdminClient

from tests.integration.harness import Load, wait_until
from tests.integration.test_stock_flow import new_gtin, till_sale

pytestmark = pytest.mark.integration

WEB = "web-fulfilment"


def row(stack: Any, gtin: str, group: str = WEB) -> tuple[Decimal, str] | None:
    found = stack.sql("shop", "SELECT available, source_position FROM shop.channel_availability"
                      " WHERE gtin = %s AND group_name = %s", (gtin, group))  # fmt: skip
    return (Decimal(found[0][0]), str(found[0][1])) if found else None


def shop_events_in(stack: Any) -> float:
    """The worker's count of raw change events read from the shop (hub_events_in)."""
    text = requests.get(f"http://127.0.0.1:{stack.env['HUB_WORKER_WEB_PORT']}/metrics",
                        timeout=5).text  # fmt: skip
    wanted = 'hub_events_in_total{system="shop"}'
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(wanted))


def test_a_till_sale_reaches_the_shops_availability_table(stack, worker, availability):
    gtin = new_gtin("376999200001")
    for store, qty in (("PAR01", 6), ("LYO01", 3)):  # both ship from store; 2 kept for walk-ins
        stack.sql("pos", "INSERT INTO pos.stock (store_code, ean, qty) VALUES (%s, %s, %s)",
                  (store, gtin, qty))  # fmt: skip
    wait_until(lambda: (row(stack, gtin) or (None,))[0] == (6 - 2) + (3 - 2),
               "the web group's figure in shop.channel_availability",
               explain=lambda: str(row(stack, gtin)))  # fmt: skip
    _, before = row(stack, gtin)  # type: ignore[misc]
    till_sale(stack, "PAR01", gtin, 1)
    wait_until(lambda: (row(stack, gtin) or (None,))[0] == (5 - 2) + (3 - 2),
               "the sale in shop.channel_availability", explain=lambda: str(row(stack, gtin)))  # fmt: skip
    _, after = row(stack, gtin)  # type: ignore[misc]
    assert after > before  # the position of the change behind the figure
    # Every group figure is written back as the topic has it.
    figure = availability.wait_for(f"{gtin}@group:stores", lambda v: v is not None)
    wait_until(lambda: (row(stack, gtin, "stores") or (None,))[0] == Decimal(figure["available"]),
               "the stores group's figure", explain=lambda: str(row(stack, gtin, "stores")))  # fmt: skip


def test_the_hub_never_captures_its_own_writes_back(stack, worker):
    admin = AdminClient({"bootstrap.servers": stack.endpoints["kafka_bootstrap"]})
    # A while of load: the sink writes figures into the shop all along.
    load = Load(stack, actions=160, rate=40, seed=3)
    load.start()
    load.join(180)
    assert load.done == 160, dict(load.errors)
    written = stack.sql("shop", "SELECT count(*) FROM shop.channel_availability")[0][0]
    assert written > 0
    # Quiet sources, then only the sink writes: every change the shop's connector captures would
    # be an echo. A till sale moves figures (the sink writes them into the shop) and no shop event.
    gtin = new_gtin("376999200002")
    stack.sql(
        "pos", "INSERT INTO pos.stock (store_code, ean, qty) VALUES ('PAR01', %s, 9)", (gtin,)
    )
    wait_until(lambda: row(stack, gtin) is not None, "the new article's row in the shop")
    time.sleep(3)
    seen = shop_events_in(stack)
    for n in range(5):
        till_sale(stack, "PAR01", gtin, 1)
        wait_until(lambda n=n: (row(stack, gtin) or (None,))[0] == 9 - 2 - (n + 1),
                   "the sale written back")  # fmt: skip
    time.sleep(5)  # what the connector would have captured had time to come
    assert shop_events_in(stack) == seen, "the shop's connector captured the sink's writes"
    topics = admin.list_topics(timeout=10).topics
    assert not [name for name in topics if "channel_availability" in name]
