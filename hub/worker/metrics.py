"""The worker's counters, served as Prometheus metrics at ``/metrics`` on its web port."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

REGISTRY = CollectorRegistry(auto_describe=True)
CONTENT_TYPE = "text/plain; version=0.0.4"  # Prometheus text exposition format


EVENTS_IN = Counter(
    "hub_events_in", "Raw change events read, by source system.", ["system"], registry=REGISTRY
)
# applied: canonical records published. skipped: events that publish nothing by design (Debezium
# tombstones, reference rows, rows waiting for a lookup). duplicate: outputs dropped because their key
# already had that source position or a newer one (replays after a crash or a rebalance: expected in
# bursts, never steadily). noop: outputs dropped because nothing canonical changed. dead_lettered:
# events (or stored rows) sent to the DLQ: look at `hub dlq list`.
OUTCOMES = Counter(
    "hub_outcomes", "What became of the events, by system and outcome.", ["system", "outcome"],
    registry=REGISTRY,
)  # fmt: skip
DEAD_LETTERS = Counter(
    "hub_dead_letters",
    "Dead letters by system and reason.",
    ["system", "reason"],
    registry=REGISTRY,
)
