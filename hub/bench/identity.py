"""``hub bench --identity N``: the identity stage on its own, without the stack — a first load of
N synthetic customer records, then a stream of their changes; the rate of each, the memory the
stage's state takes per 100,000 records, and how well the customers it made match the people the
records were made from (pairwise precision and recall).

The records are what ``unified.customer.records`` carries once normalised: one to three records
per person (shop, pos, erp), each spelling them its own way (a nickname, a typo, a missing email or
phone), households that share an email, and a placeholder email that a few hundred shop accounts
share (a merge storm).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hub.core.engine import MemoryStore
from hub.core.golden import OF, IdentityStage
from hub.core.identity import Rules

GIVEN = ("Marie", "Jean", "Paul", "Claire", "Luc", "Anne", "Louis", "Emma", "Hugo", "Léa", "Robert",
         "Nina", "Thomas", "Eva", "Camille", "Julien", "Sophie", "Nicolas", "Chloé", "Antoine",
         "Manon", "Pierre", "Inès", "Mathieu", "Sarah", "Guillaume", "Elizabeth", "William",
         "Catherine", "Alexandre", "Margaux", "Théo", "Zoé", "Maxime", "Lucie", "Hélène")  # fmt: skip
NICK = {"Robert": "Bob", "William": "Bill", "Elizabeth": "Liz", "Catherine": "Kate",
        "Alexandre": "Alex", "Nicolas": "Nico"}  # fmt: skip
ROOTS = ("Mart", "Bern", "Dub", "Thom", "Rob", "Rich", "Pet", "Dur", "Ler", "Mor", "Fourn", "Gir",
         "Bonn", "Franc", "Garn", "Chev", "Roll", "Mass", "Blanch", "Guer", "Faur", "Andr", "Merc",
         "Boy", "Lef", "Gaut", "Perr", "Mull", "Henr", "Roux", "Coll", "Vinc", "Brun", "Lemai")  # fmt: skip
ENDS = ("in", "and", "ois", "et", "el", "ier", "eau", "on", "y", "ard", "ot", "ez", "ais", "oux")
PLACEHOLDER = "noemail@example.com"  # what a shop stores when the customer gives no email
SYSTEMS = ("shop", "pos", "erp")


@dataclass
class Synthetic:
    records: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    person: dict[str, int] = field(default_factory=dict)  # record ref → the person it is


def synthetic(count: int, seed: int) -> Synthetic:
    """``count`` customer records of about ``count / 1.7`` people, deterministic for ``seed``."""
    rng = random.Random(seed)
    found = Synthetic()
    base = datetime(2018, 1, 1, tzinfo=UTC)
    serial: Counter[str] = Counter()
    person = 0
    while len(found.records) < count:
        person += 1
        given = rng.choice(GIVEN)
        family = rng.choice(ROOTS) + rng.choice(ENDS) + ("" if rng.random() < 0.6 else
                                                         rng.choice(ENDS))  # fmt: skip
        email = f"{given}.{family}{person}@example.fr".lower().replace("é", "e")
        phone = f"+3361{person:07d}"  # a French mobile number phonenumbers takes as valid
        postcode = f"{rng.randrange(1000, 96000):05d}"
        if rng.random() < 0.04 and found.records:  # a household: the partner's email
            partner = found.records[-1][1]
            email, family = partner.get("email") or email, partner.get("family_name") or family
            given = rng.choice([g for g in GIVEN if g[0] != (partner.get("given_name") or "?")[0]])
        copies = rng.choices((1, 2, 3), (50, 30, 20))[0]
        for system in rng.sample(SYSTEMS, copies):
            serial[system] += 1
            ref = f"{system}:{serial[system]}"
            created = base + timedelta(minutes=rng.randrange(4_000_000))
            record: dict[str, Any] = {
                "given_name": _spelled(rng, given),
                "family_name": family,
                "email": email if rng.random() < 0.8 else None,
                "phone_e164": phone if rng.random() < 0.65 else None,
                "postcode": postcode if system != "shop" else None,
                "marketing_consent": rng.choice((True, False, None)),
                "created_at": created.isoformat(),
                "updated_at": (created + timedelta(days=rng.randrange(400))).isoformat(),
            }
            if system == "shop" and rng.random() < 0.003:
                record["email"] = PLACEHOLDER  # a merge storm in the making
            found.records.append((ref, record))
            found.person[ref] = person
            if len(found.records) == count:
                break
    return found


def _spelled(rng: random.Random, given: str) -> str:
    roll = rng.random()
    if roll < 0.05 and given in NICK:
        return NICK[given]
    if roll < 0.08 and len(given) > 4:  # a typo: two letters swapped
        at = rng.randrange(1, len(given) - 2)
        return given[:at] + given[at + 1] + given[at] + given[at + 2 :]
    return given


def changes(found: Synthetic, count: int, seed: int) -> Iterator[tuple[str, dict[str, Any] | None]]:
    """``count`` changes of the records: a new phone or postcode, a name corrected, a record
    deleted and created again, as the sources' customers change."""
    rng = random.Random(seed + 1)
    latest: dict[str, dict[str, Any] | None] = dict(found.records)
    refs = list(latest)
    for _ in range(count):
        ref = rng.choice(refs)
        record: dict[str, Any] | None = latest[ref]
        roll = rng.random()
        if record is None:
            record = dict(found.records[refs.index(ref)][1])
        elif roll < 0.4:
            record = record | {"phone_e164": f"+336{rng.randrange(10**8):08d}"}
        elif roll < 0.7:
            record = record | {"postcode": f"{rng.randrange(1000, 96000):05d}"}
        elif roll < 0.9:
            record = record | {"marketing_consent": rng.random() < 0.5}
        else:
            record = None
        latest[ref] = record
        yield ref, record


