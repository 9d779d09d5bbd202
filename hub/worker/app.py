"""The Faust app: one agent per source system; it only adapts Kafka records to the engine.

At-least-once: Faust commits an input offset after the agent has finished with the event, and only
once every output sent for it has been acknowledged (``Deliveries``). Agent concurrency is 1
(higher concurrency can commit past an unfinished event). The engine's rows live in a
changelog-backed Faust table, so lookups and unchanged TOAST values survive a restart.

The table and every raw topic have one partition, so they are co-partitioned and Faust's assignor
gives them all to one worker of the group; the others keep a standby copy of the table and take
over when it dies. Whoever is given the raw topics first reads the unified topics back (the last
source position and content published per key): what a dead worker produced is exactly what is
there.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import faust
import orjson
import requests
from prometheus_client import generate_latest

from hub.connect_client import ConnectClient, ConnectError
from hub.connectors import load_definitions
from hub.core.dlq import Provenance, StreamBreakers, dead_letter_headers
from hub.core.engine import STEP, Engine, MemoryStore
from hub.errors import DeadLetterFlood, InvalidEvent, RegistryError, StackError
from hub.kafka_io import partition_mismatches, resume_offsets
from hub.settings import HubSettings
from hub.topics import TopicSpec, registry
from hub.worker import metrics
from hub.worker.continuity import EXIT_RESTART, ContinuityGuard, OffsetGap
from hub.worker.output import OutputProducer
from hub.worker.state import ROWS_TABLE, read_published

log = logging.getLogger("hub.worker")

# Counters of this process (also exported as Prometheus metrics, see hub/worker/metrics.py):
# in, applied (records produced), skipped, duplicate, noop, dead_lettered.
COUNTS: Counter[str] = Counter()


def leave(status: int, reason: str) -> None:
    """Leave at once, as kill -9 would: no further record processed, no offset committed. A
    graceful stop would commit the event in hand (Faust acks it when the agent returns) and, after
    a gap, what was processed past the lost records. The process that replaces this one reads
    again from the committed offsets (``EXIT_RESTART``: the supervisor starts it at once)."""
    log.critical("%s", reason)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(status)


class Deliveries:
    """Confirms the outputs of the events Faust is about to commit.

    The agent hands outputs to ``OutputProducer`` without waiting for each acknowledgement (one
    broker round trip per event would bound the worker's throughput). Faust flushes its own
    producer before it commits input offsets; the worker wraps that flush so that it also flushes
    the output producer, and leaves, committing nothing, if an output was not delivered.
    """

    def __init__(self, producer: OutputProducer) -> None:
        self.producer = producer

    async def verify(self) -> None:
        loop = asyncio.get_running_loop()
        failures = await loop.run_in_executor(None, self.producer.flush, 120.0)
        if failures:
            leave(1, f"{len(failures)} outputs were not delivered, stopping before their input "
                     f"offsets are committed: {failures[:3]}")  # fmt: skip


def tally(system: str, what: str, amount: int = 1) -> None:
    if not amount:
        return
    COUNTS[what] += amount
    _counter(system, what).inc(amount)


@functools.cache
def _counter(system: str, what: str) -> Any:
    """The labelled Prometheus counter of ``what`` for ``system`` (looked up once: per event)."""
    if what == "in":
        return metrics.EVENTS_IN.labels(system)
    return metrics.OUTCOMES.labels(system, what)


class TableStore:
    """The engine's ``Store`` on a Faust table whose changelog the worker writes itself.

    Faust would send each change through its own producer (aiokafka, one record at a time), which
    took most of the worker's time under load. Here the table's data is set directly and the
    changelog record, the same topic, key and JSON value Faust would write (standbys and recovery
    read it as their own), goes out through the output producer: it is confirmed with the outputs
    before any input offset is committed (``Deliveries``).
    """

    def __init__(self, table: Any, producer: OutputProducer, changelog: str) -> None:
        self.table, self.producer, self.changelog = table, producer, changelog

    def get(self, ref: str) -> dict[str, Any] | None:
        value: dict[str, Any] | None = self.table.data.get(ref)  # the engine never mutates it
        return value

    def put(self, ref: str, value: dict[str, Any] | None) -> None:
        if value is None:
            self.table.data.pop(ref, None)
        else:
            self.table.data[ref] = value
        self.producer.send(
            self.changelog,
            orjson.dumps(ref),
            orjson.dumps(value) if value is not None else None,
            [],
        )


def raw_topics_by_system(engine: Engine) -> dict[str, list[TopicSpec]]:
    """The raw topics the engine routes, grouped by source system."""
    grouped: dict[str, list[TopicSpec]] = {}
    for spec in registry().topics.values():
        if (
            spec.kind == "raw"
            and spec.source
            and engine.routes(spec.source.system, spec.source.table)
        ):
            if spec.dlq is None:
                raise RegistryError(f"raw topic {spec.id} declares no dlq in schemas/topics.yaml")
            grouped.setdefault(spec.source.system, []).append(spec)
    return grouped


def check_inputs(settings: HubSettings, specs: list[TopicSpec]) -> None:
    """Refuse raw topics with more than one partition (the registry declares one): they would not
    be co-partitioned with the engine's table, and two workers would share one key's state.
    ``StackError`` says what to do."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": settings.bootstrap, "log_level": 3})
    wrong = partition_mismatches(admin.list_topics(timeout=30).topics, specs)
    if wrong:
        raise StackError(
            f"raw topics must have 1 partition, these have more: "
            f"{ {name: actual for name, (actual, _) in wrong.items()} }. Recreate them with 1 "
            "partition (the connectors re-snapshot), or `hub stack down --purge` a local stack"
        )


