"""The hub's truth as the channels ask for it: the read model behind ``hub api``.

``ReadModel`` is filled with the records of the compacted unified topics (``apply``: one record,
its value or None for a tombstone) and answers the questions of a storefront, a store app or a back
office: what can be sold of an article, per channel group and per location, with its explanation;
its inventory levels; a golden customer by its id or by any member record's ref; alerts; a
customer's order lines across channels; the freshness of each source. Every answer says how fresh
it is: the source position and commit time of the newest record it shows.

Each applied record is also a ``Change`` naming its *subjects* (``article:<gtin>``,
``location:<id>``, ``customer:<golden id or ref>``), for the live change stream. ``Position`` is
where a reader of the topics stands (per topic partition, the next offset); a change stream
resumes from one (``ChangeLog.since``), so a client that reconnects to any replica misses nothing.

Pure: no Kafka, no HTTP. A bad question raises ``QueryError`` (its status and a stable code).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

INVENTORY = "unified.inventory"
AVAILABILITY = "unified.availability"
ALERTS = "unified.alerts"
GOLDEN = "unified.customer"
LINKS = "unified.customer.links"
ORDER_LINES = "unified.order_lines"
# What the read model is made of, in the order positions are written.
TOPICS = (INVENTORY, AVAILABILITY, ALERTS, GOLDEN, LINKS, ORDER_LINES)

GTIN_PATTERN = re.compile(r"^\d{8,14}$")
GOLDEN_PATTERN = re.compile(r"^g-[0-9a-f]{16}$")
REF_PATTERN = re.compile(r"^[a-z0-9_-]+:[^\s/]+$")
LOCATION_PATTERN = re.compile(r"^(store|warehouse|web|group):[A-Za-z0-9_-]+$")


class QueryError(Exception):
    """A question the read model cannot answer: ``status`` (HTTP), a stable ``code``, and what
    exactly was wrong."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.status, self.code, self.detail = status, code, detail


def check_gtin(gtin: str) -> str:
    if not GTIN_PATTERN.match(gtin):
        raise QueryError(400, "bad_gtin", f"{gtin!r} is no GTIN (8 to 14 digits)")
    return gtin


def check_location(location: str) -> str:
    if not LOCATION_PATTERN.match(location):
        raise QueryError(400, "bad_location", f"{location!r} is no location id (store:<code>, "
                         "warehouse:<code>, web:<id> or group:<name>)")  # fmt: skip
    return location


# -- positions


@dataclass(frozen=True)
class Position:
    """Where a reader of ``TOPICS`` stands: per (topic, partition), the next offset to read. Its
    text form (``str``, ``parse``) is an SSE event id: the topic's index in ``TOPICS``, the
    partition and the offset, e.g. ``0.1.734~1.0.88``; partitions not read yet are left out."""

    offsets: Mapping[tuple[str, int], int] = field(default_factory=dict)

    def __str__(self) -> str:
        numbered = sorted((TOPICS.index(topic), partition, offset)
                          for (topic, partition), offset in self.offsets.items())  # fmt: skip
        return "~".join(f"{index}.{partition}.{offset}" for index, partition, offset in numbered)

    @classmethod
    def parse(cls, text: str) -> Position:
        offsets: dict[tuple[str, int], int] = {}
        for part in filter(None, text.strip().split("~")):
            try:
                index, partition, offset = (int(n) for n in part.split("."))
                topic = TOPICS[index]
            except (ValueError, IndexError):
                raise QueryError(400, "bad_position", f"{text[:200]!r} is no stream position (as "
                                 "the id of an event the stream sent)") from None  # fmt: skip
            if partition < 0 or offset < 0:
                raise QueryError(400, "bad_position", f"{part!r}: negative partition or offset")
            offsets[(topic, partition)] = offset
        return cls(offsets)

    def after(self, topic: str, partition: int, offset: int) -> Position:
        return Position({**self.offsets, (topic, partition): offset + 1})

    def covers(self, topic: str, partition: int, offset: int) -> bool:
        """Whether the record at ``offset`` is before this position (already seen)."""
        return offset < self.offsets.get((topic, partition), 0)


# -- changes


