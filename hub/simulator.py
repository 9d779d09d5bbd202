"""A small simulator of the three systems: till sales, web orders, warehouse moves, sign-ups.

A till sale is one transaction, as a till does it: insert the ticket and its lines, decrement
``pos.stock.qty`` for each line; now and then a store receives a delivery. A web order moves stock
from available to committed; its fulfilment releases it. The ERP picks and receives in decimals.
Now and then a loyalty member opens a web shop account, spelling themselves their own way: the
hub makes them one golden customer.
"""

from __future__ import annotations

import itertools
import random
import signal
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
from rich.console import Console

from hub.settings import HubSettings


@dataclass(frozen=True)
class Sale:
    ticket_id: int
    store_code: str
    lines: list[tuple[str, int, Decimal]]  # ean, qty, unit price


def price_of(ean: str) -> Decimal:
    """A stable shelf price per article (the demo has no price list)."""
    return Decimal(int(ean[-5:]) % 9000 + 199) / 100


class SalesSimulator:
    def __init__(self, conn: psycopg.Connection[tuple[object, ...]], seed: int) -> None:
        self.conn = conn
        self.rng = random.Random(seed)
        rows = conn.execute("SELECT DISTINCT store_code FROM pos.stock ORDER BY 1").fetchall()
        self.stores = [str(r[0]) for r in rows]
        rows = conn.execute("SELECT DISTINCT ean FROM pos.stock ORDER BY 1").fetchall()
        self.eans = [str(r[0]) for r in rows]
        rows = conn.execute("SELECT card_no FROM pos.loyalty_member ORDER BY 1").fetchall()
        self.cards = [str(r[0]) for r in rows]
        conn.commit()
        if not self.stores or not self.eans:
            raise RuntimeError("pos.stock is empty: run 'hub stack up' first (it loads demo data)")
        # Zipf-like popularity: a few hot articles sell most, every article sells now and then.
        order = self.rng.sample(self.eans, len(self.eans))
        self._ranked = order
        self._weights = list(
            itertools.accumulate(1 / (rank + 1) ** 0.9 for rank in range(len(order)))
        )

    def _article(self) -> str:
        return self.rng.choices(self._ranked, cum_weights=self._weights)[0]

    def member(self) -> tuple[str, str, str | None, str | None]:
        """A loyalty member with an email: card, full name, email, phone."""
        row = self.conn.execute(
            "SELECT card_no, full_name, email, phone FROM pos.loyalty_member"
            " WHERE email IS NOT NULL ORDER BY card_no OFFSET %s LIMIT 1",
            (self.rng.randrange(max(1, len(self.cards) - 1)),),
        ).fetchone()
        self.conn.commit()
        if row is None:
            raise RuntimeError("no loyalty member with an email: run 'hub stack up' first")
        card, name, email, phone = (str(v) if v is not None else None for v in row)
        return card or "", name or "", email, phone

    def sell(self) -> Sale:
        """Ring up one sale in one transaction; returns what was sold."""
        store = self.rng.choice(self.stores)
        chosen: dict[str, int] = {}
        for _ in range(self.rng.randint(1, 4)):
            ean = self._article()
            chosen[ean] = chosen.get(ean, 0) + self.rng.randint(1, 3)
        return self._ring_up(store, chosen)

    def sell_out(self) -> Sale:
        """A customer takes every unit a store has of a popular article (its out-of-stock alert
        fires; a later delivery of what the store has least of brings it back)."""
        store = self.rng.choice(self.stores)
        with self.conn.transaction():  # committed before the sale's own transaction
            rows = self.conn.execute(
                "SELECT ean, qty FROM pos.stock WHERE store_code = %s AND ean = ANY(%s) AND qty > 0",
                (store, self._ranked[:20]),
            ).fetchall()
        if not rows:
            return self.sell()
        ean, qty = min((str(e), int(str(q))) for e, q in rows)
        return self._ring_up(store, {ean: qty})

    def _ring_up(self, store: str, chosen: dict[str, int]) -> Sale:
        lines = [(ean, qty, price_of(ean)) for ean, qty in chosen.items()]
        total = sum((qty * price for _, qty, price in lines), Decimal("0"))
        now = datetime.now(UTC)
        card = self.rng.choice(self.cards) if self.cards and self.rng.random() < 0.4 else None
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute(
                "INSERT INTO pos.ticket (store_code, till_no, loyalty_card, opened_at, closed_at, total,"
                " status) VALUES (%s, %s, %s, %s, %s, %s, 'C') RETURNING ticket_id",
                (store, self.rng.randint(1, 6), card, now, now, total),
            )
            row = cur.fetchone()
            if row is None:
                raise RuntimeError("INSERT ... RETURNING ticket_id returned no row")
            ticket_id = int(str(row[0]))
            cur.executemany(
                "INSERT INTO pos.ticket_line (ticket_id, line_no, ean, qty, unit_price)"
                " VALUES (%s, %s, %s, %s, %s)",
                [(ticket_id, n, ean, qty, price) for n, (ean, qty, price) in enumerate(lines, 1)],
            )
            cur.executemany(
                "UPDATE pos.stock SET qty = qty - %s WHERE store_code = %s AND ean = %s",
                [(qty, store, ean) for ean, qty, _ in lines],
            )
        return Sale(ticket_id, store, lines)

    def deliver(self) -> tuple[str, str, int]:
        """A delivery to one store of the article it has least of; ``last_count_at`` moves."""
        store = self.rng.choice(self.stores)
        with self.conn.transaction():
            row = self.conn.execute(
                "SELECT ean, qty FROM pos.stock WHERE store_code = %s ORDER BY qty, ean LIMIT 1",
                (store,),
            ).fetchone()
            if row is None:
                raise RuntimeError(f"store {store} stocks nothing")
            ean, low = str(row[0]), int(str(row[1]))
            qty = max(24, 24 - low)
            self.conn.execute(
                "UPDATE pos.stock SET qty = qty + %s, last_count_at = %s WHERE store_code = %s AND ean = %s",
                (qty, datetime.now(UTC).replace(tzinfo=None), store, ean),
            )
        return store, ean, qty


