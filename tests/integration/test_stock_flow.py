"""Available-to-sell on the real stack: source changes reach the per-location and per-channel
figures, with their explanation, and stock alerts fire and resolve."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from stdnum import ean as ean_check

from hub.stock import load_network

WEB = "group:web-fulfilment"


def new_gtin(body: str) -> str:
    """A valid EAN-13 the demo data does not hold (``body``: 12 digits)."""
    return body + ean_check.calc_check_digit(body)


def dec(value: Any) -> Decimal:
    return Decimal(str(value))


def till_sale(stack: Any, store: str, gtin: str, qty: int) -> None:
    """A ticket, its line and the stock decrement, in one transaction, as a till writes them."""
    now = datetime.now(UTC)
    stack.sql(
        "pos",
        "WITH t AS (INSERT INTO pos.ticket (store_code, till_no, opened_at, closed_at, total, status)"
        " VALUES (%s, 1, %s, %s, 9.90, 'C') RETURNING ticket_id),"
        " l AS (INSERT INTO pos.ticket_line (ticket_id, line_no, ean, qty, unit_price)"
        " SELECT ticket_id, 1, %s, %s, 9.90 FROM t)"
        " UPDATE pos.stock SET qty = qty - %s WHERE store_code = %s AND ean = %s",
        (store, now, now, gtin, qty, qty, store, gtin),
    )


def hub(stack: Any, *args: str) -> Any:
    """Run a hub command against the test stack; its JSON output."""
    done = subprocess.run([sys.executable, "-m", "hub", *args], env=stack.env, capture_output=True,
                          timeout=60, check=True)  # fmt: skip
    return orjson.loads(done.stdout)


def explained(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["location_id"]: entry for entry in record["explanation"]}


def test_a_till_sale_lowers_the_stores_and_the_web_groups_availability(stack, worker, availability):
    gtin = new_gtin("376999000001")
    for store, qty in (("PAR01", 6), ("LYO01", 3)):  # both ship from store; 2 kept for walk-ins
        stack.sql("pos", "INSERT INTO pos.stock (store_code, ean, qty) VALUES (%s, %s, %s)",
                  (store, gtin, qty))  # fmt: skip
    web = availability.wait_for(f"{gtin}@{WEB}", lambda v: v is not None and v["locations"] == 2)
    assert dec(web["available"]) == (6 - 2) + (3 - 2)
    till_sale(stack, "PAR01", gtin, 1)
    own = availability.wait_for(f"{gtin}@store:PAR01", lambda v: v and dec(v["on_hand"]) == 5)
    assert (
        dec(own["available"]) == 5 and own["scope"] == "location" and own["source_system"] == "pos"
    )
    web = availability.wait_for(
        f"{gtin}@{WEB}", lambda v: v and dec(explained(v)["store:PAR01"]["on_hand"]) == 5
    )
    assert dec(web["available"]) == (5 - 2) + (3 - 2)
    assert (web["locations"], web["contributing"], web["channel"]) == (2, 2, "web")
    par = explained(web)["store:PAR01"]
    assert (dec(par["kept_back"]), dec(par["contributes"]), par["source_system"]) == (2, 3, "pos")
    network = load_network()
    assert web["rule"] == {"network_version": network.version, "network_digest": network.digest,
                           "group": "web-fulfilment", "channel": "web",
                           "safety_rules": ["walk-in-reserve"]}  # fmt: skip
    collect = availability.wait_for(f"{gtin}@group:click-and-collect:PAR01",
                                    lambda v: v and dec(v["available"]) == 5)  # fmt: skip
    assert collect["channel"] == "click-and-collect"
    # The same figure, asked as an operator would: every number behind it.
    asked = hub(stack, "stock", "explain", gtin, "--group", "web-fulfilment", "--json")
    assert asked[f"{gtin}@{WEB}"]["explanation"] == web["explanation"]
    shown = subprocess.run([sys.executable, "-m", "hub", "stock", "explain", gtin], env=stack.env,
                           capture_output=True, text=True, timeout=60, check=True).stdout  # fmt: skip
    assert "4 PCE available at group web-fulfilment" in " ".join(shown.split())
    assert "store:PAR01" in shown and "walk-in-reserve" in shown


def test_an_erp_allocation_lowers_the_warehouses_availability(stack, worker, availability):
    gtin = new_gtin("376999000002")
    stack.sql("erp", "INSERT INTO ART_MASTER VALUES ('A999000002', 'TEST ARTICLE', %s, 'PCE', 'A')",
              (gtin,))  # fmt: skip
    stack.sql("erp", "INSERT INTO STK_BAL VALUES ('W001', 'A999000002', 10, 0, 2, NULL)")
    key = f"{gtin}@warehouse:W001"
    assert dec(availability.wait_for(key, lambda v: v is not None)["available"]) == 10 - 2
    stack.sql(
        "erp",
        "UPDATE STK_BAL SET QTY_ALLOC = 3.5 WHERE WHS_CODE = 'W001' AND ART_NO = 'A999000002'",
    )
    record = availability.wait_for(key, lambda v: v and dec(v["reserved"]) == dec("3.5"))
    assert dec(record["available"]) == 10 - dec("3.5") - 2
    [source] = record["explanation"]
    assert (source["source_system"], dec(source["safety_stock"])) == ("erp", 2)
    web = availability.wait_for(f"{gtin}@{WEB}", lambda v: v and dec(v["reserved"]) == dec("3.5"))
    assert dec(web["available"]) == dec("4.5")


def test_sold_out_everywhere_raises_out_of_stock_and_a_delivery_brings_it_back(
    stack, worker, availability, alerts
):
    gtin = new_gtin("376999000003")
    stack.sql(
        "pos", "INSERT INTO pos.stock (store_code, ean, qty) VALUES ('PAR02', %s, 3)", (gtin,)
    )
    availability.wait_for(f"{gtin}@{WEB}", lambda v: v is not None)
    till_sale(stack, "PAR02", gtin, 3)
    online = f"out-of-stock-online:{gtin}@{WEB}"
    fired = alerts.wait_for(online, lambda v: v is not None and v["status"] == "firing")
    assert fired["event"] == "out_of_stock" and fired["channel"] == "web"
    assert dec(fired["availability"]["available"]) == 0
    store = alerts.wait_for(f"store-out-of-stock:{gtin}@store:PAR02", lambda v: v is not None)
    assert store["status"] == "firing"
    stack.sql("pos", "UPDATE pos.stock SET qty = qty + 24 WHERE store_code = 'PAR02' AND ean = %s",
              (gtin,))  # fmt: skip
    back = alerts.wait_for(online, lambda v: v is not None and v["status"] == "resolved")
    assert back["event"] == "back_in_stock" and back["since"] == fired["since"]
    assert dec(back["availability"]["available"]) == 24 - 2
    assert back["transition_id"] != fired["transition_id"]
    assert [v["status"] for v in alerts.history[online]] == ["firing", "resolved"]
