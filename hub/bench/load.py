"""A fixed-clock, seeded write load on the three source databases, counted in row changes.

The offered rate does not follow the pipeline: each database gets its share of the rate, split
over writer processes (one per ``PER_PROCESS`` changes/s of its share), each doing its next
transaction as soon as its clock says it is due. When a database cannot keep up, the shortfall
shows in the achieved rate and in each writer's ``late_s`` (it is never hidden by slowing down).

Processes, not threads: the writers' own Python then never queues behind one lock. A writer
behind its clock does up to ``ROUND`` due business transactions in one round trip: each source
takes them as one statement (data-modifying CTEs, arrays for their rows; at the shop, new
customers in a second one), so one source transaction holds several business transactions,
all their rows. A statement costs far more than a row here (0.44 ms for one row, 0.08 ms per row
at ten): one statement per business transaction capped the load at ~4,800 changes/s on this
machine, below the pipeline's rates.

The mix, in row changes: POS 60 % (stock corrections of 1-3 rows on hot articles, till sales of a
ticket, its lines and their stock decrements in one transaction, loyalty member updates, and every
few seconds a bulk stocktake of 300 rows, at most a tenth of its changes), shop 25 % (web orders
with lines and inventory moves, customers created, updated and deleted), ERP 15 % (warehouse
moves of 1-3 stock rows, customer updates). Articles are chosen with a Zipf-like skew: a few hot
articles take most changes.
"""

from __future__ import annotations

import functools
import itertools
import math
import multiprocessing
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

SHARES = {"pos": 0.60, "shop": 0.25, "erp": 0.15}
BULK_ROWS = 300
BULK_EVERY = 5.0  # seconds between two bulk stocktakes at the POS, at high rates
BULK_SHARE = 0.1  # at most this share of the POS changes are bulk (so a tiny load has none)
ROUND = 16  # business transactions at most per round trip, when a writer is behind its clock


