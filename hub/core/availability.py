"""Available-to-sell: the one figure every channel sells from, per article and location and per
article and location group, each with every number behind it.

Step name ``availability``. The stage reads the unified inventory levels (one per article and
location, as each source reported it) and keeps, per article, the latest level of each location
(``Store`` entry ``stock:<gtin>``). Every change recomputes the figures it touches from those
levels — the location's own and those of the groups it belongs to — and never adds deltas: a
replay, a restart or the same levels in another order give the same figures (idempotent by
construction). A level deleted upstream leaves the totals; a figure left with no level behind it
becomes a tombstone.

    location available = max(0, on_hand - reserved - safety_stock - kept_back - unsellable)
    group available    = Σ over its locations of max(0, location available - the channel's
                         kept_back there)

``kept_back`` is what the network's safety rules keep (``hub.core.network``), on top of the
source's own ``safety_stock``. What would be below 0 is kept in ``shortfall``. Arithmetic is
``Decimal`` throughout.

Changes are applied in batches (``apply_batch``), coalesced per article: a burst of changes of
one article makes each of its figures once. Pure apart from the ``Store`` it is given; what it
refuses is an ``InvalidEvent``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import cached_property
from typing import Any

import orjson

from hub.core.alerts import Alerting
from hub.core.engine import Outcome, Store
from hub.core.lists import ChunkedList
from hub.core.network import Group, Network
from hub.core.records import Document, Output, Tombstone, Upsert, content_digest, json_time
from hub.errors import InvalidEvent

STEP = "availability"
TOPIC = "unified.availability"
FEED = "hub.stock.levels"  # the id of the topic the stage reads
INVENTORY = "unified.inventory"
ARTICLES = "stock:articles"  # the list of the articles this state holds
ZERO = Decimal(0)
CAUSE = frozenset({"source_system", "source_position", "source_committed_at", "emitted_at"})


@dataclass(frozen=True, slots=True)
class Level:
    """A location's latest level of one article, as the stage keeps it: the numbers, and their
    text as they are written into figures (``entry``, also the stored form)."""

    on_hand: Decimal
    reserved: Decimal
    safety_stock: Decimal
    unsellable: Decimal
    unit: str
    system: str
    position: str
    entry: dict[str, str]

    @classmethod
    def of_entry(cls, entry: Mapping[str, Any]) -> Level:
        return cls(
            Decimal(entry["on_hand"]), Decimal(entry["reserved"]), Decimal(entry["safety"]),
            Decimal(entry["unsellable"]), entry["unit"], entry["sys"], entry["pos"], dict(entry),
        )  # fmt: skip


class AvailabilityStage:
    """Turns inventory levels into availability figures and alerts (``hub.core.alerts``).

    ``apply`` takes one record of ``unified.inventory`` (its key, its JSON value or None for a
    tombstone, the source position it carries) and returns the records to publish. Raises
    ``InvalidEvent`` for a level the network cannot place: an unknown location
    (``unknown_location``), an article whose locations report different units
    (``unit_mismatch``), a record that is no inventory level (``invalid_record``); nothing of it
    is kept then."""

    def __init__(self, network: Network, store: Store) -> None:
        self.network, self.store = network, store
        # What unified.availability holds, GTIN → figure key → figure_mark (``recompute`` sets it at
        # a takeover): the marks an article starts with when this state first meets it.
        self.published: Mapping[str, Mapping[str, Any]] = {}
        self.alerting = Alerting(network, store)

    # -- input

    def apply(
        self, key: str, value: Mapping[str, Any] | None, position: str, now: datetime
    ) -> Outcome:
        """One change: ``apply_batch`` of one. Raises the ``InvalidEvent`` it is refused with;
        ``skipped`` is "duplicate" when it was a replay or changed no figure."""
        applied = self.apply_batch([Change(key, value, position)], now)
        if applied.refused:
            raise applied.refused[0][1]
        return Outcome(applied.outputs, skipped="duplicate" if applied.duplicates else None,
                       noops=applied.noops)  # fmt: skip

    def apply_batch(self, changes: Sequence[Change], now: datetime) -> Applied:
        """Changes of ``unified.inventory`` (in log order; a record's value None: a tombstone),
        coalesced per article: each article's levels take every change first, then each figure
        they touch is made once, from the latest levels, with the latest change behind it as its
        cause. What a change is refused for (``InvalidEvent``: ``unknown_location``,
        ``unit_mismatch``, ``invalid_record``) is in ``refused`` with the change's index; nothing
        of it is kept."""
        applied = Applied()
        articles: dict[str, list[tuple[int, Change]]] = {}
        for index, change in enumerate(changes):
            gtin, _, location = change.key.partition("@")
            if not location or not gtin:
                applied.refuse(
                    index,
                    InvalidEvent(
                        "invalid_record", f"not an inventory key <gtin>@<location>: {change.key!r}"
                    ),
                )
            elif not self.network.knows(location):
                applied.refuse(index, InvalidEvent(
                    "unknown_location",
                    f"{location} is not declared in the network file (connectors/network.yaml); "
                    "declare it, restart the worker and replay",
                ))  # fmt: skip
            else:
                articles.setdefault(gtin, []).append((index, change))
        for gtin, mine in articles.items():
            try:
                self._article(gtin, mine, now, applied)
            except Exception as exc:  # a bug met by these changes: refused, the others go on
                for index, _ in mine:
                    applied.refuse(index, InvalidEvent("internal_error", repr(exc)))
        applied.refused.sort(key=lambda refusal: refusal[0])
        return applied

    def _article(
        self, gtin: str, changes: list[tuple[int, Change]], now: datetime, applied: Applied
    ) -> None:
        stock = self.store.get(_ref(gtin))
        new = stock is None  # listed once it is kept: bad input leaves nothing behind
        if stock is None:
            # What the topic holds of it already, whoever wrote it (set at takeover).
            stock = {"levels": {}, "gone": {}, "marks": dict(self.published.get(gtin, {}))}
        levels: dict[str, Any] = dict(stock.get("levels") or {})
        gone: dict[str, Any] = dict(stock.get("gone") or {})
        causes: dict[str, tuple[int, Cause]] = {}  # location → the last change that moved it
        kept_any = False
        for index, change in changes:
            location = change.key.partition("@")[2]
            # The newest change seen of this location, kept or deleted: an older one is a
            # replay. Positions sort within one source; a location is reported by one source.
            kept = levels.get(location) or gone.get(location)
            if change.value is None:  # a tombstone without a position cannot be a replay
                if kept and change.position and kept["pos"] >= change.position:
                    applied.duplicates += 1
                    continue
                was = levels.pop(location, None)
                gone[location] = {"sys": kept["sys"] if kept else "", "pos": change.position}
                kept_any = True
                if was is None:  # nothing was counted: remember the delete, publish nothing
                    applied.duplicates += 1
                    continue
                cause = Cause(gone[location]["sys"], change.position, now, now)
            else:
                try:
                    level = self._level(change.key, change.value)
                except InvalidEvent as error:
                    applied.refuse(index, error)
                    continue
                if kept and kept["sys"] in (level.system, "") and kept["pos"] >= level.position:
                    applied.duplicates += 1
                    continue
                units = {entry["unit"] for where, entry in levels.items() if where != location}
                if units and level.unit not in units:
                    applied.refuse(index, InvalidEvent(
                        "unit_mismatch",
                        f"{change.key} is counted in {level.unit}, its other locations in "
                        f"{', '.join(sorted(units))}: one article, one unit (fix the source's unit)",
                    ))  # fmt: skip
                    continue
                levels[location] = level.entry
                gone.pop(location, None)
                kept_any = True
                committed = datetime.fromisoformat(level.entry["at"])
                cause = Cause(level.system, level.position, committed, now)
            causes[location] = (index, cause)
        if not kept_any:
            return
        marks = dict(stock.get("marks") or {})
        if causes:
            figures = self._touched(gtin, levels, causes)
            made = self._publish(figures, marks, _known(levels, gone))
            applied.outputs += made.outputs
            applied.noops += made.noops
        self._keep(gtin, {"levels": levels, "gone": gone, "marks": marks}, new)

    def _touched(
        self, gtin: str, levels: Mapping[str, Any], causes: Mapping[str, tuple[int, Cause]]
    ) -> list[tuple[str, Made, Cause]]:
        """The figures the changed locations (``causes``) make: their own, then their groups',
        each group's with the last change among its locations as its cause."""
        current = {where: Level.of_entry(entry) for where, entry in levels.items()}
        figures: list[tuple[str, Made, Cause]] = []
        groups: dict[str, tuple[int, Group, Cause]] = {}
        for location, (index, cause) in causes.items():
            mine = current.get(location)
            own = self._figure(gtin, location, None, [(location, mine)], cause) if mine else None
            figures.append((f"{gtin}@{location}", own, cause))
            for group in self.network.groups_of[location]:
                if group.name not in groups or groups[group.name][0] < index:
                    groups[group.name] = (index, group, cause)
        for name in sorted(groups):
            _, group, cause = groups[name]
            figures.append(
                (f"{gtin}@group:{name}", self._group(gtin, group, current, cause), cause)
            )
        return figures

    def _keep(self, gtin: str, stock: dict[str, Any], new: bool) -> None:
        if new:
            ChunkedList(self.store, ARTICLES).append(gtin)
        self.store.put(_ref(gtin), stock)

    def _level(self, key: str, value: Mapping[str, Any]) -> Level:
        # The engine validated the record against the model when it made it: read what the
        # figures need, and refuse what does not parse.
        try:
            numbers = [Decimal(value["on_hand"])] + [
                Decimal(value.get(name) or 0) for name in ("reserved", "safety_stock", "unsellable")
            ]
            unit, system = str(value["unit"]), str(value["source_system"])
            position = str(value["source_position"])
            committed = json_time(datetime.fromisoformat(value["source_committed_at"]))
            where = f"{value['gtin']}@{value['location_id']}"
        except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
            raise InvalidEvent("invalid_record", f"not an inventory level: {exc!r}") from exc
        if not all(number.is_finite() for number in numbers):
            raise InvalidEvent("invalid_record", f"not an inventory level: {numbers} in {key}")
        if where != key:
            raise InvalidEvent("invalid_record", f"record of {where} under key {key}")
        on_hand, reserved, safety, unsellable = numbers
        entry = {"on_hand": str(on_hand), "reserved": str(reserved), "safety": str(safety),
                 "unsellable": str(unsellable), "unit": unit, "sys": system, "pos": position,
                 "at": committed}  # fmt: skip
        return Level(on_hand, reserved, safety, unsellable, unit, system, position, entry)

    # -- figures

    def _group(self, gtin: str, group: Group, levels: Mapping[str, Level], cause: Cause) -> Made:
        """A group's figure: None when none of its locations has a level."""
        members = sorted(group.members & levels.keys())
        if not members:
            return None
        located = [(member, levels[member]) for member in members]
        return self._figure(gtin, f"group:{group.name}", group, located, cause)

    def _figure(
        self, gtin: str, scope_id: str, group: Group | None, located: list[tuple[str, Level]],
        cause: Cause,
    ) -> dict[str, Any]:  # fmt: skip
        """An ``Availability`` record in its JSON form, made directly in one pass (no model object:
        several are made per change; a unit test holds them valid and equal to the model's own
        serialisation)."""
        network, channel = self.network, group.channel if group else None
        contents, rules = [], set[str]()
        on_hand = reserved = safety = kept_back = unsellable = available = shortfall = ZERO
        contributing = 0
        for location, level in located:
            kept, own = network.safety(location)
            extra, by_channel = network.safety(location, channel) if channel else (ZERO, ())
            rules.update(own, by_channel)
            raw = level.on_hand - level.reserved - level.safety_stock - kept - level.unsellable
            mine, short = (raw, ZERO) if raw > 0 else (ZERO, -raw)
            gives = mine - extra if mine > extra else ZERO
            text = level.entry
            contents.append({
                "location_id": location, "location_type": network.location_type(location),
                "on_hand": text["on_hand"], "reserved": text["reserved"],
                "safety_stock": text["safety"], "kept_back": str(kept + extra),
                "unsellable": text["unsellable"], "available": str(mine), "shortfall": str(short),
                "contributes": str(gives), "source_system": level.system,
                "source_position": level.position, "source_committed_at": text["at"],
            })  # fmt: skip
            on_hand += level.on_hand
            reserved += level.reserved
            safety += level.safety_stock
            kept_back += kept + extra
            unsellable += level.unsellable
            available += gives
            shortfall += short
            contributing += gives > 0
        rule: dict[str, Any] = {"network_version": network.version, "network_digest": network.digest,
                "group": group.name if group else None, "channel": channel,
                "safety_rules": sorted(rules)}  # fmt: skip
        return {
            "schema_version": 1, "gtin": gtin, "scope": "group" if group else "location",
            "scope_id": scope_id, "channel": channel, "unit": located[0][1].unit,
            "available": str(available), "shortfall": str(shortfall), "on_hand": str(on_hand),
            "reserved": str(reserved), "safety_stock": str(safety), "kept_back": str(kept_back),
            "unsellable": str(unsellable), "locations": len(located),
            "contributing": contributing, "explanation": contents, "rule": rule,
        } | cause.fields  # fmt: skip

    # -- output

    def _publish(
        self, figures: list[tuple[str, Made, Cause]], marks: dict[str, Any],
        known: Mapping[str, str],
    ) -> Outcome:  # fmt: skip
        """The records of ``figures`` (None: gone; each with the change that made it) that
        differ from what was published, with the alerts they raise; ``marks`` (figure key →
        ``figure_mark`` of what was published) kept up to date. ``known``: the newest position
        this state has seen of each location of the article, level or delete. A figure is
        never published over one made from a level this state has not seen yet (a worker group
        replaying the feed from its start, or behind another): it would take the figure back in
        time."""
        outputs: list[Output] = []
        noops = 0
        for key, content, cause in figures:
            published = marks.get(key)
            if published is not None and _behind(published["v"], known):
                noops += 1
                continue
            if content is None:  # gone: its levels deleted (seen: not behind), or undeclared
                if published is None:
                    noops += 1
                    continue
                del marks[key]
                outputs.append(Tombstone(TOPIC, key, cause.position))
            else:
                mark = figure_mark(content)
                if published is not None and published["d"] == mark["d"]:
                    noops += 1
                    continue
                marks[key] = mark
                outputs.append(Document(TOPIC, key, content, cause.position))
            outputs += self.alerting.observe(key, content, cause)
        return Outcome(outputs, noops=noops)

    # -- a new network file, a takeover

    def recompute(
        self, now: datetime, published: Mapping[str, Mapping[str, Any]] | None = None
    ) -> Outcome:
        """Every article's figures again, with the network as it is now: a location that left a
        group leaves its figure, a group or location no longer declared becomes tombstones. Only
        what differs from what was published is published: by default what this state says it
        published; with ``published`` (GTIN → figure key → ``figure_mark`` of its record, as
        the topic holds them), what is really there, whoever wrote it (kept for the articles this
        state meets later)."""
        if published is not None:
            self.published = published
        cause = Cause("hub", f"network:{self.network.version}:{self.network.digest}", now, now)
        outputs: list[Output] = []
        noops = 0
        for gtin in ChunkedList(self.store, ARTICLES).items():
            stock = self.store.get(_ref(gtin)) or {}
            stock = {"levels": stock.get("levels") or {}, "gone": stock.get("gone") or {},
                     "marks": stock.get("marks") or {}}  # fmt: skip
            marks = dict(stock["marks"] if published is None else published.get(gtin, {}))
            levels = {where: Level.of_entry(entry) for where, entry in stock["levels"].items()
                      if self.network.knows(where)}  # fmt: skip
            figures: dict[str, Made] = dict.fromkeys(marks)
            for location, level in levels.items():
                key = f"{gtin}@{location}"
                figures[key] = self._figure(gtin, location, None, [(location, level)], cause)
            for group in self.network.groups.values():
                figures[f"{gtin}@group:{group.name}"] = self._group(gtin, group, levels, cause)
            known = _known(stock["levels"], stock["gone"])
            made = self._publish([(key, figure, cause) for key, figure in sorted(figures.items())],
                                 marks, known)  # fmt: skip
            outputs += made.outputs
            noops += made.noops
            self.store.put(_ref(gtin), stock | {"marks": marks})
        return Outcome(outputs, noops=noops)

    # -- the feed


def feed_change(value: bytes | None) -> Change:
    """The change a record of the stock feed (``feed_record``) carries; raises ``InvalidEvent``."""
    try:
        envelope = orjson.loads(value or b"")
        key, position, level = envelope["key"], envelope["position"], envelope["level"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise InvalidEvent("invalid_record", f"not a stock feed record: {exc!r}") from exc
    if (
        not isinstance(key, str)
        or not isinstance(position, str)
        or not (level is None or isinstance(level, dict))
    ):
        raise InvalidEvent("invalid_record", "not a stock feed record: key, position, level")
    return Change(key, level, position)


def feed_record(output: Output) -> tuple[bytes, bytes]:
    """The stock feed's record (key: the GTIN; value) of a ``unified.inventory`` output: every
    location of an article meets in one partition of the feed, whichever worker made it."""
    gtin = output.key.partition("@")[0]
    level = output.content if isinstance(output, Upsert) else None
    if isinstance(output, Upsert) and level is None:
        level = output.record.model_dump(mode="json")
    envelope = {"key": output.key, "position": output.position, "level": level}
    return gtin.encode(), orjson.dumps(envelope)


Made = dict[str, Any] | None  # an Availability record's JSON form; None: no figure


@dataclass(frozen=True, slots=True)
class Change:
    """A record of ``unified.inventory``: its key, its JSON value (None: a tombstone), the source
    position it carries."""

    key: str
    value: Mapping[str, Any] | None
    position: str


@dataclass(slots=True)
class Applied:
    """What ``apply_batch`` made: the records to publish, and what it refused."""

    outputs: list[Output] = field(default_factory=list)
    noops: int = 0  # figures made again as they were published
    refused: list[tuple[int, InvalidEvent]] = field(default_factory=list)  # change index, why
    duplicates: int = 0  # changes already seen (or a delete of what was never counted)

    def refuse(self, index: int, error: InvalidEvent) -> None:
        self.refused.append((index, error))


@dataclass(frozen=True)
class Cause:
    """The level change that made a figure: its provenance travels on the figure."""

    system: str
    position: str
    committed_at: datetime
    now: datetime

    @cached_property
    def fields(self) -> dict[str, str]:
        """The figure's provenance fields, in their JSON form."""
        return {"source_system": self.system, "source_position": self.position,
                "source_committed_at": json_time(self.committed_at),
                "emitted_at": json_time(self.now)}  # fmt: skip


def _ref(gtin: str) -> str:
    return f"stock:{gtin}"


def figure_mark(content: Mapping[str, Any]) -> dict[str, Any]:
    """What is kept of a published figure: what tells two apart (``d``, provenance left out) and
    the position of each level behind it (``v``), to tell whether a figure is older."""
    return {"d": _digest(content),
            "v": {entry["location_id"]: entry["source_position"] for entry in content["explanation"]}}  # fmt: skip


def _known(levels: Mapping[str, Any], gone: Mapping[str, Any]) -> dict[str, str]:
    """The newest position seen of each location: its level's, or its delete's."""
    return {location: entry["pos"] for location, entry in (*gone.items(), *levels.items())}


def _behind(made_from: Mapping[str, str], known: Mapping[str, str]) -> bool:
    """Whether a figure made from the levels at ``made_from`` (location → position) holds a
    level newer than this state knows of (or one it never saw)."""
    return any(known.get(location, "") < position for location, position in made_from.items())


def _digest(content: Mapping[str, Any]) -> str:
    """What a consumer would see, minus provenance (the change that made it, when)."""
    return content_digest({name: value for name, value in content.items() if name not in CAUSE})
