"""A small sales simulator for the POS database: each sale is one transaction, as a till does it.

Insert the ticket and its lines, decrement ``pos.stock.qty`` for each line; now and then a store
receives a delivery (stock count goes up, ``last_count_at`` moves).
"""

from __future__ import annotations

import itertools
import random
import signal
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

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

    def sell(self) -> Sale:
        """Ring up one sale in one transaction; returns what was sold."""
        store = self.rng.choice(self.stores)
        chosen: dict[str, int] = {}
        for _ in range(self.rng.randint(1, 4)):
            ean = self._article()
            chosen[ean] = chosen.get(ean, 0) + self.rng.randint(1, 3)
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


def run_sales(settings: HubSettings, rate: float, count: int, seed: int) -> None:
    """Sell at ``rate`` sales/s until ``count`` sales (0: until SIGINT/SIGTERM)."""
    from hub.stack.manager import Stack

    console = Console(stderr=True, highlight=False)
    dsn = Stack(settings, console).env()["sources"]["pos"]
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    with psycopg.connect(dsn) as conn:
        sim = SalesSimulator(conn, seed)
        sold, next_at = 0, time.monotonic()
        while not stopping and (count == 0 or sold < count):
            if sim.rng.random() < 0.25:
                store, ean, qty = sim.deliver()
                console.print(f"delivery  {store} {ean} +{qty}")
            sale = sim.sell()
            sold += 1
            items = ", ".join(f"{ean} x{qty}" for ean, qty, _ in sale.lines)
            console.print(f"sale #{sale.ticket_id:<6} {sale.store_code}  {items}")
            next_at += 1 / rate
            time.sleep(max(0.0, next_at - time.monotonic()))
    console.print(f"simulator stopped after {sold} sales")
