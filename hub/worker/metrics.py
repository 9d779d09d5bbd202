"""The worker's counters, served as Prometheus metrics at ``/metrics`` on its web port."""

from __future__ import annotations

import requests
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

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
# Rows that left the engine's state under the retention the definitions declare (closed tickets and
# orders with their lines): steady while sales go on; flat with sales going on means nothing closes.
ROWS_EXPIRED = Counter(
    "hub_rows_expired", "Rows that left the engine's state (declared retention), by system.",
    ["system"], registry=REGISTRY,
)  # fmt: skip
DEAD_LETTERS = Counter(
    "hub_dead_letters",
    "Dead letters by system and reason.",
    ["system", "reason"],
    registry=REGISTRY,
)
# A blocking key (a placeholder email, a store's phone on every walk-in card) held by more customer
# records than the identity rules' max_block: it links nothing. The worker logs the key.
MERGE_STORMS = Counter(
    "hub_identity_merge_storms", "Blocking keys that crossed the merge-storm limit, by rule.",
    ["rule"], registry=REGISTRY,
)  # fmt: skip
CONNECTOR_RESTARTS = Counter(
    "hub_connector_restarts",
    "FAILED connectors or tasks the worker asked Kafka Connect to restart.",
    ["connector"],
    registry=REGISTRY,
)
RESEEDS = Counter(
    "hub_published_reseeds",
    "Times the worker read the unified topics back because it was given the raw topics.",
    registry=REGISTRY,
)
ACTIVE = Gauge(
    "hub_worker_active",
    "1 while this worker holds the raw topics; 0 while it is a standby of its group.",
    registry=REGISTRY,
)


def worker_is_active(host: str, web_port: int) -> bool:
    """Whether the worker serving ``/metrics`` there holds the raw topics (not a standby, not
    starting, not unreachable)."""
    try:
        text = requests.get(f"http://{host}:{web_port}/metrics", timeout=2).text
    except requests.RequestException:
        return False
    return any(line.startswith("hub_worker_active 1") for line in text.splitlines())


# The liveness guard (watchdog.py). Seconds without progress should stay near 0; when it climbs
# while records wait, the worker is stuck, and at HUB_WORKER_STALL_TIMEOUT it leaves for a fresh
# start (hub_worker_stalls counts it in the process that left: see the supervisor's log).
SECONDS_WITHOUT_PROGRESS = Gauge(
    "hub_worker_seconds_without_progress",
    "Longest time a held raw partition has had records waiting without the worker moving on.",
    registry=REGISTRY,
)
STALLED = Gauge(
    "hub_worker_stalled",
    "1 when the worker judged itself stalled (it is leaving for a fresh start).",
    registry=REGISTRY,
)
STALLS = Counter(
    "hub_worker_stalls", "Stalls the liveness guard detected in this process.", registry=REGISTRY
)
TRANSACTION_SECONDS = Histogram(
    "hub_worker_transaction_commit_seconds",
    "How long each commit of the worker's output transactions held the stream loop.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
    registry=REGISTRY,
)

# Stock alert transitions handed to each webhook (hub/worker/notify.py): delivered (2xx), retried
# (an attempt that failed and will be tried again: a receiver down or slow), refused (4xx but
# 408/425/429: given up, look at the receiver), invalid (a record on unified.alerts that is no alert).
WEBHOOK_DELIVERIES = Counter(
    "hub_webhook_deliveries", "Alert deliveries to webhooks, by webhook and outcome.",
    ["webhook", "outcome"], registry=REGISTRY,
)  # fmt: skip
# Seconds the transition in hand has waited for its webhook (0 when none waits): above a few
# minutes, the receiver is down and the alerts after it wait too.
WEBHOOK_WAITING = Gauge(
    "hub_webhook_waiting_seconds", "How long the alert in hand has waited for its webhook.",
    ["webhook"], registry=REGISTRY,
)  # fmt: skip
