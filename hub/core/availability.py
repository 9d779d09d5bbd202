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

Pure apart from the ``Store`` it is given; ``apply`` raises only ``InvalidEvent``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
from pydantic import ValidationError

from hub.core.alerts import Alerting
from hub.core.engine import Outcome, Store, digest
from hub.core.lists import ChunkedList
from hub.core.network import Group, Network
from hub.core.records import Output, Tombstone, Upsert
from hub.errors import InvalidEvent
from hub.models import Availability, AvailabilityRule, InventoryLevel, StockSource

STEP = "availability"
TOPIC = "unified.availability"
FEED = "hub.stock.levels"  # the id of the topic the stage reads
INVENTORY = "unified.inventory"
ARTICLES = "stock:articles"  # the list of the articles this state holds
NETWORK = "stock:network"  # the network file the state's figures were made with
ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Level:
    """A location's latest level of one article, as the stage keeps it."""

    on_hand: Decimal
    reserved: Decimal
    safety_stock: Decimal
    unsellable: Decimal
    unit: str
    system: str
    position: str
    committed_at: datetime

    def entry(self) -> dict[str, Any]:
        return {
            "on_hand": str(self.on_hand), "reserved": str(self.reserved),
            "safety": str(self.safety_stock), "unsellable": str(self.unsellable),
            "unit": self.unit, "sys": self.system, "pos": self.position,
            "at": self.committed_at.isoformat(),
        }  # fmt: skip

    @classmethod
    def of_entry(cls, entry: Mapping[str, Any]) -> Level:
        return cls(
            Decimal(entry["on_hand"]), Decimal(entry["reserved"]), Decimal(entry["safety"]),
            Decimal(entry["unsellable"]), entry["unit"], entry["sys"], entry["pos"],
            datetime.fromisoformat(entry["at"]),
        )  # fmt: skip

    @classmethod
    def of_record(cls, record: InventoryLevel) -> Level:
        return cls(
            record.on_hand, record.reserved or ZERO, record.safety_stock or ZERO,
            record.unsellable or ZERO, record.unit, record.source_system, record.source_position,
            record.source_committed_at,
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
        self.alerting = Alerting(network, store)

    # -- input

    def apply(
        self, key: str, value: Mapping[str, Any] | None, position: str, now: datetime
    ) -> Outcome:
        gtin, _, location = key.partition("@")
        if not location or not gtin:
            raise InvalidEvent("invalid_record", f"not an inventory key <gtin>@<location>: {key!r}")
        if not self.network.knows(location):
            raise InvalidEvent(
                "unknown_location",
                f"{location} is not declared in the network file (connectors/network.yaml); "
                "declare it, restart the worker and replay",
            )
        stock = self.store.get(_ref(gtin))
        new = stock is None  # listed once it is kept: bad input leaves nothing behind
        if stock is None:
            stock = {"levels": {}, "gone": {}, "keys": []}
        levels: dict[str, Any] = dict(stock["levels"])
        gone: dict[str, Any] = dict(stock["gone"])
        # The newest change seen of this location, kept or deleted: an older one is a replay.
        # Positions sort within one source; a location is reported by one source.
        kept = levels.get(location) or gone.get(location)
        if value is None:  # a tombstone without a position cannot be a replay: it applies
            if kept and position and kept["pos"] >= position:
                return Outcome(skipped="duplicate")
            was = levels.pop(location, None)
            gone[location] = {"sys": kept["sys"] if kept else "", "pos": position}
            if was is None:  # nothing was counted: remember the delete, publish nothing
                self._keep(gtin, stock | {"levels": levels, "gone": gone}, new)
                return Outcome(skipped="duplicate")
        else:
            level = self._level(key, value)
            if kept and kept["sys"] in (level.system, "") and kept["pos"] >= level.position:
                return Outcome(skipped="duplicate")
            units = {entry["unit"] for where, entry in levels.items() if where != location}
            if units and level.unit not in units:
                raise InvalidEvent(
                    "unit_mismatch",
                    f"{key} is counted in {level.unit}, its other locations in "
                    f"{', '.join(sorted(units))}: one article, one unit (fix the source's unit)",
                )
            levels[location] = level.entry()
            gone.pop(location, None)
        current = {where: Level.of_entry(entry) for where, entry in levels.items()}
        mine = current.get(location)
        cause = (
            Cause(mine.system, mine.position, mine.committed_at, now) if mine is not None
            else Cause(gone[location]["sys"], position, now, now)  # a tombstone says no more
        )  # fmt: skip
        touched = [(f"{gtin}@{location}", self.location_figure(gtin, location, mine, cause)
                    if mine else None)]  # fmt: skip
        touched += [
            (f"{gtin}@group:{group.name}", self.group_figure(gtin, group, current, cause))
            for group in self.network.groups_of[location]
        ]
        outcome, keys = self._publish(touched, cause, set(stock["keys"]))
        self._keep(gtin, {"levels": levels, "gone": gone, "keys": sorted(keys)}, new)
        return outcome

    def _keep(self, gtin: str, stock: dict[str, Any], new: bool) -> None:
        if new:
            ChunkedList(self.store, ARTICLES).append(gtin)
        self.store.put(_ref(gtin), stock)

    def _level(self, key: str, value: Mapping[str, Any]) -> Level:
        try:
            record = InventoryLevel.model_validate(value)
        except ValidationError as exc:
            raise InvalidEvent("invalid_record", f"not an inventory level: {exc}") from exc
        if record.key != key:
            raise InvalidEvent("invalid_record", f"record of {record.key} under key {key}")
        return Level.of_record(record)

    # -- figures

    def location_figure(self, gtin: str, location: str, level: Level, cause: Cause) -> Availability:
        """The figure of one location (its own safety rules, every channel's)."""
        kept, rules = self.network.safety(location)
        source = self._source(location, level, kept, ZERO)
        return self._record(gtin, location, None, [source], level.unit, rules, cause)

    def group_figure(
        self, gtin: str, group: Group, levels: Mapping[str, Level], cause: Cause
    ) -> Availability | None:
        """The figure of one group: None when none of its locations has a level."""
        sources, rules = [], set[str]()
        for location in sorted(group.members & levels.keys()):
            kept, own = self.network.safety(location)
            extra, channel = self.network.safety(location, group.channel)
            sources.append(self._source(location, levels[location], kept, extra))
            rules |= {*own, *channel}
        if not sources:
            return None
        unit = levels[sources[0].location_id].unit
        return self._record(gtin, f"group:{group.name}", group, sources, unit, sorted(rules), cause)

    def _source(self, location: str, level: Level, kept: Decimal, extra: Decimal) -> StockSource:
        raw = level.on_hand - level.reserved - level.safety_stock - kept - level.unsellable
        available, shortfall = max(ZERO, raw), max(ZERO, -raw)
        return StockSource(
            location_id=location, location_type=self.network.location_type(location),
            on_hand=level.on_hand, reserved=level.reserved, safety_stock=level.safety_stock,
            kept_back=kept + extra, unsellable=level.unsellable, available=available,
            shortfall=shortfall, contributes=max(ZERO, available - extra), source_system=level.system,
            source_position=level.position, source_committed_at=level.committed_at,
        )  # fmt: skip

    def _record(
        self, gtin: str, scope_id: str, group: Group | None, sources: list[StockSource],
        unit: str, rules: Any, cause: Cause,
    ) -> Availability:  # fmt: skip
        def total(name: str) -> Decimal:
            return sum((getattr(s, name) for s in sources), ZERO)

        return Availability(
            gtin=gtin, scope="group" if group else "location", scope_id=scope_id,
            channel=group.channel if group else None, unit=unit, available=total("contributes"),
            shortfall=total("shortfall"), on_hand=total("on_hand"), reserved=total("reserved"),
            safety_stock=total("safety_stock"), kept_back=total("kept_back"),
            unsellable=total("unsellable"), locations=len(sources),
            contributing=sum(1 for s in sources if s.contributes > 0), explanation=sources,
            rule=AvailabilityRule(
                network_version=self.network.version, network_digest=self.network.digest,
                group=group.name if group else None, channel=group.channel if group else None,
                safety_rules=list(rules),
            ),
            source_system=cause.system, source_position=cause.position,
            source_committed_at=cause.committed_at, emitted_at=cause.now,
        )  # fmt: skip

    # -- output

    def _publish(
        self, figures: list[tuple[str, Availability | None]], cause: Cause, keys: set[str]
    ) -> tuple[Outcome, set[str]]:
        """The records of ``figures`` (None: gone) that differ from what was published, with the
        alerts they raise; ``keys``, the figures published of the article, kept up to date."""
        outputs: list[Output] = []
        noops = 0
        for key, figure in figures:
            made = self._emit(key, figure, cause)
            noops += made is None
            outputs += made or ()
            if figure is None:
                keys.discard(key)
            else:
                keys.add(key)
        return Outcome(outputs, noops=noops), keys

    # -- a new network file

    def rules_changed(self) -> bool:
        """Whether the figures in this state were made with another network file."""
        return (self.store.get(NETWORK) or {}).get("digest") != self.network.digest

    def recompute(self, now: datetime) -> Outcome:
        """Every article's figures again, with the network as it is now: a location that left a
        group leaves its figure, a group or location no longer declared becomes tombstones. Only
        what changed is published; then the state says it was made with this network."""
        cause = Cause("hub", f"network:{self.network.version}:{self.network.digest}", now, now)
        outputs: list[Output] = []
        noops = 0
        for gtin in ChunkedList(self.store, ARTICLES).items():
            stock = self.store.get(_ref(gtin)) or {"levels": {}, "gone": {}, "keys": []}
            levels = {where: Level.of_entry(entry) for where, entry in stock["levels"].items()
                      if self.network.knows(where)}  # fmt: skip
            figures: dict[str, Availability | None] = {key: None for key in stock["keys"]}
            for location, level in levels.items():
                figures[f"{gtin}@{location}"] = self.location_figure(gtin, location, level, cause)
            for group in self.network.groups.values():
                key = f"{gtin}@group:{group.name}"
                figures[key] = self.group_figure(gtin, group, levels, cause)
            made, keys = self._publish(sorted(figures.items()), cause, set(stock["keys"]))
            outputs += made.outputs
            noops += made.noops
            self.store.put(_ref(gtin), stock | {"keys": sorted(keys)})
        self.store.put(NETWORK, {"digest": self.network.digest, "version": self.network.version})
        return Outcome(outputs, noops=noops)

    def _emit(self, key: str, figure: Availability | None, why: Cause) -> list[Output] | None:
        """The figure's record and the alerts it raises; None when it is what was published."""
        output: Output = (
            Upsert.of(TOPIC, figure, key, why.position) if figure is not None
            else Tombstone(TOPIC, key, why.position)
        )  # fmt: skip
        mark = _digest(output)
        ref = f"avail:{key}"
        if (self.store.get(ref) or {}).get("hash", "tombstone") == mark:
            return None
        self.store.put(ref, {"hash": mark} if figure is not None else None)
        return [output, *self.alerting.observe(key, figure, why)]

    # -- the feed

    def apply_feed(self, value: bytes | None, now: datetime) -> Outcome:
        """Apply one record of the stock feed (``feed_record``); raises ``InvalidEvent``."""
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
        return self.apply(key, level, position, now)


def feed_record(output: Output) -> tuple[bytes, bytes]:
    """The stock feed's record (key: the GTIN; value) of a ``unified.inventory`` output: every
    location of an article meets in one partition of the feed, whichever worker made it."""
    gtin = output.key.partition("@")[0]
    level = output.content if isinstance(output, Upsert) else None
    if isinstance(output, Upsert) and level is None:
        level = output.record.model_dump(mode="json")
    envelope = {"key": output.key, "position": output.position, "level": level}
    return gtin.encode(), orjson.dumps(envelope)


@dataclass(frozen=True, slots=True)
class Cause:
    """The level change that made a figure: its provenance travels on the figure."""

    system: str
    position: str
    committed_at: datetime
    now: datetime


def _ref(gtin: str) -> str:
    return f"stock:{gtin}"


def _digest(output: Output) -> str:
    """What a consumer would see, minus provenance: the cause and the emission time."""
    if isinstance(output, Tombstone):
        return "tombstone"
    content = dict(output.content or {})
    for name in ("source_system", "source_position", "source_committed_at", "emitted_at"):
        content.pop(name, None)
    return digest(Upsert("", "", output.record, content=content))