def create_app(settings: HubSettings, published: MemoryStore | None = None) -> faust.App:
    app = faust.App(
        settings.worker_id,
        broker=f"kafka://{settings.bootstrap}",
        autodiscover=False,
        store="memory://",
        web_bind=settings.host,
        web_host=settings.host,
        web_port=settings.worker_web_port,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.worker_session_timeout,
        broker_heartbeat_interval=min(3.0, settings.worker_session_timeout / 5),
        producer_acks=-1,
        topic_disable_leader=True,
        logging_config=None,
    )
    reg = registry()
    dlq_topics: dict[str, Any] = {
        spec.id: app.topic(
            spec.name, key_serializer="raw", value_serializer="raw", partitions=spec.partitions
        )
        for spec in reg.topics.values()
        if spec.kind == "dlq"
    }
    # One changelog partition, keyed by our own row refs (JSON keys and values). Not a GlobalTable:
    # a global table re-applies its own changelog asynchronously and can overwrite newer values.
    rows = app.Table(ROWS_TABLE, default=None, partitions=1, use_partitioner=True)
    published = published if published is not None else MemoryStore()
    producer = OutputProducer(settings.bootstrap, f"{settings.worker_id}-outputs")
    engine = Engine(
        [definition.engine_view() for definition in load_definitions().values()],
        {spec.model: spec.id for spec in reg.topics.values() if spec.model},
        TableStore(rows, producer, rows.changelog_topic.get_topic_name()),
        published,
    )
    breakers = StreamBreakers(
        settings.dlq_max_consecutive, settings.dlq_max_ratio, settings.dlq_window
    )

    inputs = raw_topics_by_system(engine)
    input_names = {spec.name for specs in inputs.values() for spec in specs}
    held: set[Any] = set()
    guard = ContinuityGuard()
    deliveries = Deliveries(producer)
    topic_names = {spec.id: spec.name for spec in reg.topics.values()}
    # Closed while an assignment is taken over: events fetched meanwhile wait (Faust may hand them
    # out before this handler returns), then are checked against the new assignment.
    ready = asyncio.Event()

    async def take_over(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        # Called with the assigned partitions at each rebalance. Only a worker given raw
        # partitions it did not hold reads the published state back.
        ready.clear()
        try:
            await _take_over({tp for tp in args[0] if tp.topic in input_names})
        finally:
            ready.set()

    async def _take_over(mine: set[Any]) -> None:
        gained = mine - held
        held.clear()
        held.update(mine)
        metrics.ACTIVE.set(1 if mine else 0)
        loop = asyncio.get_running_loop()
        partitions = [(tp.topic, tp.partition) for tp in mine]
        guard.reset(
            await loop.run_in_executor(
                None, resume_offsets, settings.bootstrap, settings.worker_id, partitions
            )
            if mine
            else {}
        )
        if gained:
            fresh = await loop.run_in_executor(None, read_published, settings.bootstrap)
            published.clear()
            published.update(fresh)
            metrics.RESEEDS.inc()
            log.info("given %d raw partitions: read %d published keys back from the unified "
                     "topics", len(gained), len(published))  # fmt: skip

    app.on_partitions_assigned.connect(take_over)

    if settings.connector_watch_interval > 0:
        watch = ConnectClient(settings.connect, timeout=5, retries=2)
        names = [d.connector.name for d in load_definitions().values()]

        async def restart_failed_connectors() -> None:
            # Kafka Connect leaves a FAILED task failed (a source database that was down too
            # long, for instance): restart it, so the pipeline heals without an operator.
            try:
                restarted = await asyncio.get_running_loop().run_in_executor(
                    None, watch.restart_failed, names
                )
            except (ConnectError, requests.RequestException) as exc:
                log.warning("cannot check the connectors at %s: %s", settings.connect, exc)
                return
            for name, reason in restarted.items():
                metrics.CONNECTOR_RESTARTS.labels(name).inc()
                log.warning("connector %s had failed, restarted it: %s", name, reason)

        app.timer(settings.connector_watch_interval, on_leader=True)(restart_failed_connectors)

    for system, specs in inputs.items():
        source = app.topic(
            *(spec.name for spec in specs),
            key_serializer="raw",
            value_serializer="raw",
            allow_empty=True,
        )
        dlq = dlq_topics[specs[0].dlq or ""]

        async def dead_letter(
            system: str, dlq: Any, key: bytes | None, value: bytes | None, provenance: Provenance,
            error: InvalidEvent, extra: list[tuple[str, bytes]],
        ) -> None:  # fmt: skip
            headers = dead_letter_headers(provenance, error, STEP, settings.worker_id) + extra
            await (await dlq.send(key=key, value=value, headers=headers))
            tally(system, "dead_lettered")
            metrics.DEAD_LETTERS.labels(system, error.reason).inc()
            log.warning("dead-lettered %s[%d]@%d%s: %s", provenance.topic, provenance.partition,
                        provenance.offset, f" ({extra[0][1].decode()})" if extra else "", error)  # fmt: skip
            breakers.record((provenance.topic, provenance.partition), False)

        async def normalise(
            stream: faust.StreamT[Any], system: str = system, dlq: Any = dlq
        ) -> AsyncIterator[None]:
            async for event in stream.events():
                message = event.message
                if not ready.is_set():
                    await ready.wait()
                if (message.topic, message.partition) not in held:
                    continue  # fetched before a rebalance that gave its partition to another
                provenance = Provenance(
                    message.topic, message.partition, message.offset, _millis(message.timestamp)
                )
                try:
                    guard.check(message.topic, message.partition, message.offset)
                except OffsetGap as gap:
                    leave(EXIT_RESTART, f"{gap}; starting afresh to read them again")
                    return
                tally(system, "in")
                try:
                    try:
                        try:
                            outcome = engine.process(
                                system, message.key, message.value, datetime.now(UTC)
                            )
                        except InvalidEvent:
                            raise
                        except Exception as exc:  # a bug met by this input: dead-letter it, go on
                            raise InvalidEvent("internal_error", repr(exc)) from exc
                        for output in outcome.outputs:
                            producer.publish(topic_names[output.topic_id], output)
                        tally(system, "applied", len(outcome.outputs))
                        tally(system, "duplicate", outcome.duplicates)
                        tally(system, "noop", outcome.noops)
                        if outcome.skipped and outcome.skipped not in ("duplicate", "noop"):
                            tally(system, "skipped")
                        breakers.record((message.topic, message.partition), True)
                        for failure in outcome.failures:
                            # A stored row that failed once a row it looks up arrived.
                            await dead_letter(
                                system, dlq, failure.ref.encode(), orjson.dumps(failure.row),
                                provenance, failure.error, [("hub.dlq.row_ref", failure.ref.encode())],
                            )  # fmt: skip
                    except InvalidEvent as error:  # bad input: to the DLQ, and on with the next
                        await dead_letter(system, dlq, message.key, message.value, provenance, error,
                                          _replay_headers(message))  # fmt: skip
                except DeadLetterFlood as flood:
                    # Stop for sure: Faust's graceful stop was seen hanging here for good. What
                    # was not committed is read again by the next worker; its outputs are
                    # dropped as duplicates, and the flood's letters are in the DLQ already.
                    leave(1, str(flood))
                    return
                except Exception as exc:  # Kafka would not take our output: stop
                    # Not the input's fault, so not for the DLQ: stop before this offset is
                    # committed; a restarted worker processes the event again (nothing is lost).
                    leave(1, f"cannot produce for {message.topic}[{message.partition}]@"
                             f"{message.offset}, stopping: {exc!r}")  # fmt: skip
                    return
                yield None

        app.agent(source, name=f"{STEP}-{system}", concurrency=1)(normalise)

    async def verify_outputs_before_commits() -> None:
        # Faust commits input offsets right after ``producer.flush()``: make that flush also
        # confirm every output of the events being committed (see ``Deliveries``).
        faust_producer = app.producer
        flush = faust_producer.flush

        async def flush_then_verify() -> None:
            await flush()
            await deliveries.verify()

        faust_producer.flush = flush_then_verify  # type: ignore[method-assign]

    app.task(verify_outputs_before_commits)

    @app.page("/metrics")
    async def prometheus(web: Any, request: Any) -> Any:
        # aiohttp takes the charset apart from the content type.
        return web.bytes(generate_latest(metrics.REGISTRY), content_type=metrics.CONTENT_TYPE)

    return app


def _replay_headers(message: Any) -> list[tuple[str, bytes]]:
    """A record replayed from the DLQ that fails again says so (``hub dlq replay`` skips it)."""
    headers = message.headers or []
    pairs = headers.items() if isinstance(headers, dict) else headers
    return [("hub.dlq.replayed_from", bytes(v)) for k, v in pairs if k == "hub.replayed_from"]


def _millis(timestamp: float | None) -> int | None:
    return int(timestamp * 1000) if timestamp else None


def run_worker(settings: HubSettings, loglevel: str) -> None:
    """Run until interrupted (blocks). Exits non-zero when the worker crashes."""
    from faust.worker import Worker

    check_inputs(settings, [spec for spec in registry().topics.values() if spec.kind == "raw"])
    app = create_app(settings)
    worker = Worker(app, loglevel=loglevel)
    # No terminal spinner: at a level above INFO it sets the root logger to DEBUG so that every
    # message spins it, and every debug call of Faust and aiokafka then builds a log record.
    worker.spinner = None
    worker.execute_from_commandline()