@dataclass(frozen=True, slots=True)
class Change:
    """One record applied: its topic, key, value (None: deleted), where it was in the topic, and
    the subjects it is about (before and after the change)."""

    topic: str
    key: str
    value: dict[str, Any] | None
    partition: int
    offset: int
    subjects: frozenset[str]

    def as_json(self) -> dict[str, Any]:
        return {"topic": self.topic, "key": self.key, "deleted": self.value is None,
                "value": self.value}  # fmt: skip


class ChangeLog:
    """The latest changes (at most ``size``) in the order they were applied, numbered (``seq``,
    this process's own order), and the position before the oldest one kept: a stream resumes
    from any position since then (``cursor``)."""

    def __init__(self, size: int = 100_000) -> None:
        self.changes: deque[Change] = deque()
        self.size = size
        self.first = 0  # the seq of the oldest change kept
        self.start = Position()  # the position before it
        self.end = Position()  # after the newest

    @property
    def next_seq(self) -> int:
        return self.first + len(self.changes)

    def append(self, change: Change) -> None:
        if len(self.changes) >= self.size:
            gone = self.changes.popleft()
            self.first += 1
            self.start = self.start.after(gone.topic, gone.partition, gone.offset)
        self.changes.append(change)
        self.end = self.end.after(change.topic, change.partition, change.offset)

    def live(self) -> Cursor:
        """A reader of the changes from now on."""
        return Cursor(self.next_seq, dict(self.end.offsets))

    def cursor(self, position: Position) -> Cursor | None:
        """A reader of the changes after ``position``; None when the log no longer holds all of
        them (the caller sends the current state instead)."""
        if any(position.offsets.get(tp, 0) < offset for tp, offset in self.start.offsets.items()):
            return None
        return Cursor(self.first, {**self.start.offsets, **position.offsets})

    def read(self, seq: int) -> list[Change]:
        """The changes from ``seq`` on (those still kept)."""
        skip = max(0, seq - self.first)
        return [self.changes[n] for n in range(skip, len(self.changes))]


class Cursor:
    """Where one stream stands in a ``ChangeLog``: the next seq to read, and the position after
    what it has read (the id of the event it sends)."""

    def __init__(self, seq: int, offsets: dict[tuple[str, int], int]) -> None:
        self.seq, self.offsets = seq, offsets

    def read(self, log: ChangeLog) -> Iterator[Change]:
        """The changes not read yet, in order (``follow`` of what ``log`` holds from ``seq``)."""
        return self.follow(log.read(self.seq))

    def follow(self, changes: Iterable[Change]) -> Iterator[Change]:
        """``changes`` (``ChangeLog.read(seq)``, taken under the writer's lock) in order; after
        each, ``position`` is the one after it. Those the position already covers (a resume) are
        passed over."""
        for change in changes:
            self.seq += 1
            tp = (change.topic, change.partition)
            if change.offset < self.offsets.get(tp, 0):
                continue
            self.offsets[tp] = change.offset + 1
            yield change

    @property
    def position(self) -> Position:
        return Position(dict(self.offsets))


# -- the model


