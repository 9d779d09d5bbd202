"""The processing step shared by every runner: raw Debezium record → canonical outputs.

Step name ``normalise``. Routing never drops silently: a table with no route is an ``InvalidEvent``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from hub.core.debezium import ChangeEvent, decode
from hub.core.inventory import pos_stock
from hub.core.records import Output
from hub.errors import InvalidEvent

STEP = "normalise"

Normaliser = Callable[[ChangeEvent, datetime], list[Output]]

ROUTES: dict[tuple[str, str], Normaliser] = {
    ("pos", "pos.stock"): pos_stock,
}


@dataclass(frozen=True, slots=True)
class Outcome:
    """The outputs of one input, or why there are none (``skipped``)."""

    outputs: list[Output] = field(default_factory=list)
    skipped: str | None = None


def process(system: str, key: bytes | None, value: bytes | None, now: datetime) -> Outcome:
    """Decode, route and normalise one record read from ``system``'s raw topic.

    Pure and synchronous; raises only ``InvalidEvent``.
    """
    event = decode(key, value)
    if event is None:
        return Outcome(skipped="debezium_tombstone")
    normaliser = ROUTES.get((system, event.source.table))
    if normaliser is None:
        raise InvalidEvent("no_route", f"no route for {system}:{event.source.table}")
    return Outcome(outputs=normaliser(event, now))
