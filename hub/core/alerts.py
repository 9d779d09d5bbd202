"""Stock alerts: low stock, out of stock / back in stock, and oversell, per location and per
location group, each with hysteresis.

Step name ``alerts``, run by the availability stage on every figure it publishes. An alert rule
(``hub.core.network.AlertRule``) watches a figure:

    low_stock     fires when available ≤ threshold, resolves when available > threshold + band
    out_of_stock  fires when available ≤ 0,         resolves when available > band (back in stock)
    oversell      fires when reserved > on_hand,    resolves when reserved ≤ on_hand

Between the two edges nothing is published: a figure that hovers around a threshold raises one
alert, not one per change. A firing alert is kept in the ``Store`` (``alert:<key>``); a figure
that disappears (no level left) resolves its alerts as ``withdrawn``. Each transition carries a
``transition_id`` made of the alert key, the new status and the source position of the change
that caused it: the same on every replay, so a webhook receiver can drop what it already has.

Pure apart from the ``Store``.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from hub.core.network import AlertRule, Group, Network
from hub.core.records import Output, Upsert
from hub.models import Availability, StockAlert

if TYPE_CHECKING:
    from hub.core.availability import Cause
    from hub.core.engine import Store

STEP = "alerts"
TOPIC = "unified.alerts"
ZERO = Decimal(0)
_RESOLVED = {"low_stock": "stock_recovered", "out_of_stock": "back_in_stock",
             "oversell": "oversell_resolved"}  # fmt: skip


class Alerting:
    """Watches the figures the availability stage publishes (``observe``)."""

    def __init__(self, network: Network, store: Store) -> None:
        self.network, self.store = network, store
        self._rules: dict[str, list[AlertRule]] = {}  # per scope id: the network does not change

    def rules_for(self, subject: str) -> list[AlertRule]:
        """The rules watching the figure keyed ``subject`` (``<gtin>@<scope id>``)."""
        scope_id = subject.partition("@")[2]
        rules = self._rules.get(scope_id)
        if rules is None:
            if scope_id.startswith("group:"):
                group: Group | None = self.network.groups.get(scope_id.removeprefix("group:"))
                rules = self.network.alert_rules(None, group) if group else []
            else:
                rules = self.network.alert_rules(scope_id, None)
            self._rules[scope_id] = rules
        return rules

    def observe(self, subject: str, figure: dict[str, Any] | None, cause: Cause) -> list[Output]:
        """The alert transitions ``figure`` (an Availability record's JSON form; None: the figure
        is gone) causes, as outputs."""
        outputs: list[Output] = []
        for rule in self.rules_for(subject):
            key = f"{rule.name}:{subject}"
            ref = f"alert:{key}"
            firing = self.store.get(ref)
            if figure is None:
                if firing is not None:
                    self.store.put(ref, None)
                    outputs.append(self._record(rule, subject, None, firing, "resolved",
                                                "withdrawn", cause))  # fmt: skip
                continue
            value = _value(rule, figure)
            if firing is None and _fires(rule, value):
                state = {"since": cause.committed_at.isoformat()}
                self.store.put(ref, state)
                outputs.append(self._record(rule, subject, figure, state, "firing", rule.kind,
                                            cause))  # fmt: skip
            elif firing is not None and _resolves(rule, value):
                self.store.put(ref, None)
                outputs.append(self._record(rule, subject, figure, firing, "resolved",
                                            _RESOLVED[rule.kind], cause))  # fmt: skip
        return outputs

    def _record(
        self, rule: AlertRule, subject: str, figure: dict[str, Any] | None,
        state: dict[str, str], status: Literal["firing", "resolved"], event: str, cause: Cause,
    ) -> Output:  # fmt: skip
        key = f"{rule.name}:{subject}"
        gtin, _, scope_id = subject.partition("@")
        group = self.network.groups.get(scope_id.removeprefix("group:"))
        marker = f"{key}|{status}|{cause.system}|{cause.position}"
        record = StockAlert(
            rule=rule.name, kind=rule.kind, status=status, event=event,  # type: ignore[arg-type]
            subject=subject, gtin=gtin,
            scope="group" if scope_id.startswith("group:") else "location", scope_id=scope_id,
            channel=group.channel if group and scope_id.startswith("group:") else None,
            threshold=rule.threshold, band=rule.band,
            value=_value(rule, figure) if figure is not None else ZERO,
            since=datetime.fromisoformat(state["since"]),
            resolved_at=cause.committed_at if status == "resolved" else None,
            transition_id=hashlib.blake2b(marker.encode(), digest_size=16).hexdigest(),
            availability=Availability.model_validate(figure) if figure is not None else None,
            emitted_at=cause.now,
        )  # fmt: skip
        return Upsert.of(TOPIC, record, key, cause.position)


def _value(rule: AlertRule, figure: dict[str, Any]) -> Decimal:
    if rule.kind == "oversell":
        return Decimal(figure["reserved"]) - Decimal(figure["on_hand"])
    return Decimal(figure["available"])


def _fires(rule: AlertRule, value: Decimal) -> bool:
    if rule.kind == "oversell":
        return value > 0
    return value <= (rule.threshold if rule.kind == "low_stock" else ZERO)


def _resolves(rule: AlertRule, value: Decimal) -> bool:
    if rule.kind == "oversell":
        return value <= 0
    return value > (rule.threshold if rule.kind == "low_stock" else ZERO) + rule.band