def _freshness(records: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The newest of ``records`` by source commit time: what an answer is as fresh as."""
    newest = max((r for r in records if r.get("source_committed_at")),
                 key=lambda r: str(r["source_committed_at"]), default=None)  # fmt: skip
    if newest is None:
        return None
    return {"source_system": newest.get("source_system"),
            "source_position": newest.get("source_position"),
            "source_committed_at": newest.get("source_committed_at"),
            "emitted_at": newest.get("emitted_at")}  # fmt: skip


def stock_key(topic: str, key: str) -> tuple[str, str, str]:
    """(GTIN, "@", location or group) of a stock topic's key; an alert's key starts with its
    rule's name."""
    if topic == ALERTS:
        key = key.partition(":")[2]
    return key.partition("@")


def subjects_of(topic: str, key: str, value: Mapping[str, Any] | None) -> set[str]:
    """What a record of ``topic`` is about, for the change stream's filters."""
    found: set[str] = set()
    if topic in (INVENTORY, AVAILABILITY, ALERTS):
        article, _, where = stock_key(topic, key)
        found |= {f"article:{article}", f"location:{where}"}
    elif topic == GOLDEN:
        found.add(f"customer:{key}")
        found |= {f"customer:{ref}" for ref in (value or {}).get("members", ())}
    elif topic == LINKS:
        found.add(f"customer:{key}")
        if value and value.get("golden_id"):
            found.add(f"customer:{value['golden_id']}")
    elif topic == ORDER_LINES and value:
        found.add(f"article:{value.get('gtin')}")
        if value.get("location_id"):
            found.add(f"location:{value['location_id']}")
        if value.get("customer_ref"):
            found.add(f"customer:{value['customer_ref']}")
    return found


class ReadModel:
    """The unified topics' latest values, indexed as the API asks for them."""

    def __init__(self) -> None:
        self.values: dict[str, dict[str, dict[str, Any]]] = {topic: {} for topic in TOPICS}
        self.by_article: dict[str, dict[str, set[str]]] = {INVENTORY: {}, AVAILABILITY: {},
                                                           ALERTS: {}}  # fmt: skip
        self.lines_of: dict[str, set[str]] = {}  # customer ref → order line keys
        self.sources: dict[str, dict[str, Any]] = {}  # system → its newest record's stamps
        self.log = ChangeLog()

    # -- filling

    def apply(self, topic: str, key: str, value: dict[str, Any] | None, partition: int,
              offset: int) -> Change:  # fmt: skip
        """One record of ``topic`` (None: a tombstone); the change it is, also kept in ``log``.
        A topic the model does not read raises ``ValueError`` (the runner's mistake, not input)."""
        if topic not in self.values:
            raise ValueError(f"the read model does not read {topic}")
        held = self.values[topic]
        before = held.get(key)
        subjects = subjects_of(topic, key, before) | subjects_of(topic, key, value)
        if value is None:
            held.pop(key, None)
        else:
            held[key] = value
        self._index(topic, key, before, value)
        if value is not None and value.get("source_system") and value.get("source_committed_at"):
            newest = self.sources.get(value["source_system"])
            if newest is None or str(value["source_committed_at"]) >= str(
                newest["source_committed_at"]
            ):
                self.sources[value["source_system"]] = _freshness([value]) or {}
        change = Change(topic, key, value, partition, offset, frozenset(subjects))
        self.log.append(change)
        return change

    def _index(self, topic: str, key: str, before: Mapping[str, Any] | None,
               after: Mapping[str, Any] | None) -> None:  # fmt: skip
        if topic in self.by_article:
            article = stock_key(topic, key)[0]
            keys = self.by_article[topic].setdefault(article, set())
            if after is None:
                keys.discard(key)
                if not keys:
                    del self.by_article[topic][article]
            else:
                keys.add(key)
        elif topic == ORDER_LINES:
            for value, adding in ((before, False), (after, True)):
                ref = (value or {}).get("customer_ref")
                if not ref:
                    continue
                keys = self.lines_of.setdefault(ref, set())
                if adding:
                    keys.add(key)
                else:
                    keys.discard(key)
                    if not keys:
                        del self.lines_of[ref]

    # -- questions

    def _of_article(self, topic: str, gtin: str) -> list[dict[str, Any]]:
        keys = self.by_article[topic].get(check_gtin(gtin), set())
        return [self.values[topic][key] for key in sorted(keys)]

    def _known(self, gtin: str) -> None:
        if not any(gtin in self.by_article[topic] for topic in (INVENTORY, AVAILABILITY)):
            raise QueryError(404, "unknown_article", f"no inventory level and no availability "
                             f"for the article {gtin} (a GTIN the sources have not reported)")  # fmt: skip

    def availability(self, gtin: str, channel: str | None = None) -> dict[str, Any]:
        """What can be sold of ``gtin``: per group (``channel``: only that channel's groups) and
        per location, each figure with its explanation."""
        figures = self._of_article(AVAILABILITY, gtin)
        self._known(gtin)
        groups = [f for f in figures if f["scope"] == "group"
                  and (channel is None or f.get("channel") == channel)]  # fmt: skip
        locations = [f for f in figures if f["scope"] == "location"]
        if channel is not None:
            wanted = {s["location_id"] for g in groups for s in g.get("explanation", ())}
            locations = [f for f in locations if f["scope_id"] in wanted]
        return {"gtin": gtin, "groups": groups, "locations": locations,
                "freshness": _freshness([*groups, *locations])}  # fmt: skip

    def inventory(self, gtin: str, location: str | None = None) -> dict[str, Any]:
        levels = self._of_article(INVENTORY, gtin)
        self._known(gtin)
        if location is not None:
            check_location(location)
            levels = [lv for lv in levels if lv["location_id"] == location]
        return {"gtin": gtin, "levels": levels, "freshness": _freshness(levels)}

    def golden_id(self, ref: str) -> str:
        """The golden id of a golden id or of any member record's ref."""
        if GOLDEN_PATTERN.match(ref):
            if ref not in self.values[GOLDEN]:
                raise QueryError(404, "unknown_customer", f"no golden customer {ref} (merged "
                                 "into another, erased, or never made)")  # fmt: skip
            return ref
        if not REF_PATTERN.match(ref):
            raise QueryError(400, "bad_customer_ref", f"{ref!r} is neither a golden id (g- and "
                             "16 hex digits) nor a record ref (<system>:<id>, e.g. shop:17)")  # fmt: skip
        link = self.values[LINKS].get(ref)
        if link is None or link["golden_id"] not in self.values[GOLDEN]:
            raise QueryError(404, "unknown_customer", f"no golden customer holds the record {ref}")
        return str(link["golden_id"])

    def customer(self, ref: str) -> dict[str, Any]:
        golden = self.values[GOLDEN][self.golden_id(ref)]
        return {"customer": golden, "freshness": _freshness([golden])}

    def order_lines(self, ref: str) -> dict[str, Any]:
        """The order lines of ``ref``'s customer, every channel, newest first."""
        gid = self.golden_id(ref)
        members = self.values[GOLDEN][gid]["members"]
        lines = [self.values[ORDER_LINES][key] for member in members
                 for key in self.lines_of.get(member, ())]  # fmt: skip
        lines.sort(key=lambda line: (str(line.get("ordered_at") or ""), line["order_id"],
                                     line["line_no"]), reverse=True)  # fmt: skip
        return {"golden_id": gid, "members": members, "lines": lines,
                "freshness": _freshness(lines)}  # fmt: skip

    def alerts(self, gtin: str | None = None, location: str | None = None,
               status: str | None = "firing") -> dict[str, Any]:  # fmt: skip
        if gtin is not None:
            found = self._of_article(ALERTS, gtin)
        else:
            found = [self.values[ALERTS][key] for key in sorted(self.values[ALERTS])]
        if location is not None:
            check_location(location)
            found = [a for a in found if a["scope_id"] == location
                     or any(s["location_id"] == location
                            for s in (a.get("availability") or {}).get("explanation", ()))]  # fmt: skip
        if status is not None:
            found = [a for a in found if a["status"] == status]
        return {"alerts": found, "freshness": _freshness(found)}

    def stock(self) -> list[dict[str, Any]]:
        """Every article: its levels per location and its figures (the dashboard's table)."""
        rows = []
        for gtin in sorted(set(self.by_article[INVENTORY]) | set(self.by_article[AVAILABILITY])):
            figures = {f["scope_id"]: f for f in self._of_article(AVAILABILITY, gtin)}
            levels = self._of_article(INVENTORY, gtin)
            locations = {
                level["location_id"]: {
                    "on_hand": level["on_hand"],
                    "available": (figures.get(level["location_id"]) or {}).get("available"),
                }
                for level in levels
            }
            groups = {
                scope: f["available"] for scope, f in figures.items() if f["scope"] == "group"
            }
            rows.append({"gtin": gtin, "locations": locations, "groups": groups})
        return rows

    def current(self, subjects: frozenset[str]) -> list[Change]:
        """The values held now of what ``subjects`` name (all of it, if none), as changes (at
        offset -1): what a stream that cannot resume sends first."""
        found: list[Change] = []
        for topic in TOPICS:
            for key, value in sorted(self.values[topic].items()):
                about = frozenset(subjects_of(topic, key, value))
                if not subjects or subjects & about:
                    found.append(Change(topic, key, value, 0, -1, about))
        return found

    def counts(self) -> dict[str, int]:
        return {topic: len(values) for topic, values in self.values.items()}