def quality(store: MemoryStore, found: Synthetic) -> dict[str, float]:
    """Pairwise precision and recall of the customers made against the people behind them."""

    def pairs(n: int) -> int:
        return n * (n - 1) // 2

    cluster = {key.removeprefix(OF): value["g"] for key, value in store.items()
               if key.startswith(OF)}  # fmt: skip
    together = Counter((cluster.get(ref, ref), found.person[ref]) for ref in found.person)
    made = Counter(cluster.get(ref, ref) for ref in found.person)
    truth = Counter(found.person.values())
    right = sum(pairs(n) for n in together.values())
    return {
        "precision": round(right / max(1, sum(pairs(n) for n in made.values())), 4),
        "recall": round(right / max(1, sum(pairs(n) for n in truth.values())), 4),
        "people": len(truth),
        "customers": len(made),
    }


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure(rules: Rules, count: int, updates: int, seed: int) -> dict[str, Any]:
    """The first load of ``count`` records (in a shuffled order) and ``updates`` changes after."""
    found = synthetic(count, seed)
    order = list(found.records)
    random.Random(seed + 2).shuffle(order)
    store = MemoryStore()
    stage = IdentityStage(rules, store)
    now = datetime.now(UTC)
    before = rss_mb()
    started = time.perf_counter()
    outputs = 0
    for n, (ref, record) in enumerate(order):
        outputs += len(stage.apply(ref, record, f"load:{n:012d}", now).outputs)
    load_s = time.perf_counter() - started
    grown = rss_mb() - before
    load_quality = quality(store, found)
    started = time.perf_counter()
    changed = 0
    for n, (ref, change) in enumerate(changes(found, updates, seed)):
        changed += len(stage.apply(ref, change, f"next:{n:012d}", now).outputs)
    update_s = time.perf_counter() - started
    storms = sum(1 for key, value in store.items()
                 if key.startswith("identity:block:") and "count" in value)  # fmt: skip
    return {
        "records": count,
        "seed": seed,
        "first_load_s": round(load_s, 2),
        "first_load_per_s": round(count / load_s),
        "first_load_outputs": outputs,
        "changes": updates,
        "changes_per_s": round(updates / update_s) if updates else None,
        "change_outputs": changed,
        "state_entries": len(store),
        "rss_growth_mb": round(grown, 1),
        "rss_mb_per_100k": round(grown * 100_000 / count, 1),
        "merge_storms": storms,
        "quality": load_quality,
    }


def markdown(result: dict[str, Any]) -> str:
    q = result["quality"]
    return "\n".join([
        f"# Identity stage alone, {result['records']:,} synthetic customer records "
        f"(seed {result['seed']})", "",
        "| measure | value |", "|---|---:|",
        f"| first load (shuffled) | {result['first_load_s']} s, "
        f"{result['first_load_per_s']:,} records/s |",
        f"| then changes | {result['changes']:,} at {result['changes_per_s'] or 0:,}/s |",
        f"| resident memory added | {result['rss_growth_mb']} MB "
        f"({result['rss_mb_per_100k']} MB per 100,000 records) |",
        f"| state entries | {result['state_entries']:,} |",
        f"| people → customers made | {q['people']:,} → {q['customers']:,} |",
        f"| pairwise precision / recall | {q['precision']} / {q['recall']} |",
        f"| merge storms refused | {result['merge_storms']} |",
        *_through_stack(result.get("through_stack")), "",
    ])  # fmt: skip


