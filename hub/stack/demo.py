"""Seeded, repeatable demo data for the three source systems.

The systems share the same 200 articles (EAN-13) and many of the same people: a person may be a POS
loyalty member, an ERP customer and a shop customer at once, each system spelling them its own way
(email case, phone format, name order), so identity resolution has real work.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import phonenumbers
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
WAREHOUSES = (("W001", "Entrepôt Gonesse", "Gonesse"), ("W002", "Entrepôt Corbas", "Corbas"))
WEB_LOCATION = "Entrepôt web Saran"

GIVEN = ("Jean", "Marie", "Pierre", "Sophie", "Luc", "Camille", "Nicolas", "Julie", "Thomas",
         "Léa", "Antoine", "Chloé", "Hugo", "Manon", "Louis", "Inès", "Paul", "Emma", "Éric", "Zoé",
         "Jean-Pierre", "Anne-Sophie", "Marc", "Claire", "Bruno", "Nathalie")  # fmt: skip
FAMILY = ("Dupont", "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit",
          "Durand", "Leroy", "Moreau", "Simon", "Laurent", "Lefèvre", "Michel", "Garcia",
          "David", "Bertrand", "Roux", "Vincent", "Fournier", "Morel", "Girard", "André",
          "Le Gall", "De La Fontaine")  # fmt: skip
KINDS = (
    "T-shirt",
    "Jean",
    "Pull",
    "Veste",
    "Chemise",
    "Robe",
    "Basket",
    "Sac",
    "Écharpe",
    "Casquette",
)
COLOURS = ("noir", "blanc", "bleu", "rouge", "vert", "gris", "beige", "marine")


def ean13(body12: str) -> str:
    """Append the GS1 check digit to 12 digits."""
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body12))
    return body12 + str((10 - total % 10) % 10)


def articles(count: int = 200) -> list[str]:
    """The EAN-13 codes every system stocks (French GS1 prefix 376)."""
    return [ean13(f"376{n:09d}") for n in range(1, count + 1)]


def article_name(index: int) -> str:
    return (
        f"{KINDS[index % len(KINDS)]} {COLOURS[(index // len(KINDS)) % len(COLOURS)]} #{index + 1}"
    )


@dataclass(frozen=True)
class Person:
    given: str
    family: str
    email: str  # canonical lower-case address
    phone: str  # French national number, 10 digits
    postcode: str
    optin: bool


def people(count: int = 1200) -> list[Person]:
    rng = random.Random(SEED + 1)
    crowd = []
    for n in range(count):
        given, family = rng.choice(GIVEN), rng.choice(FAMILY)
        local = f"{given}.{family}".lower().replace(" ", "").replace("é", "e").replace("è", "e")
        crowd.append(Person(
            given, family, f"{local}{n}@example.fr",
            _french_number(rng),
            f"{rng.choice(['75', '69', '13', '59', '33', '44', '31'])}{rng.randrange(1000):03d}",
            rng.random() < 0.6,
        ))  # fmt: skip
    return crowd


def _french_number(rng: random.Random) -> str:
    """A valid metropolitan number, 01-06 (overseas ranges are drawn again)."""
    while True:
        digits = f"0{rng.choice('123456')}{rng.randrange(10**7, 9 * 10**7):08d}"
        parsed = phonenumbers.parse(digits, "FR")
        if (
            phonenumbers.is_valid_number(parsed)
            and phonenumbers.region_code_for_number(parsed) == "FR"
        ):
            return digits


def _grouped(digits: str) -> str:
    return " ".join(digits[i : i + 2] for i in range(0, 10, 2))


def _phone_any(rng: random.Random, digits: str) -> str:
    return rng.choice(
        (_grouped(digits), "+33" + digits[1:], digits, f"+33 {digits[1]} {_grouped(digits)[3:]}")
    )


# ---- POS ------------------------------------------------------------------------------------


def load_pos(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Insert the POS demo data once (a no-op when stores exist). Returns row counts."""
    rng = random.Random(SEED)
    if conn.execute("SELECT count(*) FROM pos.store").fetchone() != (0,):
        return {}
    with conn.cursor() as cur:
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
            for n, person in enumerate(people()[:500], 1):
                copy.write_row((
                    f"LC{n:08d}", f"{person.given} {person.family}", person.email,
                    _phone_any(rng, person.phone), person.postcode,
                    datetime(2015, 1, 1, tzinfo=UTC) + timedelta(days=rng.randrange(4000)),
                    person.optin,
                ))  # fmt: skip
    conn.commit()
    return {"store": len(STORES), "stock": len(STORES) * 200, "loyalty_member": 500}


# ---- ERP ------------------------------------------------------------------------------------


