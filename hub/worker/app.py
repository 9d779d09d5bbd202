"""The Faust app: one agent per source system; it only adapts Kafka records to the engine.

At-least-once in, fenced out: the agents hand every output, row change and dead letter to one
transactional producer (transactions.py); Faust commits an input offset only after the
transaction holding its event's outputs is committed. Agent concurrency is 1 (higher concurrency
can commit past an unfinished event).

Every raw topic has one partition, so Faust's assignor gives them all to one worker of the group;
the others wait as standbys and take over when it dies or leaves. Taking over fences the previous
holder (its open transaction is aborted, it can write nothing more), then reads back what was
committed: the engine's rows from their changelog, and the last source position and content
published per key from the unified topics. A worker that makes no progress while records wait
leaves for a fresh start (liveness.py); so does one that finds records skipped (continuity.py).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import threading
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import faust
import orjson
import requests
from faust.worker import Worker
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
from hub.worker.liveness import Liveness, Verdict
from hub.worker.logs import quiet_repeats
from hub.worker.output import Fenced, OutputProducer
from hub.worker.state import ChangelogStore, read_published, read_rows, rows_changelog
from hub.worker.transactions import Transactions
from hub.worker.watchdog import Watchdog

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


class Pipeline:
    """What one worker's agents share: the engine and its state, the transactional outputs, and
    the guards (continuity, dead-letter breakers, liveness). Faust-free except for the records it
    is handed; the agents in ``create_app`` are thin loops around ``handle``."""

    def __init__(self, settings: HubSettings, published: MemoryStore | None = None) -> None:
        reg = registry()
        self.settings = settings
        self.producer = OutputProducer(settings.bootstrap, f"{settings.worker_id}-outputs")
        self.transactions = Transactions(
            self.producer,
            settings.worker_id,
            settings.worker_transaction_interval,
            lambda status, reason: leave(status, reason),  # looked up when called (tests)
        )
        self.rows = ChangelogStore(self.producer, rows_changelog(settings.worker_id).name)
        self.published = published if published is not None else MemoryStore()
        self.engine = Engine(
            [definition.engine_view() for definition in load_definitions().values()],
            {spec.model: spec.id for spec in reg.topics.values() if spec.model},
            self.rows,
            self.published,
        )
        self.breakers = StreamBreakers(
            settings.dlq_max_consecutive, settings.dlq_max_ratio, settings.dlq_window
        )
        self.inputs = raw_topics_by_system(self.engine)
        self.input_names = {spec.name for specs in self.inputs.values() for spec in specs}
        self.topic_names = {spec.id: spec.name for spec in reg.topics.values()}
        self.held: frozenset[tuple[str, int]] = frozenset()  # replaced whole: read by the watchdog
        self.taking_over = False
        self.guard = ContinuityGuard()
        self.frozen = False  # the liveness drill (SIGUSR2): consume nothing more
        self.watchdog = Watchdog(
            Liveness(settings.worker_stall_timeout),
            settings.bootstrap,
            self.positions,
            self.stalled,
            interval=min(5.0, max(0.5, settings.worker_stall_timeout / 10)),
        )

    # -- assignment

    async def on_assigned(self, assigned: set[Any]) -> None:
        """Called with the assigned partitions at each rebalance. Agents wait meanwhile (Faust may
        hand out fetched records before this returns); a worker given raw partitions it did not
        hold fences their previous holder and reads the committed state back."""
        mine = frozenset(
            (tp.topic, tp.partition) for tp in assigned if tp.topic in self.input_names
        )
        self.taking_over = True
        self.transactions.hold("assignment")
        try:
            await self._assign(mine)
        finally:
            self.taking_over = False
            self.watchdog.restart()
            self.transactions.unhold("assignment")

    async def _assign(self, mine: frozenset[tuple[str, int]]) -> None:
        loop = asyncio.get_running_loop()
        settings = self.settings
        kept = mine == self.held and bool(self.transactions.holding)
        self.held = mine
        if not mine:
            metrics.ACTIVE.set(0)
            await self.transactions.release()
            self.guard.reset({})
            return
        if not kept:
            await self.transactions.take(partition for _, partition in mine)
            rows = await loop.run_in_executor(
                None, read_rows, settings.bootstrap, settings.worker_id
            )
            published = await loop.run_in_executor(None, read_published, settings.bootstrap)
            self.rows.replace(rows)
            self.published.clear()
            self.published.update(published)
            metrics.RESEEDS.inc()
            log.info("given %d raw partitions: fenced their previous holder, read %d rows and %d "
                     "published keys back", len(mine), len(rows), len(published))  # fmt: skip
        self.guard.reset(
            await loop.run_in_executor(
                None, resume_offsets, settings.bootstrap, settings.worker_id, list(mine)
            )
        )
        metrics.ACTIVE.set(1)  # only now: the previous holder is fenced, the state read back

    # -- liveness (called from the watchdog's thread)

    def positions(self) -> dict[tuple[str, int], int]:
        if self.taking_over:
            return {}
        held, expected = self.held, dict(self.guard.expected)
        return {partition: offset for partition, offset in expected.items() if partition in held}

    def stalled(self, verdict: Verdict) -> None:
        leave(EXIT_RESTART, f"stalled: {verdict.describe()}; leaving for a fresh start "
                            "(nothing more is committed; the next process reads again)")  # fmt: skip

    # -- one record

    def handle(self, system: str, dlq: str, message: Any) -> None:
        """Process one raw record: outputs, row changes and dead letters go into the open
        transaction. Synchronous: no agent can be half-way through a record when a commit starts.

        Raises ``OffsetGap`` (records were skipped), ``DeadLetterFlood``, ``Fenced``, or whatever
        the producer raised (the output could not be handed over)."""
        provenance = Provenance(
            message.topic, message.partition, message.offset, _millis(message.timestamp)
        )
        stream = (message.topic, message.partition)
        self.guard.check(message.topic, message.partition, message.offset)
        tally(system, "in")
        try:
            try:
                outcome = self.engine.process(system, message.key, message.value, datetime.now(UTC))
            except InvalidEvent:
                raise
            except Exception as exc:  # a bug met by this input: dead-letter it, go on
                raise InvalidEvent("internal_error", repr(exc)) from exc
        except InvalidEvent as error:  # bad input: to the DLQ, and on with the next
            self._dead_letter(system, dlq, message.key, message.value, provenance, error,
                              _replay_headers(message))  # fmt: skip
            return
        for output in outcome.outputs:
            self.producer.publish(self.topic_names[output.topic_id], output)
        tally(system, "applied", len(outcome.outputs))
        tally(system, "duplicate", outcome.duplicates)
        tally(system, "noop", outcome.noops)
        if outcome.skipped and outcome.skipped not in ("duplicate", "noop"):
            tally(system, "skipped")
        self.breakers.record(stream, True)
        for failure in outcome.failures:  # a stored row that failed once a row it looks up arrived
            self._dead_letter(system, dlq, failure.ref.encode(), orjson.dumps(failure.row),
                              provenance, failure.error,
                              [("hub.dlq.row_ref", failure.ref.encode())])  # fmt: skip

    def _dead_letter(
        self, system: str, dlq: str, key: bytes | None, value: bytes | None,
        provenance: Provenance, error: InvalidEvent, extra: list[tuple[str, bytes]],
    ) -> None:  # fmt: skip
        headers = dead_letter_headers(provenance, error, STEP, self.settings.worker_id) + extra
        self.producer.send(dlq, key or b"", value, list(headers))
        tally(system, "dead_lettered")
        metrics.DEAD_LETTERS.labels(system, error.reason).inc()
        log.warning("dead-lettered %s[%d]@%d%s: %s", provenance.topic, provenance.partition,
                    provenance.offset, f" ({extra[0][1].decode()})" if extra else "", error)  # fmt: skip
        self.breakers.record((provenance.topic, provenance.partition), False)


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
    pipeline = Pipeline(settings, published)
    app.pipeline = pipeline  # type: ignore[attr-defined]  # for the worker and tests
    reg = registry()

    async def on_assigned(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        await pipeline.on_assigned(args[0])

    app.on_partitions_assigned.connect(on_assigned)

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

    for system, specs in pipeline.inputs.items():
        source = app.topic(
            *(spec.name for spec in specs),
            key_serializer="raw",
            value_serializer="raw",
            allow_empty=True,
        )
        dlq = reg[specs[0].dlq or ""].name

        async def normalise(
            stream: faust.StreamT[Any], system: str = system, dlq: str = dlq
        ) -> AsyncIterator[None]:
            gate = pipeline.transactions.gate
            async for event in stream.events():
                message = event.message
                if not gate.is_set():
                    await gate.wait()
                if pipeline.frozen:  # the drill: hold this record for good, as a stall would
                    await asyncio.Event().wait()
                if (message.topic, message.partition) not in pipeline.held:
                    continue  # fetched before a rebalance that gave its partition to another
                where = f"{message.topic}[{message.partition}]@{message.offset}"
                try:
                    pipeline.handle(system, dlq, message)
                except OffsetGap as gap:
                    leave(EXIT_RESTART, f"{gap}; starting afresh to read them again")
                    return
                except DeadLetterFlood as flood:
                    # Stop for sure (Faust's graceful stop was seen hanging here), once the
                    # letters judged so far are committed: nothing of the input is committed, so
                    # the next worker judges the rest again.
                    await pipeline.transactions.commit()
                    leave(1, str(flood))
                    return
                except Fenced as fenced:
                    leave(EXIT_RESTART, f"{fenced}; this worker was replaced, starting afresh")
                    return
                except Exception as exc:  # Kafka would not take our output: stop
                    # Not the input's fault, so not for the DLQ: stop before this offset is
                    # committed; a restarted worker processes the event again (nothing is lost).
                    leave(1, f"cannot produce for {where}, stopping: {exc!r}")
                    return
                yield None

        app.agent(source, name=f"{STEP}-{system}", concurrency=1)(normalise)

    async def commit_outputs_before_offsets() -> None:
        # Faust commits input offsets right after ``producer.flush()``: make that flush commit
        # the transaction holding every output of the events being committed.
        faust_producer = app.producer
        flush = faust_producer.flush

        async def flush_then_commit() -> None:
            await flush()
            await pipeline.transactions.commit()

        faust_producer.flush = flush_then_commit  # type: ignore[method-assign]
        pipeline.watchdog.start()
        await pipeline.transactions.run()

    app.task(commit_outputs_before_offsets)

    @app.page("/metrics")
    async def prometheus(web: Any, request: Any) -> Any:
        # aiohttp takes the charset apart from the content type.
        return web.bytes(generate_latest(metrics.REGISTRY), content_type=metrics.CONTENT_TYPE)

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        verdict = pipeline.watchdog.latest
        body = {
            "status": verdict.state,
            "active": bool(pipeline.held),
            "seconds_without_progress": round(verdict.idle_for, 1),
            "stall_timeout": settings.worker_stall_timeout,
            "partitions": {
                f"{topic}[{partition}]": {"next_offset": h.position, "end": h.end, "lag": h.lag,
                                          "seconds_without_progress": round(h.idle_for, 1)}
                for (topic, partition), h in sorted(verdict.partitions.items())
            },
        }  # fmt: skip
        return web.json(body, status=200 if verdict.state == "ok" else 503)

    return app


class HubWorker(Worker):
    """Faust's worker, with a bounded stop, quieter reconnect logs and the liveness drill."""

    def __init__(
        self, app: faust.App, pipeline: Pipeline, stop_timeout: float, **kwargs: Any
    ) -> None:
        super().__init__(app, **kwargs)
        self.pipeline, self.stop_timeout = pipeline, stop_timeout
        self._deadline: threading.Timer | None = None

    def _on_sigterm(self) -> None:
        self._stop_within()
        super()._on_sigterm()

    def _on_sigint(self) -> None:
        self._stop_within()
        super()._on_sigint()

    def _stop_within(self) -> None:
        # Faust's stop waits on Kafka (commits, flushes, leaving the group) and has been seen
        # hanging for good: past the deadline, leave as kill -9 would. Nothing it did not
        # confirm is committed either way.
        if self._deadline is None:
            reason = (
                f"the worker did not stop within {self.stop_timeout:.0f} s of the signal: "
                "exiting without committing anything more"
            )
            self._deadline = threading.Timer(self.stop_timeout, leave, (1, reason))
            self._deadline.daemon = True
            self._deadline.start()

    def _on_sigusr2(self) -> None:
        # A drill for the liveness guard (Faust's own SIGUSR2 starts a debugger, useless in a
        # service): the agents stop taking records, as a stalled framework would.
        self.pipeline.frozen = True
        log.warning("drill (SIGUSR2): the agents take no more records; the liveness guard must "
                    "notice within %.0f s", self.pipeline.settings.worker_stall_timeout)  # fmt: skip

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        super().on_setup_root_logger(logger, level)
        quiet_repeats(list(logger.handlers))


