"""A fixed-clock, seeded write load on the three source databases, counted in row changes.

The offered rate does not follow the pipeline: each database gets its share of the rate and a
writer thread that does the next transaction as soon as the clock says it is due. When a database
cannot keep up, the shortfall shows in the achieved rate (it is never hidden by slowing down).

The mix, in row changes: POS 60 % (stock corrections of 1-3 rows on hot articles, till sales of a
ticket, its lines and their stock decrements in one transaction, loyalty member updates, and every
few seconds a bulk stocktake of 300 rows, at most a tenth of its changes), shop 25 % (web orders
with lines and inventory moves, customers created, updated and deleted), ERP 15 % (warehouse
moves, customer updates). Articles are
chosen with a Zipf-like skew: a few hot articles take most changes.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

SHARES = {"pos": 0.60, "shop": 0.25, "erp": 0.15}
BULK_ROWS = 300
BULK_EVERY = 5.0  # seconds between two bulk stocktakes at the POS, at high rates
BULK_SHARE = 0.1  # at most this share of the POS changes are bulk (so a tiny load has none)


@dataclass
class Writer:
    """One database's share of the load; ``changes`` counts row changes committed."""

    system: str
    rate: float
    changes: int = 0
    transactions: int = 0
    errors: int = 0
    late_s: float = 0.0  # how far behind its clock the writer was at the end


class Skewed:
    """Picks from ``items`` with a Zipf-like skew (seeded)."""

    def __init__(self, items: list[Any], rng: random.Random, exponent: float = 0.9) -> None:
        self.rng = rng
        self.items = rng.sample(items, len(items))
        self.weights = list(
            itertools.accumulate(1 / (r + 1) ** exponent for r in range(len(items)))
        )

    def pick(self) -> Any:
        return self.rng.choices(self.items, cum_weights=self.weights)[0]


class PosLoad:
    def __init__(self, conn: Any, rng: random.Random, rate: float) -> None:
        self.conn, self.rng = conn, rng
        self.bulk_every = max(BULK_EVERY, BULK_ROWS / (BULK_SHARE * rate))
        conn.execute("SET synchronous_commit = off")  # the load generator's own commits only
        rows = conn.execute("SELECT store_code, ean FROM pos.stock ORDER BY 1, 2").fetchall()
        self.rows = [(str(s), str(e)) for s, e in rows]
        self.hot = Skewed(self.rows, rng)
        cards = conn.execute("SELECT card_no FROM pos.loyalty_member ORDER BY 1").fetchall()
        self.cards = [str(c[0]) for c in cards]
        conn.commit()
        self.next_bulk = time.monotonic() + self.bulk_every

    def step(self) -> int:
        if time.monotonic() >= self.next_bulk:
            self.next_bulk += self.bulk_every
            return self._stocktake()
        roll = self.rng.random()
        if roll < 0.55:
            return self._correct()
        if roll < 0.95:
            return self._sell()
        return self._member()

    def _correct(self) -> int:
        rows = {self.hot.pick() for _ in range(self.rng.randint(1, 3))}
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.executemany(
                "UPDATE pos.stock SET qty = qty + %s WHERE store_code = %s AND ean = %s",
                [(self.rng.randint(-2, 3), store, ean) for store, ean in rows],
            )
        return len(rows)

    def _sell(self) -> int:
        store = self.hot.pick()[0]
        eans = {self.hot.pick()[1] for _ in range(self.rng.randint(1, 3))}
        now = datetime.now(UTC)
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute(
                "INSERT INTO pos.ticket (store_code, till_no, opened_at, closed_at, total, status)"
                " VALUES (%s, %s, %s, %s, %s, 'C') RETURNING ticket_id",
                (store, self.rng.randint(1, 6), now, now, Decimal("9.99") * len(eans)),
            )
            row = _returned(cur)
            cur.executemany(
                "INSERT INTO pos.ticket_line (ticket_id, line_no, ean, qty, unit_price)"
                " VALUES (%s, %s, %s, 1, 9.99)",
                [(row[0], n, ean) for n, ean in enumerate(sorted(eans), 1)],
            )
            cur.executemany(
                "UPDATE pos.stock SET qty = qty - 1 WHERE store_code = %s AND ean = %s",
                [(store, ean) for ean in sorted(eans)],
            )
        return 1 + 2 * len(eans)

    def _member(self) -> int:
        with self.conn.transaction():
            self.conn.execute(
                "UPDATE pos.loyalty_member SET optin_marketing = NOT coalesce(optin_marketing, false)"
                " WHERE card_no = %s",
                (self.rng.choice(self.cards),),
            )
        return 1

    def _stocktake(self) -> int:
        rows = self.rng.sample(self.rows, min(BULK_ROWS, len(self.rows)))
        counted = datetime.now(UTC).replace(tzinfo=None)
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.executemany(
                "UPDATE pos.stock SET qty = qty + %s, last_count_at = %s"
                " WHERE store_code = %s AND ean = %s",
                [(self.rng.randint(-1, 1), counted, store, ean) for store, ean in rows],
            )
        return len(rows)


