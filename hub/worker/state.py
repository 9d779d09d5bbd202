"""The worker's state as Kafka holds it, read without Faust: what the unified topics say was
published, and the engine's rows from the state table's changelog.

The worker reads the published state back at each takeover; the benchmark's BL4 loop starts from
both, so that it processes the same events from the same state as the worker it is compared with.
"""

from __future__ import annotations

import orjson

from hub.core.engine import MemoryStore, out_ref, seed_entry
from hub.kafka_io import header, read_to_end
from hub.topics import TopicSpec, registry
from hub.worker.output import POSITION_HEADER

ROWS_TABLE = "engine-rows"  # the Faust table of the engine's rows (one partition)


def rows_changelog(worker_id: str) -> TopicSpec:
    """The changelog topic Faust keeps for the rows table of the worker group ``worker_id``."""
    return TopicSpec(
        id="engine-rows-changelog", name=f"{worker_id}-{ROWS_TABLE}-changelog", kind="internal",
        key="row ref (JSON string)", value="stored row (JSON)", partitions=1,
        cleanup_policy="compact",
    )  # fmt: skip


def read_published(bootstrap: str) -> MemoryStore:
    """What the unified topics hold, as the engine's ``published`` entries: after a crash or a
    takeover, what was produced is exactly what is there, whatever the engine's state saved."""
    specs = [spec for spec in registry().topics.values() if spec.kind == "unified"]
    topic_ids = {spec.name: spec.id for spec in specs}
    published = MemoryStore()
    for msg in read_to_end(bootstrap, specs):
        raw = msg.value()
        value = orjson.loads(raw) if raw is not None else None
        position = header(msg, POSITION_HEADER) or (value or {}).get("source_position", "")
        ref = out_ref(topic_ids[msg.topic() or ""], (msg.key() or b"").decode())
        published.put(ref, seed_entry(value, position))
    return published


def read_rows(bootstrap: str, worker_id: str) -> MemoryStore:
    """The engine's rows as the worker group's table changelog holds them (last value per ref)."""
    rows = MemoryStore()
    for msg in read_to_end(bootstrap, [rows_changelog(worker_id)]):
        raw = msg.value()
        rows.put(orjson.loads(msg.key() or b'""'), orjson.loads(raw) if raw is not None else None)
    return rows
