"""Stock alerts: one transition per edge (hysteresis), stable transition ids, oversell."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hub.core.availability import AvailabilityStage
from hub.core.engine import MemoryStore
from hub.core.network import parse_network
from hub.models import StockAlert
from tests.unit.core.test_availability import GTIN, NOW, level, position

NETWORK = parse_network({
    "version": 1,
    "locations": {"warehouse:W001": {"type": "warehouse"}, "store:PAR01": {"type": "store"}},
    "groups": {"web": {"channel": "web", "types": ["warehouse", "store"]}},
    "alerts": [
        {"name": "low", "kind": "low_stock", "scope": "group", "threshold": 5, "band": 2},
        {"name": "oos", "kind": "out_of_stock", "scope": "group", "band": 1},
        {"name": "oversell", "kind": "oversell", "scope": "location"},
    ],
})  # fmt: skip


class Watch:
    def __init__(self) -> None:
        self.store = MemoryStore()
        self.stage = AvailabilityStage(NETWORK, self.store)
        self.at = 0

    def level(self, location: str, on_hand: str, **more: Any) -> list[StockAlert]:
        self.at += 1
        value = level(location, on_hand, self.at, **more)
        outcome = self.stage.apply(f"{GTIN}@{location}", value, position(self.at), NOW)
        return [o.record for o in outcome.outputs if o.topic_id == "unified.alerts"]  # type: ignore[union-attr]

    def delete(self, location: str) -> list[StockAlert]:
        self.at += 1
        outcome = self.stage.apply(f"{GTIN}@{location}", None, position(self.at), NOW)
        return [o.record for o in outcome.outputs if o.topic_id == "unified.alerts"]  # type: ignore[union-attr]


def events(alerts: list[StockAlert]) -> list[tuple[str, str, str]]:
    return [(a.rule, a.status, a.event) for a in alerts]


def test_low_stock_fires_once_and_resolves_only_above_threshold_plus_band():
    watch = Watch()
    assert watch.level("warehouse:W001", "9") == []
    fired = watch.level("warehouse:W001", "5")
    assert events(fired) == [("low", "firing", "low_stock")]
    alert = fired[0]
    assert alert.subject == f"{GTIN}@group:web" and alert.channel == "web"
    assert (alert.value, alert.threshold, alert.band) == (5, 5, 2)
    assert alert.availability is not None and alert.availability.available == 5
    assert alert.since == NOW.replace(second=2)
    assert watch.level("warehouse:W001", "3") == []  # still low: no news
    assert watch.level("warehouse:W001", "7") == []  # within the band: still firing
    assert watch.level("warehouse:W001", "4") == []
    resolved = watch.level("warehouse:W001", "8")
    assert events(resolved) == [("low", "resolved", "stock_recovered")]
    assert resolved[0].since == alert.since and resolved[0].resolved_at == NOW.replace(second=6)
    assert events(watch.level("warehouse:W001", "5")) == [("low", "firing", "low_stock")]


def test_out_of_stock_everywhere_then_back_in_stock_after_a_delivery():
    watch = Watch()
    watch.level("warehouse:W001", "1")
    watch.level("store:PAR01", "2")
    assert events(watch.level("warehouse:W001", "0")) == []  # the store still has 2
    out = watch.level("store:PAR01", "0")
    assert ("oos", "firing", "out_of_stock") in events(out)
    assert events(watch.level("store:PAR01", "1")) == []  # not above the band of 1
    back = watch.level("warehouse:W001", "20")
    assert sorted(events(back)) == [("low", "resolved", "stock_recovered"),
                                    ("oos", "resolved", "back_in_stock")]  # fmt: skip


def test_oversell_when_reservations_exceed_what_is_on_hand_or_a_till_goes_below_zero():
    watch = Watch()
    fired = watch.level("warehouse:W001", "3", reserved=Decimal(5))
    assert ("oversell", "firing", "oversell") in events(fired)
    over = next(a for a in fired if a.rule == "oversell")
    assert over.value == 2 and over.subject == f"{GTIN}@warehouse:W001"
    resolved = watch.level("warehouse:W001", "6", reserved=Decimal(5))
    assert ("oversell", "resolved", "oversell_resolved") in events(resolved)
    till = watch.level("store:PAR01", "-1")
    assert ("oversell", "firing", "oversell") in events(till)
    assert next(a for a in till if a.rule == "oversell").value == 1


def test_a_figure_that_goes_away_withdraws_its_alerts():
    watch = Watch()
    watch.level("warehouse:W001", "0")
    gone = watch.delete("warehouse:W001")
    assert sorted(events(gone)) == [
        ("low", "resolved", "withdrawn"),
        ("oos", "resolved", "withdrawn"),
    ]
    assert all(alert.availability is None for alert in gone)
    assert watch.store.get(f"alert:low:{GTIN}@group:web") is None


def test_transition_ids_are_the_same_on_a_replay_and_differ_between_transitions():
    def run() -> list[str]:
        watch = Watch()
        found = []
        for on_hand in ("9", "4", "0", "9", "3"):
            found += [a.transition_id for a in watch.level("warehouse:W001", on_hand)]
        return found

    first = run()
    assert first == run()
    assert len(first) == len(set(first)) == 5  # low, oos, both resolved, low again