@dataclass
class Writer:
    """One database's share of the load; ``changes`` counts row changes committed."""

    system: str
    rate: float
    changes: int = 0
    transactions: int = 0
    errors: int = 0
    late_s: float = 0.0  # how far behind its clock its slowest process was at the end
    processes: int = 0


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
        self.next_bulk = time.monotonic() + self.bulk_every

    def round(self, count: int) -> int:
        """``count`` business transactions (stock corrections of 1-3 hot rows, till sales of 1-3
        articles, loyalty member updates) as one statement, or a bulk stocktake when one is due.
        Returns the rows changed."""
        if time.monotonic() >= self.next_bulk:
            self.next_bulk += self.bulk_every
            return self._stocktake()
        stock: dict[tuple[str, str], int] = {}
        tickets: list[tuple[str, int, int]] = []  # store, till, lines
        lines: list[tuple[int, int, str]] = []  # ticket (1-based in this round), line, ean
        members: set[str] = set()
        for _ in range(count):
            roll = self.rng.random()
            if roll < 0.55:  # a correction
                for row in {self.hot.pick() for _ in range(self.rng.randint(1, 3))}:
                    stock[row] = stock.get(row, 0) + self.rng.randint(-2, 3)
            elif roll < 0.95:  # a sale
                store, till = self.hot.pick()[0], self.rng.randint(1, 6)
                eans = sorted({self.hot.pick()[1] for _ in range(self.rng.randint(1, 3))})
                tickets.append((store, till, len(eans)))
                for n, ean in enumerate(eans, 1):
                    lines.append((len(tickets), n, ean))
                    stock[(store, ean)] = stock.get((store, ean), 0) - 1
            else:
                members.add(self.rng.choice(self.cards))
        now, rows = datetime.now(UTC), sorted(stock)
        self.conn.execute(
            "WITH ids AS MATERIALIZED (SELECT k, nextval(pg_get_serial_sequence('pos.ticket',"
            " 'ticket_id')) AS id FROM generate_series(1, %s) AS k),"
            " t AS (INSERT INTO pos.ticket (ticket_id, store_code, till_no, opened_at, closed_at,"
            " total, status) SELECT ids.id, u.store, u.till, %s, %s, 9.99 * u.lines, 'C'"
            " FROM unnest(%s::text[], %s::int[], %s::int[]) WITH ORDINALITY AS u(store, till,"
            " lines, k) JOIN ids USING (k)),"
            " l AS (INSERT INTO pos.ticket_line (ticket_id, line_no, ean, qty, unit_price)"
            " SELECT ids.id, u.n, u.ean, 1, 9.99 FROM unnest(%s::int[], %s::int[], %s::text[])"
            " AS u(k, n, ean) JOIN ids USING (k)),"
            " m AS (UPDATE pos.loyalty_member SET optin_marketing ="
            " NOT coalesce(optin_marketing, false) WHERE card_no = ANY(%s::text[]))"
            " UPDATE pos.stock AS s SET qty = s.qty + d.delta"
            " FROM unnest(%s::text[], %s::text[], %s::int[]) AS d(store, ean, delta)"
            " WHERE s.store_code = d.store AND s.ean = d.ean",
            (len(tickets), now, now, [t[0] for t in tickets], [t[1] for t in tickets],
             [t[2] for t in tickets],
             [line[0] for line in lines], [line[1] for line in lines], [line[2] for line in lines],
             sorted(members), [r[0] for r in rows], [r[1] for r in rows], [stock[r] for r in rows]),
        )  # fmt: skip
        return len(tickets) + len(lines) + len(members) + len(rows)

    def _stocktake(self) -> int:
        rows = sorted(self.rng.sample(self.rows, min(BULK_ROWS, len(self.rows))))
        counted = datetime.now(UTC).replace(tzinfo=None)
        self.conn.execute(
            "UPDATE pos.stock AS s SET qty = s.qty + d.delta, last_count_at = %s"
            " FROM unnest(%s::text[], %s::text[], %s::int[]) AS d(store, ean, delta)"
            " WHERE s.store_code = d.store AND s.ean = d.ean",
            (counted, [r[0] for r in rows], [r[1] for r in rows],
             [self.rng.randint(-1, 1) for _ in rows]),
        )  # fmt: skip
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

    def round(self, count: int) -> int:
        """``count`` business transactions (web orders of 1-3 variants with their inventory
        moves, customers created, deleted and updated): the new customers in one statement, the
        rest in another. Returns the rows changed."""
        orders: list[int] = []  # customer
        lines: list[tuple[int, int, int]] = []  # order (1-based in this round), line, variant
        moved: dict[int, int] = {}  # variant: units
        new = deleted = 0
        updated: set[int] = set()
        for _ in range(count):
            roll = self.rng.random()
            if roll < 0.6:
                orders.append(self.rng.choice(self.customers))
                variants = sorted({self.variants.pick() for _ in range(self.rng.randint(1, 3))})
                for n, variant in enumerate(variants, 1):
                    lines.append((len(orders), n, variant))
                    moved[variant] = moved.get(variant, 0) + 1
            elif roll < 0.75:
                new += 1
            elif roll < 0.9 and len(self.created) > deleted:
                deleted += 1
            else:
                updated.add(self.rng.choice(self.customers))
        now = datetime.now(UTC)
        if new:
            made = self.conn.execute(
                "INSERT INTO shop.customer (email, first_name, last_name, phone,"
                " accepts_marketing, created_at, updated_at) SELECT e, 'Bench', 'Client',"
                " '06 12 34 56 78', false, %s, %s FROM unnest(%s::text[]) AS e RETURNING id",
                (now, now, [f"bench{self.rng.randrange(10**9)}@example.fr" for _ in range(new)]),
            ).fetchall()
            if len(made) != new:
                raise RuntimeError(f"INSERT ... RETURNING gave {len(made)} rows for {new}")
        gone, self.created = self.created[:deleted], self.created[deleted:]
        if new:
            self.created.extend(int(row[0]) for row in made)
        variants = sorted(moved)
        self.conn.execute(
            "WITH ids AS MATERIALIZED (SELECT k, nextval(pg_get_serial_sequence('shop.orders',"
            " 'id')) AS id FROM generate_series(1, %s) AS k),"
            " o AS (INSERT INTO shop.orders (id, customer_id, status, created_at, updated_at,"
            " total) SELECT ids.id, u.customer, 'paid', %s, %s, 0"
            " FROM unnest(%s::bigint[]) WITH ORDINALITY AS u(customer, k) JOIN ids USING (k)),"
            " l AS (INSERT INTO shop.order_line (order_id, line_no, variant_id, quantity, price)"
            " SELECT ids.id, u.n, v.id, 1, v.price FROM unnest(%s::int[], %s::int[],"
            " %s::bigint[]) AS u(k, n, variant_id) JOIN ids USING (k)"
            " JOIN shop.variant v ON v.id = u.variant_id),"
            " c AS (UPDATE shop.customer SET accepts_marketing ="
            " NOT coalesce(accepts_marketing, false), updated_at = %s"
            " WHERE id = ANY(%s::bigint[])),"
            " x AS (DELETE FROM shop.customer WHERE id = ANY(%s::bigint[]))"
            " UPDATE shop.inventory_level AS i SET available = i.available - d.units,"
            " committed = i.committed + d.units, updated_at = %s"
            " FROM unnest(%s::bigint[], %s::int[]) AS d(variant_id, units)"
            " WHERE i.variant_id = d.variant_id",
            (len(orders), now, now, orders, [line[0] for line in lines],
             [line[1] for line in lines], [line[2] for line in lines], now, sorted(updated),
             gone, now, variants, [moved[v] for v in variants]),
        )  # fmt: skip
        return new + len(orders) + len(lines) + len(variants) + len(updated) + len(gone)


