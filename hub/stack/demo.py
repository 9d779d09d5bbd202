"""Seeded, repeatable demo data for the source systems, and the articles they share."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import psycopg

SEED = 20261123

STORES: tuple[tuple[str, str, str, date], ...] = (
    ("PAR01", "Paris Rivoli", "Paris", date(2009, 3, 14)),
    ("PAR02", "Paris Bastille", "Paris", date(2014, 9, 1)),
    ("LYO01", "Lyon Part-Dieu", "Lyon", date(2011, 5, 20)),
    ("MRS01", "Marseille Vieux-Port", "Marseille", date(2016, 11, 5)),
    ("LIL01", "Lille Centre", "Lille", date(2018, 2, 12)),
    ("BDX01", "Bordeaux Sainte-Catherine", "Bordeaux", date(2021, 6, 30)),
)

GIVEN = ("Jean", "Marie", "Pierre", "Sophie", "Luc", "Camille", "Nicolas", "Julie", "Thomas",
         "Léa", "Antoine", "Chloé", "Hugo", "Manon", "Louis", "Inès", "Paul", "Emma", "Éric", "Zoé")  # fmt: skip
FAMILY = ("Dupont", "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit",
          "Durand", "Leroy", "Moreau", "Simon", "Laurent", "Lefèvre", "Michel", "Garcia",
          "David", "Bertrand", "Roux", "Vincent", "Fournier", "Morel", "Girard", "André")  # fmt: skip


def ean13(body12: str) -> str:
    """Append the GS1 check digit to 12 digits."""
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body12))
    return body12 + str((10 - total % 10) % 10)


def articles(count: int = 200) -> list[str]:
    """The EAN-13 codes every system stocks (French GS1 prefix 376)."""
    return [ean13(f"376{n:09d}") for n in range(1, count + 1)]


def _phone(rng: random.Random) -> str:
    digits = f"0{rng.choice('1234567')}{rng.randrange(10**8):08d}"
    style = rng.randrange(3)
    if style == 0:
        return " ".join(digits[i : i + 2] for i in range(0, 10, 2))
    if style == 1:
        return "+33" + digits[1:]
    return digits


def load_pos(conn: psycopg.Connection[tuple[object, ...]]) -> dict[str, int]:
    """Insert the POS demo data once (a no-op when stores exist). Returns row counts."""
    rng = random.Random(SEED)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pos.store")
        row = cur.fetchone()
        if row and int(str(row[0])) > 0:
            return {}
        cur.executemany("INSERT INTO pos.store VALUES (%s, %s, %s, %s)", STORES)
        counted = datetime(2026, 11, 1, 6, 0)
        with cur.copy("COPY pos.stock (store_code, ean, qty, last_count_at) FROM STDIN") as copy:
            for store in STORES:
                for ean in articles():
                    copy.write_row((store[0], ean, rng.randint(5, 120), counted))
        with cur.copy(
            "COPY pos.loyalty_member (card_no, full_name, email, phone, postcode, enrolled_at,"
            " optin_marketing) FROM STDIN"
        ) as copy:
            for n in range(1, 501):
                given, family = rng.choice(GIVEN), rng.choice(FAMILY)
                copy.write_row((
                    f"LC{n:08d}",
                    f"{given} {family}",
                    f"{given}.{family}{n}@example.fr".lower(),
                    _phone(rng),
                    f"{rng.choice(['75', '69', '13', '59', '33'])}{rng.randrange(1000):03d}",
                    datetime(2015, 1, 1, tzinfo=UTC) + timedelta(days=rng.randrange(4000)),
                    rng.random() < 0.6,
                ))  # fmt: skip
    conn.commit()
    return {"store": len(STORES), "stock": len(STORES) * 200, "loyalty_member": 500}