class WebShopSimulator:
    """Web orders: an order and its lines, stock moved from available to committed; fulfilments."""

    def __init__(self, conn: psycopg.Connection[tuple[object, ...]], seed: int) -> None:
        self.conn = conn
        self.rng = random.Random(seed + 1)
        self.variants = [
            int(str(r[0])) for r in conn.execute("SELECT id FROM shop.variant ORDER BY id")
        ]
        self.customers = [
            int(str(r[0])) for r in conn.execute("SELECT id FROM shop.customer ORDER BY id")
        ]
        conn.commit()

    def order(self) -> str:
        now = datetime.now(UTC)
        lines = [
            (self.rng.choice(self.variants), self.rng.randint(1, 2))
            for _ in range(self.rng.randint(1, 3))
        ]
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute(
                "INSERT INTO shop.orders (customer_id, status, created_at, updated_at, total)"
                " VALUES (%s, 'paid', %s, %s, 0) RETURNING id",
                (self.rng.choice(self.customers), now, now),
            )
            row = cur.fetchone()
            if row is None:
                raise RuntimeError("INSERT ... RETURNING id returned no row")
            order_id = int(str(row[0]))
            for line_no, (variant, qty) in enumerate(lines, 1):
                cur.execute(
                    "INSERT INTO shop.order_line (order_id, line_no, variant_id, quantity, price)"
                    " SELECT %s, %s, id, %s, price FROM shop.variant WHERE id = %s",
                    (order_id, line_no, qty, variant),
                )
                cur.execute(
                    "UPDATE shop.inventory_level SET available = available - %s, committed = committed + %s,"
                    " updated_at = %s WHERE variant_id = %s",
                    (qty, qty, now, variant),
                )
            cur.execute(
                "UPDATE shop.orders SET total = (SELECT sum(quantity * price) FROM shop.order_line"
                " WHERE order_id = %s) WHERE id = %s",
                (order_id, order_id),
            )
        return f"web order #{order_id}: " + ", ".join(f"variant {v} x{q}" for v, q in lines)

    def sign_up(self, member: tuple[str, str, str | None, str | None]) -> str:
        """A loyalty member opens a web account: their email in another case, their name in two
        fields, their phone or none."""
        card, name, email, phone = member
        given, _, family = name.partition(" ")
        typed = (email or "").upper() if self.rng.random() < 0.5 else (email or "").capitalize()
        now = datetime.now(UTC)
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute(
                "INSERT INTO shop.customer (email, first_name, last_name, phone, accepts_marketing,"
                " created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (typed, given, family, phone if self.rng.random() < 0.5 else None,
                 self.rng.random() < 0.5, now, now),
            )  # fmt: skip
            row = cur.fetchone()
        customer = int(str(row[0])) if row else 0
        self.customers.append(customer)
        return f"web sign-up: shop:{customer} {given} {family}, loyalty card pos:{card}"

    def fulfil(self) -> str | None:
        """Ship the oldest paid order: committed stock leaves the warehouse."""
        now = datetime.now(UTC)
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute(
                "SELECT id FROM shop.orders WHERE status = 'paid' ORDER BY id LIMIT 1 FOR UPDATE"
            )
            row = cur.fetchone()
            if row is None:
                return None
            order_id = int(str(row[0]))
            cur.execute("UPDATE shop.orders SET status = 'fulfilled', updated_at = %s WHERE id = %s",
                        (now, order_id))  # fmt: skip
            cur.execute(
                "UPDATE shop.inventory_level il SET committed = greatest(il.committed - ol.quantity, 0),"
                " updated_at = %s FROM shop.order_line ol"
                " WHERE ol.order_id = %s AND ol.variant_id = il.variant_id",
                (now, order_id),
            )
        return f"web order #{order_id} fulfilled"


