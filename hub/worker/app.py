"""The Faust app: one agent per source system; it only adapts Kafka records to the pipeline
(pipeline.py), which holds the engine, its state and the guards.

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
import logging
import threading
from collections.abc import AsyncIterator
from typing import Any

import faust
import requests
from faust.worker import Worker
from prometheus_client import generate_latest

from hub.connect_client import ConnectClient, ConnectError
from hub.connectors import load_definitions
from hub.core.engine import STEP, MemoryStore
from hub.core.repair import REPAIRS_TOPIC
from hub.errors import DeadLetterFlood, StackError
from hub.kafka_io import partition_mismatches
from hub.settings import HubSettings
from hub.topics import TopicSpec, registry
from hub.worker import metrics
from hub.worker.continuity import EXIT_RESTART, OffsetGap
from hub.worker.logs import quiet_repeats
from hub.worker.output import Fenced
from hub.worker.pipeline import Pipeline, leave
from hub.worker.state import rows_changelog

log = logging.getLogger("hub.worker")


def check_inputs(settings: HubSettings, specs: list[TopicSpec]) -> None:
    """Refuse raw topics with more than one partition (the registry declares one): rows that look
    each other up would be split between workers, each with its own state. ``StackError`` says
    what to do."""
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
                    where = f"{message.topic}[{message.partition}]@{message.offset}"
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
            "active": bool(pipeline.held) and not pipeline.taking_over,
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


def run_worker(settings: HubSettings, loglevel: str) -> None:
    """Run until interrupted (blocks). Exits non-zero when the worker crashes."""
    from hub.stack.kafka import ensure_topics

    check_inputs(settings, [spec for spec in registry().topics.values() if spec.kind == "raw"])
    ensure_topics(
        settings.bootstrap, [rows_changelog(settings.worker_id), registry()[REPAIRS_TOPIC]]
    )
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
