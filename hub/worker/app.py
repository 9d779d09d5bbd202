"""The Faust app: one agent per routed raw topic; it only adapts Kafka records to the core.

At-least-once: Faust commits an input offset after the agent has finished with the event, and the
agent awaits each output's delivery before that. Agent concurrency is 1 (see STACK-NOTES: higher
concurrency can commit past an unfinished event).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import faust

from hub.core import pipeline
from hub.core.dlq import DeadLetterBreaker, Provenance, dead_letter_headers
from hub.core.records import Output, Upsert
from hub.errors import DeadLetterFlood, InvalidEvent, RegistryError
from hub.settings import HubSettings
from hub.topics import TopicSpec, registry

log = logging.getLogger("hub.worker")

# Counters of this process, by name: in, applied (records produced), skipped, dead_lettered.
COUNTS: Counter[str] = Counter()


def routed_raw_topics() -> list[tuple[TopicSpec, str]]:
    """The raw topics the core has a route for, each with its source system."""
    return [
        (spec, spec.source.system)
        for spec in registry().topics.values()
        if spec.kind == "raw"
        and spec.source
        and (spec.source.system, spec.source.table) in pipeline.ROUTES
    ]


def create_app(settings: HubSettings) -> faust.App:
    app = faust.App(
        settings.worker_id,
        broker=f"kafka://{settings.bootstrap}",
        autodiscover=False,
        store="memory://",
        web_bind=settings.host,
        web_host=settings.host,
        web_port=settings.worker_web_port,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        topic_allow_declare=False,
        topic_disable_leader=True,
        logging_config=None,
    )
    reg = registry()
    outputs: dict[str, Any] = {
        spec.id: app.topic(
            spec.name, key_serializer="raw", value_serializer="raw", partitions=spec.partitions
        )
        for spec in reg.topics.values()
        if spec.kind in ("unified", "dlq")
    }
    breaker = DeadLetterBreaker(
        settings.dlq_max_consecutive, settings.dlq_max_ratio, settings.dlq_window
    )

    for spec, system in routed_raw_topics():
        if spec.dlq is None:
            raise RegistryError(f"raw topic {spec.id} declares no dlq in schemas/topics.yaml")
        dlq = outputs[spec.dlq]
        source = app.topic(
            spec.name, key_serializer="raw", value_serializer="raw", allow_empty=True,
            partitions=spec.partitions,
        )  # fmt: skip

        async def normalise(
            stream: faust.StreamT[Any], system: str = system, dlq: Any = dlq
        ) -> AsyncIterator[None]:
            async for event in stream.events():
                message = event.message
                COUNTS["in"] += 1
                try:
                    outcome = pipeline.process(
                        system, message.key, message.value, datetime.now(UTC)
                    )
                    for output in outcome.outputs:
                        await _produce(outputs, output)
                    COUNTS["applied" if outcome.outputs else "skipped"] += len(outcome.outputs) or 1
                    breaker.record(True)
                except Exception as exc:
                    error = (
                        exc
                        if isinstance(exc, InvalidEvent)
                        else InvalidEvent("internal_error", repr(exc))
                    )
                    provenance = Provenance(
                        message.topic, message.partition, message.offset, _millis(message.timestamp)
                    )
                    await (await dlq.send(
                        key=message.key, value=message.value,
                        headers=dead_letter_headers(provenance, error, pipeline.STEP, settings.worker_id),
                    ))  # fmt: skip
                    COUNTS["dead_lettered"] += 1
                    log.warning("dead-lettered %s[%d]@%d: %s", message.topic, message.partition,
                                message.offset, error)  # fmt: skip
                    try:
                        breaker.record(False)
                    except DeadLetterFlood as flood:
                        log.critical("%s", flood)
                        await app.crash(flood)
                        return
                yield None

        app.agent(source, name=f"{pipeline.STEP}-{spec.id}", concurrency=1)(normalise)
    return app


def _millis(timestamp: float | None) -> int | None:
    return int(timestamp * 1000) if timestamp else None


async def _produce(outputs: dict[str, Any], output: Output) -> None:
    """Send one output and wait for the broker's acknowledgement."""
    value = output.value_bytes() if isinstance(output, Upsert) else None
    pending = await outputs[output.topic_id].send(key=output.key.encode(), value=value)
    await pending


def run_worker(settings: HubSettings, loglevel: str) -> None:
    """Run until interrupted (blocks). Exits non-zero when the worker crashes."""
    from faust.worker import Worker

    app = create_app(settings)
    Worker(app, loglevel=loglevel).execute_from_commandline()