def _replay_headers(message: Any) -> list[tuple[str, bytes]]:
    """A record replayed from the DLQ that fails again says so (``hub dlq replay`` skips it)."""
    headers = message.headers or []
    pairs = headers.items() if isinstance(headers, dict) else headers
    return [("hub.dlq.replayed_from", bytes(v)) for k, v in pairs if k == "hub.replayed_from"]


def _millis(timestamp: float | None) -> int | None:
    return int(timestamp * 1000) if timestamp else None


def run_worker(settings: HubSettings, loglevel: str) -> None:
    """Run until interrupted (blocks). Exits non-zero when the worker crashes."""
    from hub.stack.kafka import ensure_topics

    check_inputs(settings, [spec for spec in registry().topics.values() if spec.kind == "raw"])
    ensure_topics(settings.bootstrap, [rows_changelog(settings.worker_id)])
    cap_fetch_wait(settings.worker_fetch_max_wait_ms)
    app = create_app(settings)
    pipeline: Pipeline = app.pipeline  # type: ignore[attr-defined]  # set by create_app
    worker = HubWorker(app, pipeline, settings.worker_stop_timeout, loglevel=loglevel)
    # No terminal spinner: at a level above INFO it sets the root logger to DEBUG so that every
    # message spins it, and every debug call of Faust and aiokafka then builds a log record.
    worker.spinner = None
    worker.execute_from_commandline()


def cap_fetch_wait(millis: int) -> None:
    """Faust gives its aiokafka consumer ``fetch_max_wait_ms=1500`` (no setting): a fetch that
    covers only quiet partitions is held that long by the broker, and records of busy partitions
    on the same broker wait behind it. Cap the wait: a quiet fetch then costs a round trip every
    ``millis`` ms. aiokafka reads the value when it builds its fetcher, at start."""
    from faust.transport.drivers import aiokafka as driver

    create = driver.AIOKafkaConsumerThread._create_worker_consumer
    if getattr(create, "capped", False):
        return

    def create_with_short_wait(self: Any, transport: Any) -> Any:
        consumer = create(self, transport)
        consumer._fetch_max_wait_ms = millis
        return consumer

    create_with_short_wait.capped = True  # type: ignore[attr-defined]
    driver.AIOKafkaConsumerThread._create_worker_consumer = create_with_short_wait  # type: ignore[method-assign]
