"""The Faust app around the stream loop: the worker's life cycle and signals, its web server
(/health, /metrics) and timers. The raw records go through the stream loop (stream.py), not
through Faust's consumer and agents: its per-record cost was higher than the hub's whole core.

At-least-once in, fenced out, exactly-once in effect: per raw partition number held, the worker
writes in Kafka transactions holding the outputs, the engine's row changes, the dead letters and
the next input offsets together (pipeline.py).

Raw topics are partitioned as the registry declares, the same count for all but the reference
topics (read whole by every worker); the consumer group's range assignor gives partition N of every
raw topic to the same worker, and each worker of the group takes a share. A worker given a
partition number fences its previous holder (whose open transaction is aborted; it can write
nothing more), then reads back what was committed: that number's state (rows, how far it read
the reference topics) from the group's changelog, and the published marks from the unified
topics. A worker that makes no progress while records wait leaves for a fresh start
(liveness.py); so does one that finds records skipped (continuity.py).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import faust
import requests
from faust.app.base import BootStrategy
from faust.worker import Worker
from prometheus_client import generate_latest

from hub.connect_client import ConnectClient, ConnectError
from hub.connectors import load_definitions, load_sinks
from hub.core.availability import FEED
from hub.core.repair import REPAIRS_TOPIC
from hub.errors import StackError
from hub.kafka_io import partition_mismatches
from hub.settings import HubSettings
from hub.topics import TopicSpec, registry
from hub.worker import metrics
from hub.worker.logs import quiet_repeats
from hub.worker.notify import notifiers
from hub.worker.pipeline import Pipeline, leave
from hub.worker.state import rows_changelog
from hub.worker.stream import StreamLoop

log = logging.getLogger("hub.worker")


def check_inputs(settings: HubSettings, specs: list[TopicSpec]) -> None:
    """Refuse raw topics whose partition count is not the declared one: rows that look each
    other up would be split between workers. ``StackError`` says what to do."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": settings.bootstrap, "log_level": 3})
    wrong = partition_mismatches(admin.list_topics(timeout=30).topics, specs)
    if wrong:
        listing = ", ".join(f"{name} has {actual}, declared {declared}"
                            for name, (actual, declared) in sorted(wrong.items()))  # fmt: skip
        raise StackError(
            f"raw topics with another partition count than declared: {listing}. Recreate them "
            "as declared (the connectors re-snapshot), or `hub stack down --purge` a local stack"
        )


def create_app(settings: HubSettings) -> faust.App:
    app = faust.App(
        settings.worker_id,
        broker=f"kafka://{settings.bootstrap}",
        autodiscover=False,
        store="memory://",
        web_bind=settings.host,
        web_host=settings.host,
        web_port=settings.worker_web_port,
        topic_disable_leader=True,
        logging_config=None,
    )
    # Faust's own Kafka clients stay off: the stream loop reads and writes (stream.py).
    app.boot_strategy = BootStrategy(app, enable_kafka=False)
    pipeline = Pipeline(settings)
    stream = StreamLoop(pipeline, settings)
    app.pipeline = pipeline  # type: ignore[attr-defined]  # for the worker and tests
    app.stream_loop = stream  # type: ignore[attr-defined]

    if settings.connector_watch_interval > 0:
        watch = ConnectClient(settings.connect, timeout=5, retries=2)
        names = [d.connector.name for d in load_definitions().values()] + list(load_sinks())

        async def restart_failed_connectors() -> None:
            # Kafka Connect leaves a FAILED task failed (a source database that was down too
            # long, for instance): restart it, so the pipeline heals without an operator. One
            # worker of the group watches: the one holding raw partition 0.
            if 0 not in pipeline.tasks:
                return
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

        app.timer(settings.connector_watch_interval)(restart_failed_connectors)

    hooks = notifiers(settings)
    app.notifiers = hooks  # type: ignore[attr-defined]  # stopped by the worker

    async def start_stream() -> None:
        pipeline.watchdog.start()
        stream.start()
        for hook in hooks:
            hook.start()

    app.task(start_stream)

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
            "raw_partitions": sorted(pipeline.tasks),
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
        self, app: faust.App, pipeline: Pipeline, stream: StreamLoop, stop_timeout: float,
        **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__(app, **kwargs)
        self.pipeline, self.stream, self.stop_timeout = pipeline, stream, stop_timeout
        self._deadline: threading.Timer | None = None

    def _on_sigterm(self) -> None:
        self._stop_within()
        self.stream.stopping.set()  # the batch in hand is committed, then the group left
        super()._on_sigterm()

    def _on_sigint(self) -> None:
        self._stop_within()
        self.stream.stopping.set()
        super()._on_sigint()

    def on_worker_shutdown(self) -> None:
        self.stream.stop(self.stop_timeout)
        for hook in getattr(self.app, "notifiers", []):
            hook.stop(5.0)
        super().on_worker_shutdown()

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

    app = create_app(settings)
    pipeline: Pipeline = app.pipeline  # type: ignore[attr-defined]  # set by create_app
    check_inputs(settings, [spec for spec in registry().topics.values() if spec.kind == "raw"])
    ensure_topics(
        settings.bootstrap,
        [rows_changelog(settings.worker_id, pipeline.partitions), registry()[REPAIRS_TOPIC],
         registry()[FEED], *(spec for spec in registry().topics.values() if spec.kind == "unified")],
    )  # fmt: skip
    stream: StreamLoop = app.stream_loop  # type: ignore[attr-defined]
    worker = HubWorker(app, pipeline, stream, settings.worker_stop_timeout, loglevel=loglevel)
    # No terminal spinner: at a level above INFO it sets the root logger to DEBUG so that every
    # message spins it, and every debug call of Faust and aiokafka then builds a log record.
    worker.spinner = None
    worker.execute_from_commandline()
