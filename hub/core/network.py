"""The stock network: which locations exist, how they group into what each channel sells from,
what every location and channel keeps back, and when stock raises an alert. Declared once, in
``connectors/network.yaml``; a new location, group or rule is a change to that file, not to code.

``parse_network`` validates a parsed document as a whole and raises ``NetworkError`` naming the
entry at fault: a group, rule or alert that names a location, type, tag, group or channel that
does not exist is refused when the file loads, never discovered in a wrong total later.

Pure: no I/O (``hub.stock.load_network`` reads the file).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hub.errors import RegistryError

LocationType = Literal["store", "warehouse", "web"]
AlertKind = Literal["low_stock", "out_of_stock", "oversell"]
LOCATION_ID = r"^(store|warehouse|web):[A-Za-z0-9_-]+$"
NAME = r"^[a-z0-9][a-z0-9_.:-]*$"


class NetworkError(RegistryError):
    """The network file is malformed or names something that does not exist."""


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Selector(_Spec):
    """Locations chosen by id, type or tag: the union of the three (empty: none)."""

    locations: tuple[str, ...] = ()
    types: tuple[LocationType, ...] = ()
    tags: tuple[str, ...] = ()


class LocationSpec(_Spec):
    type: LocationType
    name: str | None = None
    tags: tuple[str, ...] = ()


class GroupSpec(Selector):
    """A location group: the locations one channel sells from. ``each``: one group per location
    the selector picks, named after the key's ``{code}`` (the location code), e.g.
    ``click-and-collect:{code}``."""

    channel: str = Field(pattern=NAME)
    description: str | None = None
    each: bool = False


class SafetyRule(Selector):
    """Units every chosen location keeps back, on top of its source's own safety stock: for its
    own figure (every channel) when ``channels`` is empty, else only in what it gives the groups
    of those channels."""

    name: str = Field(pattern=NAME)
    description: str | None = None
    channels: tuple[str, ...] = ()
    units: Decimal = Field(ge=0)


class AlertRule(_Spec):
    """When a figure raises an alert. ``low_stock`` fires when available falls to ``threshold``
    and resolves when it rises above ``threshold + band``; ``out_of_stock`` is the same at 0 (its
    resolution is "back in stock"); ``oversell`` fires when reservations exceed what is on hand.
    ``scope``: location figures (chosen by the selector fields; none: all) or group figures
    (chosen by ``groups`` or ``channels``; none: all)."""

    name: str = Field(pattern=NAME)
    kind: AlertKind
    scope: Literal["location", "group"]
    threshold: Decimal = Field(default=Decimal(0), ge=0)
    band: Decimal = Field(default=Decimal(0), ge=0)
    locations: tuple[str, ...] = ()
    types: tuple[LocationType, ...] = ()
    tags: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()

    @field_validator("threshold")
    @classmethod
    def _finite(cls, value: Decimal) -> Decimal:
        if not value.is_finite():
            raise ValueError("must be a finite number")
        return value


class NetworkSpec(_Spec):
    version: int = Field(ge=1, description="Bumped with every change; carried in every record.")
    locations: dict[str, LocationSpec]
    groups: dict[str, GroupSpec] = {}
    safety: tuple[SafetyRule, ...] = ()
    alerts: tuple[AlertRule, ...] = ()


@dataclass(frozen=True, slots=True)
class Group:
    name: str
    channel: str
    members: frozenset[str]  # location ids


@dataclass(frozen=True)
class Network:
    """The validated network, with what the stage asks of it precomputed."""

    spec: NetworkSpec
    groups: Mapping[str, Group]

    @cached_property
    def digest(self) -> str:
        """Changes with any rule: two workers with different files never look alike."""
        content = orjson.dumps(self.spec.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(content).hexdigest()[:12]

    @property
    def version(self) -> int:
        return self.spec.version

    @cached_property
    def groups_of(self) -> Mapping[str, tuple[Group, ...]]:
        """Location id → the groups it belongs to (sorted by name)."""
        found: dict[str, list[Group]] = {location: [] for location in self.spec.locations}
        for group in sorted(self.groups.values(), key=lambda g: g.name):
            for location in group.members:
                found[location].append(group)
        return {location: tuple(groups) for location, groups in found.items()}

    def location_type(self, location: str) -> LocationType:
        return self.spec.locations[location].type

    def knows(self, location: str) -> bool:
        return location in self.spec.locations

    @cached_property
    def _safety(self) -> dict[tuple[str, str | None], tuple[Decimal, tuple[str, ...]]]:
        """(location, channel or None) → (units, rule names)."""
        table: dict[tuple[str, str | None], tuple[Decimal, tuple[str, ...]]] = {}
        for rule in self.spec.safety:
            for location in self.select(rule):
                for channel in rule.channels or (None,):
                    units, names = table.get((location, channel), (Decimal(0), ()))
                    table[(location, channel)] = (units + rule.units, (*names, rule.name))
        return table

    def safety(self, location: str, channel: str | None = None) -> tuple[Decimal, tuple[str, ...]]:
        """The units ``location`` keeps back, and the rules that say so: for its own figure
        (``channel`` None) or, on top of that, for the groups of ``channel``."""
        return self._safety.get((location, channel), (Decimal(0), ()))

    def select(self, selector: Selector | AlertRule) -> list[str]:
        """The location ids a selector picks, sorted."""
        return _select(self.spec, selector)

    def alert_rules(self, location: str | None, group: Group | None) -> list[AlertRule]:
        """The alert rules that watch a location's figure or a group's."""
        return [rule for rule in self.spec.alerts if self._watches(rule, location, group)]

    def _watches(self, rule: AlertRule, location: str | None, group: Group | None) -> bool:
        if group is not None and rule.scope == "group":
            chosen = rule.groups or rule.channels
            return not chosen or group.name in rule.groups or group.channel in rule.channels
        if location is not None and rule.scope == "location":
            chosen = rule.locations or rule.types or rule.tags
            return not chosen or location in self.select(rule)
        return False


def parse_network(document: Any, origin: str = "the network file") -> Network:
    """Validate a parsed network document; raises ``NetworkError`` saying what is wrong where."""
    if not isinstance(document, dict):
        raise NetworkError(f"{origin}: expected a mapping with version, locations, groups, …")
    try:
        spec = NetworkSpec(**document)
    except ValidationError as exc:
        raise NetworkError(f"{origin}: {exc}") from exc
    except TypeError as exc:
        raise NetworkError(f"{origin}: {exc}") from exc
    problems: list[str] = []
    for location in spec.locations:
        if not re.match(LOCATION_ID, location):
            problems.append(f"location {location!r}: ids are <type>:<code>, e.g. store:PAR01")
        elif location.split(":", 1)[0] != spec.locations[location].type:
            problems.append(f"location {location!r}: its id says one type, type: another")
    if problems:  # what follows reads the ids
        raise NetworkError(f"{origin}: " + "; ".join(problems))
    tags = {tag for location in spec.locations.values() for tag in location.tags}
    groups: dict[str, Group] = {}

    def check(where: str, selector: Selector | AlertRule) -> None:
        for location in selector.locations:
            if location not in spec.locations:
                problems.append(f"{where}: location {location!r} is not declared under locations")
        for tag in selector.tags:
            if tag not in tags:
                problems.append(f"{where}: no location has the tag {tag!r}")

    for name, group in spec.groups.items():
        check(f"group {name!r}", group)
        members = _select(spec, group)
        if group.each:
            if "{code}" not in name:
                problems.append(f"group {name!r}: each: true needs {{code}} in the group's name")
            for location in members:
                expanded = name.replace("{code}", location.split(":", 1)[1])
                groups[expanded] = Group(expanded, group.channel, frozenset({location}))
        else:
            if "{code}" in name:
                problems.append(f"group {name!r}: {{code}} in a name needs each: true")
            if not members:
                problems.append(f"group {name!r}: chooses no location")
            groups[name] = Group(name, group.channel, frozenset(members))
    channels = {group.channel for group in groups.values()}
    names: set[str] = set()
    for rule in spec.safety:
        where = f"safety rule {rule.name!r}"
        _unique(rule.name, names, where, problems)
        check(where, rule)
        if not _select(spec, rule):
            problems.append(f"{where}: chooses no location")
        problems += [
            f"{where}: no group sells for channel {c!r}" for c in _unknown(rule.channels, channels)
        ]
    names = set()
    for alert in spec.alerts:
        where = f"alert {alert.name!r}"
        _unique(alert.name, names, where, problems)
        check(where, alert)
        if alert.scope == "location" and (alert.groups or alert.channels):
            problems.append(f"{where}: a location alert chooses locations, not groups or channels")
        if alert.scope == "group" and (alert.locations or alert.types or alert.tags):
            problems.append(f"{where}: a group alert chooses groups or channels, not locations")
        problems += [f"{where}: no group {g!r}" for g in _unknown(alert.groups, set(groups))]
        problems += [
            f"{where}: no group sells for channel {c!r}" for c in _unknown(alert.channels, channels)
        ]
        if alert.kind == "oversell" and (alert.threshold or alert.band):
            problems.append(f"{where}: oversell takes no threshold nor band")
        if alert.kind == "out_of_stock" and alert.threshold:
            problems.append(f"{where}: out_of_stock fires at 0; use low_stock for a threshold")
    if problems:
        raise NetworkError(f"{origin}: " + "; ".join(problems))
    return Network(spec, groups)


def _select(spec: NetworkSpec, selector: Selector | AlertRule) -> list[str]:
    chosen = {location for location in selector.locations if location in spec.locations}
    for location, declared in spec.locations.items():
        if declared.type in selector.types or set(declared.tags) & set(selector.tags):
            chosen.add(location)
    return sorted(chosen)


def _unique(name: str, seen: set[str], where: str, problems: list[str]) -> None:
    if name in seen:
        problems.append(f"{where}: the name is used twice")
    seen.add(name)


def _unknown(names: Iterable[str], known: set[str]) -> list[str]:
    return [name for name in names if name not in known]