class ErpLoad:
    def __init__(self, conn: Any, rng: random.Random, rate: float) -> None:
        self.conn, self.rng = conn, rng
        with conn.cursor() as cur:
            cur.execute("SELECT WHS_CODE, ART_NO FROM STK_BAL ORDER BY 1, 2")
            self.rows = Skewed([(str(w), str(a)) for w, a in cur.fetchall()], rng)
            cur.execute("SELECT CUST_NO FROM CUST_MAST ORDER BY 1")
            self.customers = [c[0] for c in cur.fetchall()]

    def round(self, count: int) -> int:
        """``count`` business transactions in at most two statements: the warehouse moves (1-3
        stock rows each) as one UPDATE, each row moved by the sum of its deltas, and the customer
        updates as another. Returns the rows changed."""
        moves: dict[tuple[str, str], Decimal] = {}
        customers: set[Any] = set()
        for _ in range(count):
            if self.rng.random() < 0.9:
                for row in {self.rows.pick() for _ in range(self.rng.randint(1, 3))}:
                    moves[row] = moves.get(row, Decimal(0)) + Decimal(self.rng.randint(-8, 8)) / 4
            else:
                customers.add(self.rng.choice(self.customers))
        with self.conn.cursor() as cur:
            if moves:
                rows = sorted(moves)
                cur.execute(
                    _move_sql(len(rows)),
                    [*(v for row in rows for v in (*row, moves[row])), _now_s(),
                     *(v for row in rows for v in row)],
                )  # fmt: skip
            if customers:
                cur.execute(
                    "UPDATE CUST_MAST SET UPD_TS = %s WHERE CUST_NO IN %s",
                    (_now_s(), sorted(customers)),
                )
        return len(moves) + len(customers)


@functools.cache
def _move_sql(rows: int) -> str:
    """One UPDATE moving the stock of ``rows`` (warehouse, article) rows, each by its own delta:
    parameters (warehouse, article, delta) per row, the time, then (warehouse, article) per row."""
    deltas = " ".join("WHEN WHS_CODE = %s AND ART_NO = %s THEN %s" for _ in range(rows))
    keys = ", ".join("(%s, %s)" for _ in range(rows))
    return (
        f"UPDATE STK_BAL SET QTY_OH = GREATEST(QTY_OH + CASE {deltas} END, 0),"  # noqa: S608 (placeholders only)
        f" LAST_UPD = %s WHERE (WHS_CODE, ART_NO) IN ({keys})"
    )


