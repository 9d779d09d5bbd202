"""Prometheus metrics of ``hub api`` (served at ``/metrics``; deploy/grafana/hub.json charts them
beside the worker's). Each says what it means and what to do when it moves."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry()
DELAYS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)  # seconds

# Source commit → append to the unified topic, per source system: the pipeline's freshness. Rising
# p99: the worker is behind (see hub_api_worker_lag) or a connector polls slowly.
COMMIT_TO_APPEND = Histogram(
    "hub_source_commit_to_append_seconds",
    "From a change's commit in its source to its unified record's append, by source system.",
    ["source"], registry=REGISTRY, buckets=DELAYS,
)  # fmt: skip
# Source commit → this API's read model: what a client of the API or the change stream sees.
COMMIT_TO_READ = Histogram(
    "hub_api_commit_to_read_seconds",
    "From a change's commit in its source to the API's read model holding it, by source system.",
    ["source"], registry=REGISTRY, buckets=DELAYS,
)  # fmt: skip
# Raw records the worker group has not committed: rising means it cannot keep up (add workers).
WORKER_LAG = Gauge(
    "hub_api_worker_lag", "Raw records the worker group has not processed yet.", registry=REGISTRY
)
# Dead letters on the DLQ by reason (all time, as the topic holds them): `hub dlq list` shows them.
DEAD_LETTERS = Gauge(
    "hub_api_dead_letters", "Dead letters on the dead-letter topic, by reason.", ["reason"],
    registry=REGISTRY,
)  # fmt: skip
# Stock alerts firing now (unified.alerts).
ALERTS_FIRING = Gauge("hub_alerts_firing", "Stock alerts firing now.", registry=REGISTRY)
# 1 once the read model has read the topics up to where they ended at start (503 before).
READY = Gauge("hub_api_ready", "1 once the API has caught up with the topics.", registry=REGISTRY)
# Request latency by route (the route's template, not the path: no ids in labels).
REQUEST_SECONDS = Histogram(
    "hub_api_request_seconds", "Time to answer a request, by route and status class.",
    ["route", "status"], registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)  # fmt: skip
STREAMS = Gauge("hub_api_streams", "Change streams connected now.", registry=REGISTRY)
STREAM_EVENTS = Counter(
    "hub_api_stream_events", "Events sent on change streams.", registry=REGISTRY
)
