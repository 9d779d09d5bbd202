"""One worker's processing, Faust aside: the engine and its state, the transactional outputs, the
guards (continuity, dead-letter breakers, liveness), and what happens at an assignment.

``Pipeline.handle`` takes one raw record, synchronously; the Faust agents (app.py) are thin loops
around it. Whatever cannot go on safely ends the process through ``leave``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import orjson

from hub.connectors import load_definitions
from hub.core.dlq import Provenance, StreamBreakers, dead_letter_headers
from hub.core.engine import STEP, Engine, MemoryStore
from hub.core.repair import REPAIRS_TOPIC, Repairer
from hub.errors import InvalidEvent, RegistryError
from hub.kafka_io import resume_offsets
from hub.settings import HubSettings
from hub.topics import TopicSpec, registry
from hub.worker import metrics
from hub.worker.continuity import EXIT_RESTART, ContinuityGuard
from hub.worker.liveness import Liveness, Verdict
from hub.worker.output import OutputProducer
from hub.worker.state import ChangelogStore, read_published, read_rows, rows_changelog
from hub.worker.transactions import Transactions
from hub.worker.watchdog import Watchdog

log = logging.getLogger("hub.worker")
REPAIRS = "hub-repair"  # the stream of repair requests, beside the systems' raw topics

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
    declared = {(spec.source.system, spec.source.table) for specs in grouped.values()
                for spec in specs if spec.source}  # fmt: skip
    undeclared = sorted(f"{system}:{table}" for system, table in engine.routed() - declared)
    if undeclared:
        raise RegistryError(
            f"no raw topic declared for {', '.join(undeclared)}: declare one per captured table in "
            "the topic registry (README, 'Adding a system'), then 'hub topics apply'"
        )
    return grouped


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
            max_leap=settings.worker_max_position_leap,
            log_rate=settings.worker_max_log_rate,
        )
        self.breakers = StreamBreakers(
            settings.dlq_max_consecutive, settings.dlq_max_ratio, settings.dlq_window
        )
        self.repairer = Repairer(self.engine)
        self.inputs = raw_topics_by_system(self.engine)
        self.inputs[REPAIRS] = [reg[REPAIRS_TOPIC]]  # read like a raw topic, held with them
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
        except Exception as exc:  # Faust would crash the whole worker: start afresh instead
            leave(EXIT_RESTART, f"could not take the assignment over: {exc!r}; starting afresh")
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
            if self.engine.frontiers is not None:
                self.engine.frontiers.reload()
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
                if system == REPAIRS:
                    system, outcome = self.repairer.apply(message.value, datetime.now(UTC))
                    log.info("repaired %s from %s: %d outputs", message.key, REPAIRS_TOPIC,
                             len(outcome.outputs))  # fmt: skip
                else:
                    outcome = self.engine.process(
                        system, message.key, message.value, datetime.now(UTC)
                    )
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
        self.producer.send(dlq, key, value, list(headers))
        tally(system, "dead_lettered")
        metrics.DEAD_LETTERS.labels(system, error.reason).inc()
        log.warning("dead-lettered %s[%d]@%d%s: %s", provenance.topic, provenance.partition,
                    provenance.offset, f" ({extra[0][1].decode()})" if extra else "", error)  # fmt: skip
        self.breakers.record((provenance.topic, provenance.partition), False)


def _replay_headers(message: Any) -> list[tuple[str, bytes]]:
    """A record replayed from the DLQ that fails again says so (``hub dlq replay`` skips it)."""
    headers = message.headers or []
    pairs = headers.items() if isinstance(headers, dict) else headers
    return [("hub.dlq.replayed_from", bytes(v)) for k, v in pairs if k == "hub.replayed_from"]


def _millis(timestamp: float | None) -> int | None:
    return int(timestamp * 1000) if timestamp else None