class ErpSimulator:
    """Warehouse movements in the ERP: picking for stores, receipts from suppliers."""

    def __init__(self, conn: Any, seed: int) -> None:
        self.conn = conn
        self.rng = random.Random(seed + 2)
        with conn.cursor() as cur:
            cur.execute("SELECT WHS_CODE, ART_NO FROM STK_BAL ORDER BY 1, 2")
            self.rows = [(str(w), str(a)) for w, a in cur.fetchall()]
        conn.commit()

    def move(self) -> str:
        whs, art = self.rng.choice(self.rows)
        qty = (
            Decimal(self.rng.randint(-240, 120)) / 4
        )  # picking (negative) or receipt, in 0.25 steps
        with self.conn.cursor() as cur:
            cur.execute(
                "UPDATE STK_BAL SET QTY_OH = GREATEST(QTY_OH + %s, 0), LAST_UPD = %s"
                " WHERE WHS_CODE = %s AND ART_NO = %s",
                (qty, datetime.now(UTC).replace(tzinfo=None, microsecond=0), whs, art),
            )
        self.conn.commit()
        return f"erp {whs} {art} {qty:+}"


def run_sales(settings: HubSettings, rate: float, count: int, seed: int) -> None:
    """Till sales, web orders and warehouse moves at ``rate`` actions/s, until ``count`` actions
    (0: until SIGINT/SIGTERM)."""
    from hub.stack.manager import Stack

    console = Console(stderr=True, highlight=False)
    stack = Stack(settings, console)
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    with stack.open("pos") as pos, stack.open("shop") as shop, stack.open("erp") as erp:
        tills, web, warehouses = (
            SalesSimulator(pos, seed),
            WebShopSimulator(shop, seed),
            ErpSimulator(erp, seed),
        )
        done, next_at = 0, time.monotonic()
        while not stopping and (count == 0 or done < count):
            roll = tills.rng.random()
            if done % 25 == 3:  # now and then an article runs out in a store: alerts to see
                sale = tills.sell_out()
                items = ", ".join(f"{ean} x{qty}" for ean, qty, _ in sale.lines)
                console.print(f"sale #{sale.ticket_id:<6} {sale.store_code}  {items} (sold out)")
            elif done % 40 == 17:  # a loyalty member signs up on the web: one golden customer
                console.print(web.sign_up(tills.member()))
            elif roll < 0.5:
                sale = tills.sell()
                items = ", ".join(f"{ean} x{qty}" for ean, qty, _ in sale.lines)
                console.print(f"sale #{sale.ticket_id:<6} {sale.store_code}  {items}")
            elif roll < 0.6:
                store, ean, qty = tills.deliver()
                console.print(f"delivery  {store} {ean} +{qty}")
            elif roll < 0.75:
                console.print(web.order())
            elif roll < 0.85:
                console.print(web.fulfil() or "no paid web order to fulfil")
            else:
                console.print(warehouses.move())
            done += 1
            next_at += 1 / rate
            time.sleep(max(0.0, next_at - time.monotonic()))
    console.print(f"simulator stopped after {done} actions")