def _now_s() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


LOADS: dict[str, Callable[[Any, random.Random, float], Any]] = {
    "pos": PosLoad,
    "shop": ShopLoad,
    "erp": ErpLoad,
}
PER_PROCESS = 2500.0  # changes/s one writer process is asked for at most


def connect(kind: str, dsn: str) -> Any:
    """An autocommit DB-API connection: each statement is its own transaction."""
    if kind == "postgres":
        import psycopg

        return psycopg.connect(dsn, autocommit=True)
    from hub.stack.mariadb import connect as mariadb

    conn = mariadb(dsn)
    conn.autocommit(True)
    return conn


@dataclass(frozen=True)
class Source:
    """Where a writer process connects: ``kind`` (postgres, mariadb) and a DSN without password."""

    kind: str
    dsn: str


class FixedClockLoad:
    """Writer processes for the three databases at ``rate`` row changes/s in all, until ``stop()``."""

    def __init__(self, sources: Mapping[str, Source], rate: float, seed: int) -> None:
        self.sources, self.rate, self.seed = dict(sources), rate, seed
        self.context = multiprocessing.get_context("spawn")  # no inherited threads or sockets
        self._stop = self.context.Event()
        self._plan: list[tuple[Writer, Any, Any]] = []  # writer, its counters, its process
        self.writers: dict[str, Writer] = {}

    def start(self) -> None:
        started = time.time() + 1.0  # one clock for all, once every process is up
        for n, (system, share) in enumerate(SHARES.items()):
            rate = self.rate * share
            count = max(1, math.ceil(rate / PER_PROCESS))
            self.writers[system] = Writer(system, rate)
            for k in range(count):
                counters = self.context.Array("d", 4, lock=False)  # changes, txns, errors, late
                process = self.context.Process(
                    target=_write, name=f"load-{system}-{k}", daemon=True,
                    args=(self.sources[system], system, rate / count, self.seed + 10 * n + k,
                          started, self._stop, counters),
                )  # fmt: skip
                process.start()
                self._plan.append((self.writers[system], counters, process))

    def pids(self) -> list[int]:
        return [process.pid for _, _, process in self._plan if process.pid is not None]

    def stop(self) -> None:
        self._stop.set()
        for _, _, process in self._plan:
            process.join(30)
            if process.is_alive():
                process.kill()
        self._collect()

    def changes(self) -> int:
        return int(sum(counters[0] for _, counters, _ in self._plan))

    def _collect(self) -> None:
        for writer in self.writers.values():
            mine = [c for w, c, _ in self._plan if w is writer]
            writer.changes, writer.transactions = (
                int(sum(c[0] for c in mine)),
                int(sum(c[1] for c in mine)),
            )
            writer.errors = int(sum(c[2] for c in mine))
            writer.late_s = round(max((c[3] for c in mine), default=0.0), 3)
            writer.processes = len(mine)


def _write(source: Source, system: str, rate: float, seed: int, started: float, stop: Any,
           counters: Any) -> None:  # fmt: skip
    """One writer process: ``rate`` changes/s of ``system``'s mix from ``started`` (a wall-clock
    time) until ``stop`` is set; counts in ``counters``."""
    conn = connect(source.kind, source.dsn)
    try:
        load = LOADS[system](conn, random.Random(seed), rate)
        time.sleep(max(0.0, started - time.time()))
        begin = time.monotonic()
        changes = 0
        while not stop.is_set():
            due = rate * (time.monotonic() - begin)
            if changes >= due:
                time.sleep(min(0.005, (changes - due + 1) / rate))
                continue
            behind = int((due - changes) // 3)  # a business transaction: ~3 rows on average
            count = max(1, min(ROUND, behind))
            try:
                changes += load.round(count)
                counters[1] += count
            except Exception:
                counters[2] += 1
                if counters[2] > 100:
                    raise
            counters[0] = changes
        counters[3] = max(0.0, (rate * (time.monotonic() - begin) - changes) / rate)
    finally:
        conn.close()