class ShopLoad:
    def __init__(self, conn: Any, rng: random.Random, rate: float) -> None:
        self.conn, self.rng = conn, rng
        conn.execute("SET synchronous_commit = off")
        variants = conn.execute("SELECT id FROM shop.variant ORDER BY id").fetchall()
        self.variants = Skewed([int(v[0]) for v in variants], rng)
        customers = conn.execute("SELECT id FROM shop.customer ORDER BY id").fetchall()
        self.customers = [int(c[0]) for c in customers]
        self.created: list[int] = []  # customers this load made: the ones it deletes
        conn.commit()

    def step(self) -> int:
        roll = self.rng.random()
        if roll < 0.6:
            return self._order()
        if roll < 0.75:
            return self._new_customer()
        if roll < 0.9 and self.created:
            return self._delete_customer()
        return self._update_customer()

    def _order(self) -> int:
        now = datetime.now(UTC)
        variants = sorted({self.variants.pick() for _ in range(self.rng.randint(1, 3))})
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute(
                "INSERT INTO shop.orders (customer_id, status, created_at, updated_at, total)"
                " VALUES (%s, 'paid', %s, %s, 0) RETURNING id",
                (self.rng.choice(self.customers), now, now),
            )
            row = _returned(cur)
            cur.executemany(
                "INSERT INTO shop.order_line (order_id, line_no, variant_id, quantity, price)"
                " SELECT %s, %s, id, 1, price FROM shop.variant WHERE id = %s",
                [(row[0], n, v) for n, v in enumerate(variants, 1)],
            )
            cur.executemany(
                "UPDATE shop.inventory_level SET available = available - 1,"
                " committed = committed + 1, updated_at = %s WHERE variant_id = %s",
                [(now, v) for v in variants],
            )
        return 1 + 2 * len(variants)

    def _new_customer(self) -> int:
        now = datetime.now(UTC)
        n = self.rng.randrange(10**9)
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute(
                "INSERT INTO shop.customer (email, first_name, last_name, phone, accepts_marketing,"
                " created_at, updated_at) VALUES (%s, 'Bench', 'Client', '06 12 34 56 78', false,"
                " %s, %s) RETURNING id",
                (f"bench{n}@example.fr", now, now),
            )
            row = _returned(cur)
        self.created.append(int(row[0]))
        return 1

    def _delete_customer(self) -> int:
        with self.conn.transaction():
            self.conn.execute("DELETE FROM shop.customer WHERE id = %s", (self.created.pop(0),))
        return 1

    def _update_customer(self) -> int:
        with self.conn.transaction():
            self.conn.execute(
                "UPDATE shop.customer SET accepts_marketing = NOT coalesce(accepts_marketing, false),"
                " updated_at = %s WHERE id = %s",
                (datetime.now(UTC), self.rng.choice(self.customers)),
            )
        return 1


class ErpLoad:
    def __init__(self, conn: Any, rng: random.Random, rate: float) -> None:
        self.conn, self.rng = conn, rng
        with conn.cursor() as cur:
            cur.execute("SELECT WHS_CODE, ART_NO FROM STK_BAL ORDER BY 1, 2")
            self.rows = Skewed([(str(w), str(a)) for w, a in cur.fetchall()], rng)
            cur.execute("SELECT CUST_NO FROM CUST_MAST ORDER BY 1")
            self.customers = [c[0] for c in cur.fetchall()]
        conn.commit()

    def step(self) -> int:
        with self.conn.cursor() as cur:
            if self.rng.random() < 0.9:
                whs, art = self.rows.pick()
                cur.execute(
                    "UPDATE STK_BAL SET QTY_OH = GREATEST(QTY_OH + %s, 0), LAST_UPD = %s"
                    " WHERE WHS_CODE = %s AND ART_NO = %s",
                    (Decimal(self.rng.randint(-8, 8)) / 4, _now_s(), whs, art),
                )
            else:
                cur.execute(
                    "UPDATE CUST_MAST SET UPD_TS = %s WHERE CUST_NO = %s",
                    (_now_s(), self.rng.choice(self.customers)),
                )
        self.conn.commit()
        return 1


def _returned(cur: Any) -> Any:
    """The row an ``INSERT … RETURNING`` gave back."""
    row = cur.fetchone()
    if row is None:
        raise RuntimeError("INSERT ... RETURNING returned no row")
    return row


def _now_s() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


LOADS: dict[str, Callable[[Any, random.Random, float], Any]] = {
    "pos": PosLoad,
    "shop": ShopLoad,
    "erp": ErpLoad,
}


@dataclass
class FixedClockLoad:
    """Writers for the three databases at ``rate`` row changes/s in all, until ``stop()``."""

    connect: Callable[[str], Any]  # system → an open DB-API connection
    rate: float
    seed: int
    writers: dict[str, Writer] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for n, (system, share) in enumerate(SHARES.items()):
            writer = Writer(system, self.rate * share)
            self.writers[system] = writer
            thread = threading.Thread(target=self._run, args=(writer, self.seed + n), daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def changes(self) -> int:
        return sum(w.changes for w in self.writers.values())

    def _run(self, writer: Writer, seed: int) -> None:
        conn = self.connect(writer.system)
        try:
            load = LOADS[writer.system](conn, random.Random(seed), writer.rate)
            started = time.monotonic()
            while not self._stop.is_set():
                due = writer.rate * (time.monotonic() - started)
                if writer.changes >= due:
                    time.sleep(min(0.005, (writer.changes - due + 1) / writer.rate))
                    continue
                try:
                    writer.changes += load.step()
                    writer.transactions += 1
                except Exception:
                    writer.errors += 1
                    conn.rollback()
                    if writer.errors > 100:
                        raise
            writer.late_s = max(0.0, (writer.rate * (time.monotonic() - started) - writer.changes)
                                / writer.rate)  # fmt: skip
        finally:
            conn.close()


@contextmanager
def running(load: FixedClockLoad) -> Iterator[FixedClockLoad]:
    load.start()
    try:
        yield load
    finally:
        load.stop()