def load_erp(conn: Any) -> dict[str, int]:
    """ERP demo data (a pymysql connection); a no-op when articles exist."""
    rng = random.Random(SEED + 2)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM ART_MASTER")
        if cur.fetchone() != (0,):
            return {}
        eans = articles()
        cur.executemany(
            "INSERT INTO ART_MASTER VALUES (%s, %s, %s, %s, %s)",
            [(f"A{n:09d}", article_name(n).upper()[:60], ean, "PCE", "D" if n % 37 == 36 else "A")
             for n, ean in enumerate(eans)],
        )  # fmt: skip
        cur.executemany("INSERT INTO WHS_MASTER VALUES (%s, %s, %s)", WAREHOUSES)
        updated = datetime(2026, 11, 1, 5, 30)
        cur.executemany(
            "INSERT INTO STK_BAL VALUES (%s, %s, %s, %s, %s, %s)",
            [(whs, f"A{n:09d}", Decimal(rng.randint(100, 5000)), Decimal(rng.randint(0, 80)),
              Decimal(rng.choice((50, 100, 200))), updated)
             for whs, _, _ in WAREHOUSES for n in range(len(eans))],
        )  # fmt: skip
        crowd = people()[300:620]
        rows = []
        for n, person in enumerate(crowd, 1001):
            email = person.email.upper() if rng.random() < 0.3 else person.email
            rows.append((
                n, f"{person.family.upper()} {person.given}", email if rng.random() < 0.95 else None,
                _grouped(person.phone), person.postcode,
                date(2005, 1, 1) + timedelta(days=rng.randrange(7000)), updated,
            ))  # fmt: skip
        cur.executemany("INSERT INTO CUST_MAST VALUES (%s, %s, %s, %s, %s, %s, %s)", rows)
    conn.commit()
    return {
        "ART_MASTER": len(eans),
        "WHS_MASTER": 2,
        "STK_BAL": 2 * len(eans),
        "CUST_MAST": len(rows),
    }


# ---- shop -----------------------------------------------------------------------------------


def _note(rng: random.Random) -> str:
    """A long customer-service note (several kB, with ticket references): stored out of line."""
    lines = ("Client fidèle, préfère la livraison en point relais.",
             "Retour accepté à titre exceptionnel.", "Demande de facture au nom de la société.",
             "A signalé un colis endommagé, geste commercial de 10 %.")  # fmt: skip
    return "\n".join(
        f"{2020 + i % 6}-0{1 + i % 9}-1{i % 10} #{rng.getrandbits(64):016x} {rng.choice(lines)}"
        for i in range(120)
    )


def load_shop(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Shop demo data; a no-op when products exist."""
    rng = random.Random(SEED + 3)
    if conn.execute("SELECT count(*) FROM shop.product").fetchone() != (0,):
        return {}
    eans = articles()
    created = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
    with conn.cursor() as cur:
        for n, ean in enumerate(eans):
            cur.execute(
                "INSERT INTO shop.product (handle, title, created_at, updated_at) VALUES (%s, %s, %s, %s)"
                " RETURNING id",
                (f"article-{n + 1}", article_name(n), created, created),
            )
            (product_id,) = cur.fetchone() or (0,)
            cur.execute(
                "INSERT INTO shop.variant (product_id, sku, barcode, price) VALUES (%s, %s, %s, %s)",
                (product_id, f"WEB-{n + 1:05d}", ean, Decimal(int(ean[-5:]) % 9000 + 199) / 100),
            )
        cur.execute("INSERT INTO shop.location (name) VALUES (%s)", (WEB_LOCATION,))
        cur.execute(
            "INSERT INTO shop.inventory_level (variant_id, location_id, available, committed,"
            " updated_at) SELECT v.id, l.id, 20 + (v.id * 37) %% 400, (v.id * 7) %% 15, %s"
            " FROM shop.variant v, shop.location l",
            (created,),
        )
        crowd = people()[100:1100]
        for person in crowd:
            email = rng.choice((person.email, person.email.capitalize(), person.email.upper()))
            cur.execute(
                "INSERT INTO shop.customer (email, first_name, last_name, phone, accepts_marketing, note,"
                " created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (f" {email} " if rng.random() < 0.05 else email, person.given, person.family,
                 _phone_any(rng, person.phone) if rng.random() < 0.9 else None, person.optin,
                 _note(rng) if rng.random() < 0.2 else None, created, created),
            )  # fmt: skip
        # Ids come from the sequences, which a rolled-back earlier attempt may have advanced.
        variants = [row[0] for row in cur.execute("SELECT id FROM shop.variant ORDER BY id")]
        customers = [row[0] for row in cur.execute("SELECT id FROM shop.customer ORDER BY id")]
        statuses = ("pending", "paid", "fulfilled", "cancelled")
        for n in range(300):
            placed = created + timedelta(days=rng.randrange(600), minutes=rng.randrange(1440))
            lines = [(rng.choice(variants), rng.randint(1, 3)) for _ in range(rng.randint(1, 4))]
            cur.execute(
                "INSERT INTO shop.orders (customer_id, status, created_at, updated_at, total)"
                " VALUES (%s, %s, %s, %s, 0) RETURNING id",
                (rng.choice(customers), statuses[n % 4], placed, placed),
            )
            (order_id,) = cur.fetchone() or (0,)
            cur.executemany(
                "INSERT INTO shop.order_line (order_id, line_no, variant_id, quantity, price)"
                " SELECT %s, %s, id, %s, price FROM shop.variant WHERE id = %s",
                [(order_id, i, qty, variant) for i, (variant, qty) in enumerate(lines, 1)],
            )
            cur.execute(
                "UPDATE shop.orders SET total = (SELECT sum(quantity * price) FROM shop.order_line"
                " WHERE order_id = %s) WHERE id = %s",
                (order_id, order_id),
            )
    conn.commit()
    return {"product": len(eans), "variant": len(eans), "location": 1, "inventory_level": len(eans),
            "customer": len(crowd), "orders": 300}  # fmt: skip