def _through_stack(run: dict[str, Any] | None) -> list[str]:
    if not run:
        return []
    done = "all" if run["all_linked"] else f"{run['linked']:,} of {run['records']:,}"
    return [f"| through the stack: inserted in the sources → {done} linked to a golden customer "
            f"| {run['seconds']} s ({run['records_per_s'] or 0:,} records/s; inserts "
            f"{run['inserted_s']} s) |"]  # fmt: skip


# -- a first load through the whole stack


def _rows(found: Synthetic) -> tuple[dict[str, list[tuple[Any, ...]]], dict[str, str]]:
    """The synthetic records as source rows of each system, and each record's real ref."""
    rows: dict[str, list[tuple[Any, ...]]] = {"shop": [], "pos": [], "erp": []}
    real: dict[str, str] = {}
    for ref, r in found.records:
        system, serial = ref.split(":")
        n = int(serial)
        created = datetime.fromisoformat(r["created_at"])
        updated = datetime.fromisoformat(r["updated_at"])
        if system == "shop":
            rows["shop"].append((FIRST_ID + n, r["email"], r["given_name"], r["family_name"],
                                 r["phone_e164"], r["marketing_consent"], created, updated))  # fmt: skip
            real[ref] = f"shop:{FIRST_ID + n}"
        elif system == "pos":
            card = f"LB{n:08d}"
            rows["pos"].append((card, f"{r['given_name']} {r['family_name']}", r["email"],
                                r["phone_e164"], r["postcode"], created, r["marketing_consent"]))  # fmt: skip
            real[ref] = f"pos:{card}"
        else:
            rows["erp"].append((FIRST_ID + n, f"{r['family_name'].upper()} {r['given_name']}",
                                r["email"], r["phone_e164"], r["postcode"], created.date(),
                                updated.replace(tzinfo=None)))  # fmt: skip
            real[ref] = f"erp:{FIRST_ID + n}"
    return rows, real


FIRST_ID = 50_000_000  # ids the demo data and the simulator never reach


def first_load(
    stack: Any, bootstrap: str, count: int, seed: int, timeout: float = 900
) -> dict[str, Any]:
    """Insert ``count`` synthetic customers into the three source databases (about a third each,
    in large transactions) and time, from the first insert, until every one of them is linked
    to a golden customer on ``unified.customer.links``. The stack and a worker must be running."""
    import uuid

    from confluent_kafka import Consumer, TopicPartition

    from hub.core.golden import LINKS
    from hub.topics import registry

    found = synthetic(count, seed)
    rows, real = _rows(found)
    wanted = set(real.values())
    spec = registry()[LINKS]
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"hub-bench-{uuid.uuid4()}",
                         "enable.auto.commit": False, "isolation.level": "read_committed"})  # fmt: skip
    partitions = [TopicPartition(spec.name, p) for p in range(spec.partitions)]
    consumer.assign([TopicPartition(tp.topic, tp.partition,
                                    consumer.get_watermark_offsets(tp, 10)[1]) for tp in partitions])  # fmt: skip
    started = time.time()
    for system, statement in (
        ("shop", "COPY shop.customer (id, email, first_name, last_name, phone, accepts_marketing,"
                 " created_at, updated_at) FROM STDIN"),
        ("pos", "COPY pos.loyalty_member (card_no, full_name, email, phone, postcode, enrolled_at,"
                " optin_marketing) FROM STDIN"),
    ):  # fmt: skip
        with stack.open(system) as conn, conn.cursor() as cur:
            with cur.copy(statement) as copy:
                for row in rows[system]:
                    copy.write_row(row)
            conn.commit()
    erp = stack.open("erp")
    try:
        with erp.cursor() as cur:
            for at in range(0, len(rows["erp"]), 5000):
                cur.executemany("INSERT INTO CUST_MAST VALUES (%s, %s, %s, %s, %s, %s, %s)",
                                rows["erp"][at : at + 5000])  # fmt: skip
                erp.commit()
    finally:
        erp.close()
    inserted = time.time() - started
    linked: set[str] = set()
    last = started
    try:
        while linked != wanted and time.time() - started < timeout:
            for message in consumer.consume(5000, 0.5):
                if message.error() is None and message.value() is not None:
                    key = (message.key() or b"").decode()
                    if key in wanted and key not in linked:
                        linked.add(key)
                        last = time.time()
    finally:
        consumer.close()
    seconds = last - started
    return {"records": count, "inserted_s": round(inserted, 1), "linked": len(linked),
            "all_linked": linked == wanted, "seconds": round(seconds, 1),
            "records_per_s": round(len(linked) / seconds) if seconds else None}  # fmt: skip
