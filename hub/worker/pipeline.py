"""One worker's processing, Kafka's consumer aside: per raw partition number held, a ``Task`` (the
engine and its rows, and the transactional producer writing for that number); the guards
(continuity, dead-letter breakers, liveness); and what happens at an assignment.

Synchronous, run by the stream loop's thread (stream.py): ``assign`` when the group gives this
worker partitions, ``process`` for each batch of raw records: every record of a batch is handled
(its outputs go out at once, into each task's open transaction); every ``worker_commit_interval``
while records keep coming, at a quiet moment and before partitions are taken back, each task
commits its transaction: the outputs, row changes and dead letters of the batches since the last
commit and the next input offsets. Whatever cannot go on safely ends the process through
``leave``.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from hub.connectors import load_definitions, reference_tables
from hub.core.availability import (
    FEED,
    INVENTORY,
    AvailabilityStage,
    Change,
    feed_change,
    feed_record,
)
from hub.core.availability import TOPIC as FIGURES
from hub.core.dlq import Provenance, StreamBreakers, dead_letter_headers
from hub.core.engine import STEP, Engine, MemoryStore, Outcome, Store, SystemMappings
from hub.core.golden import (
    CHANGES,
    RECORDS,
    REQUESTS,
    Erasure,
    IdentityStage,
    request_of,
)
from hub.core.golden import feed_change as customer_change
from hub.core.golden import feed_record as customer_record
from hub.core.identity import Decision, Rules
from hub.core.network import Network
from hub.core.positions import Frontiers
from hub.core.records import Output, Tombstone
from hub.core.repair import REPAIRS_TOPIC, Repairer
from hub.core.writeback import WRITEBACK, writeback_record
from hub.customers import (
    erasure_salt,
    load_rules,
    read_decisions,
    read_golden,
    read_links,
    read_records,
)
from hub.errors import DeadLetterFlood, InvalidEvent, RegistryError
from hub.kafka_io import resume_offsets
from hub.settings import HubSettings
from hub.stock import load_network
from hub.topics import TopicSpec, registry
from hub.worker import metrics
from hub.worker.continuity import EXIT_RESTART, ContinuityGuard, OffsetGap
from hub.worker.erasures import ErasureWatch
from hub.worker.liveness import Liveness, Verdict
from hub.worker.logs import KAFKA_LOG
from hub.worker.output import Fenced, OutputProducer, TransactionFailed, transactional_id
from hub.worker.state import (
    published_entries,
    published_figures,
    read_entries,
    rows_changelog,
    state_store,
    worker_disk,
)
from hub.worker.watchdog import Watchdog

log = logging.getLogger("hub.worker")
REPAIRS = "hub-repair"  # the stream of repair requests, beside the systems' raw topics
STOCK = "hub-stock"  # the stock feed: the availability stage's input (hub.core.availability)
CUSTOMERS = "hub-customers"  # the customer feed: the identity stage's input (hub.core.golden)
DECISIONS = "hub-customer-requests"  # manual identity decisions, read with the customer feed
FEEDS = (STOCK, CUSTOMERS)  # applied in batches, and at once after the commit that writes them
REFERENCE = "refpos:"  # state entry: how far a task read a reference topic partition
BATCH = 2000  # most records handled at once
BUSY = BATCH // 4  # a batch this large: the loop is behind

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


def tally(counts: Mapping[tuple[str, str], int]) -> None:
    """Add a batch's counts ((system, what) → amount) to the process's counters."""
    for (system, what), amount in counts.items():
        if amount:
            COUNTS[what] += amount
            _counter(system, what).inc(amount)


@functools.cache
def _counter(system: str, what: str) -> Any:
    """The labelled Prometheus counter of ``what`` for ``system`` (looked up once: per event)."""
    if what == "in":
        return metrics.EVENTS_IN.labels(system)
    if what == "expired":
        return metrics.ROWS_EXPIRED.labels(system)
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


class Task:
    """Raw partition number ``number`` (of every raw topic) as this worker holds it: the engine and
    its state (rows and frontiers, in that partition of the group's changelog; the published marks
    and the frontiers' memory it shares with the worker's other tasks), the producer that writes
    for it under a transactional id of its own, and a reader of the reference topics (read whole by
    every task: their rows are looked up from every partition; how far it read is part of the
    task's state). Taking the number over (``fence``) fences whoever held it before: their open
    transaction is aborted and they can write nothing more."""

    def __init__(
        self, number: int, settings: HubSettings, systems: Sequence[SystemMappings],
        topic_for_model: Mapping[str, str], references: Sequence[TopicSpec], disk: Path,
        published: Store, frontiers: Frontiers, network: Network, rules: Rules, salt: bytes,
    ) -> None:  # fmt: skip
        self.number, self.settings, self.references = number, settings, references
        self.rules, self.salt = rules, salt
        self.producer = OutputProducer(settings.bootstrap, f"{settings.worker_id}-p{number}")
        self.producer.config["logger"] = KAFKA_LOG
        self.producer.use(transactional_id(settings.worker_id, number))
        changelog = rows_changelog(settings.worker_id).name
        self.rows = state_store(settings, self.producer, changelog, number, disk / f"p{number}")
        self.engine = Engine(
            systems,
            topic_for_model,
            self.rows,
            published,
            frontiers=frontiers,
        )
        self.repairer = Repairer(self.engine)
        # The articles whose feed partition is this number: their levels and figures live in the
        # same state, committed in the same transactions.
        self.stock = AvailabilityStage(network, self.rows)
        # The golden customers, if this number holds the customer feed's one partition (0).
        self.identity = IdentityStage(rules, self.rows, salt)
        # The feeds' records this task wrote (stock levels, customer records), as delivered, until
        # its next commit makes them visible: then the worker applies those of the feed
        # partitions it holds at once (``Pipeline.apply_committed_feeds``).
        self.fed: list[Message] = []
        self._reader: Consumer | None = None
        self.read_to: dict[tuple[str, int], int] = {}  # per reference partition: the next offset

    def fence(self, timeout: float) -> None:
        """Take the transactional id (blocks). Raises ``Fenced`` if a newer holder has it."""
        self.producer.fence(timeout)

    def read_back(self) -> int:
        """The state as committed by whoever held this number before (call after ``fence``);
        the reference topics are then read on from where that state had them."""
        entries = self.rows.replace(
            read_entries(self.settings.bootstrap, self.settings.worker_id, self.number)
        )
        self.identity = IdentityStage(self.rules, self.rows, self.salt)  # as committed
        self.read_to = {
            (spec.name, p): self._read_to(spec.name, p)
            for spec in self.references for p in range(spec.partitions)
        }  # fmt: skip
        if self.references:
            self._reader = Consumer({
                "bootstrap.servers": self.settings.bootstrap, "enable.auto.commit": False,
                "group.id": f"{self.settings.worker_id}-references",  # never joined nor committed
                "isolation.level": "read_committed", "fetch.wait.max.ms": 20, "log_level": 3,
                "queued.max.messages.kbytes": 2048,  # small topics: little to fetch ahead
                "logger": KAFKA_LOG,
            })  # fmt: skip
            self._reader.assign([TopicPartition(t, p, o) for (t, p), o in self.read_to.items()])
        return entries

    def _read_to(self, topic: str, partition: int) -> int:
        stored = self.rows.get(f"{REFERENCE}{topic}:{partition}")
        return int(stored["next"]) if stored else OFFSET_BEGINNING

    def reference_records(self) -> list[Message]:
        """The reference records that arrived since the last call (never blocks)."""
        return self._reader.consume(BATCH, 0) if self._reader is not None else []

    def reference_read(self, message: Message) -> None:
        """Record that ``message`` of a reference topic was applied (saved with the rows)."""
        topic, partition = message.topic() or "", message.partition() or 0
        self.read_to[(topic, partition)] = (message.offset() or 0) + 1
        self.rows.put(f"{REFERENCE}{topic}:{partition}", {"next": self.read_to[(topic, partition)]})

    def references_behind(self) -> dict[tuple[str, int], int]:
        """The reference partitions with records this task has not read yet, and where each
        ends now (blocks for the answer)."""
        if self._reader is None:
            return {}
        behind = {}
        for tp, read_to in self.read_to.items():
            low, high = self._reader.get_watermark_offsets(TopicPartition(*tp), 10)
            if high > max(read_to, low):
                behind[tp] = high
        return behind

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        self.rows.close()

    def commit(
        self, timeout: float, offsets: list[TopicPartition] | None = None, group: Any = None
    ) -> None:
        """One transaction: what was written since the last commit (the rows changed meanwhile
        handed over first: ``rows.write_changes``), and ``offsets`` (the next input offsets) for
        the consumer group ``group``."""
        if self.producer.pending or offsets:
            started = time.monotonic()
            self.producer.commit(timeout, offsets, group)
            metrics.TRANSACTION_SECONDS.observe(time.monotonic() - started)


class Pipeline:
    """What one worker holds: a ``Task`` per raw partition number it was given, the published
    marks and frontiers its tasks share, and the guards (continuity, dead-letter breakers,
    liveness). It does not consume the raw topics itself: the stream loop (stream.py) hands it
    assignments (``assign``, ``revoke``, ``lose``) and batches of records (``process``)."""

    def __init__(self, settings: HubSettings) -> None:
        reg = registry()
        self.settings = settings
        self.timeout = 30.0  # for each blocking call to Kafka (fence, commit)
        self.interval = settings.worker_commit_interval
        definitions = load_definitions()
        self.systems = [definition.engine_view() for definition in definitions.values()]
        self.topic_for_model = {spec.model: spec.id for spec in reg.topics.values() if spec.model}
        routing = Engine(self.systems, self.topic_for_model, MemoryStore())  # validates them too
        self.breakers = StreamBreakers(
            settings.dlq_max_consecutive, settings.dlq_max_ratio, settings.dlq_window
        )
        self.inputs = raw_topics_by_system(routing)
        self.inputs[REPAIRS] = [reg[REPAIRS_TOPIC]]  # read like a raw topic, held with them
        self.network = load_network()
        self.inputs[STOCK] = [reg[FEED]]  # likewise: partition N of the feed goes to task N
        # One partition each: every customer's records meet in task 0, whichever raw partition
        # they came from (a customer's records share no key the raw topics could be keyed by).
        self.rules = load_rules()
        self.salt = erasure_salt(settings)
        self.erasures = ErasureWatch(
            settings.bootstrap, f"{settings.worker_id}-erasures", self.salt
        )
        self.inputs[CUSTOMERS] = [reg[CHANGES]]
        self.inputs[DECISIONS] = [reg[REQUESTS]]
        single = [reg[CHANGES], reg[REQUESTS]]
        for spec in single:
            if spec.partitions != 1:
                raise RegistryError(f"{spec.id} must declare 1 partition in the topic registry "
                                    f"(the identity stage reads it whole); it declares "
                                    f"{spec.partitions}")  # fmt: skip
        # Raw topic name → (system, dead-letter topic name).
        self.routes = {
            spec.name: (system, reg[specs[0].dlq or ""].name)
            for system, specs in self.inputs.items() for spec in specs
        }  # fmt: skip
        # Reference topics are read whole by every task; the others are shared out by the group.
        reference = reference_tables(definitions)
        self.references = [
            spec for specs in self.inputs.values() for spec in specs
            if spec.source and (spec.source.system, spec.source.table) in reference
        ]  # fmt: skip
        self.input_names = set(self.routes) - {spec.name for spec in self.references}
        counts = {spec.partitions for spec in reg.topics.values()
                  if spec.name in self.input_names - {spec.name for spec in single}}  # fmt: skip
        if len(counts) != 1:
            raise RegistryError(
                "the raw topics (but reference ones) and the repairs topic must declare the same "
                f"number of partitions in the topic registry; they declare {sorted(counts)}"
            )
        self.partitions = counts.pop()  # the most workers of the group active at once
        self.topic_names = {spec.id: spec.name for spec in reg.topics.values()}
        # Where group figures are written back for the channels' databases (if declared).
        self.writeback = self.topic_names.get(WRITEBACK)
        self.tasks: dict[int, Task] = {}
        self.committers = ThreadPoolExecutor(thread_name_prefix="hub-commit")
        self.disk = worker_disk(settings)  # where this process keeps its tasks' state databases
        # The marks of what was published, shared by the tasks: read from the unified topics.
        self.published = state_store(settings, None, "", 0, self.disk / "published")
        # The newest position seen per source system, shared by the tasks: a task whose
        # partitions have seen nothing of a system yet still judges its changes by what the others
        # saw. Each task's state keeps it too (see TaskFrontiers).
        self.handling: Task | None = None  # the task whose record is being handled
        self.frontiers = Frontiers(
            TaskFrontiers(self), settings.worker_max_position_leap, settings.worker_max_log_rate
        )
        # Per task number: the next input offsets of what it handled since its last commit.
        self.pending: dict[int, dict[tuple[str, int], int]] = {}
        # Feed records (topic, partition, offset) applied as they were committed, not fetched yet.
        self.applied: set[tuple[str, int, int]] = set()
        self.group: Any = None  # the consumer group metadata of the latest batch
        self.committed_at = time.monotonic()
        self.held: frozenset[tuple[str, int]] = frozenset()  # replaced whole: read by the watchdog
        self.taking_over = False
        # The feeds are written in transactions, the requests compacted: their offsets have holes.
        self.guard = ContinuityGuard(frozenset({reg[FEED].name, reg[CHANGES].name,
                                                reg[REQUESTS].name}))  # fmt: skip
        self.frozen = False  # the liveness drill (SIGUSR2): consume nothing more
        self.watchdog = Watchdog(
            Liveness(settings.worker_stall_timeout),
            settings.bootstrap,
            self.positions,
            self.stalled,
            interval=min(5.0, max(0.5, settings.worker_stall_timeout / 10)),
        )

    # -- assignment (called by the stream loop from inside the consumer's poll)

    def revoke(self) -> None:
        """The group takes the partitions back for a rebalance: what was handled is committed
        first. The tasks stay until the next assignment: those whose numbers come back unchanged
        are kept."""
        self.commit_pending()
        self.taking_over = True
        self.held = frozenset()

    def lose(self) -> None:
        """This worker was out of the group (paused, cut off): others may have processed its
        partitions since. Its tasks are dropped, their open transactions with them (never
        committed: whoever holds a number next fences its producer); the next assignment reads
        everything back."""
        self.taking_over = True
        self.held = frozenset()
        self._drop(set(self.tasks))

    def _drop(self, numbers: set[int]) -> None:
        for number in numbers:
            self.pending.pop(number, None)
            self.tasks.pop(number).close()
        self.applied = {(topic, number, offset) for topic, number, offset in self.applied
                        if number not in numbers}  # fmt: skip

    def assign(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Hold ``partitions`` from now on. A number newly held (or moved on by someone else since
        this worker held it) is taken over: its previous holder is fenced, then its rows and the
        published marks are read back, exactly as committed."""
        mine = frozenset(tp for tp in partitions if tp[0] in self.input_names)
        self.taking_over = True
        try:
            self._assign(mine)
        except Exception as exc:  # nothing can go on without its state: start afresh instead
            leave(EXIT_RESTART, f"could not take the assignment over: {exc!r}; starting afresh")
        finally:
            self.taking_over = False
            self.watchdog.restart()

    def _assign(self, mine: frozenset[tuple[str, int]]) -> None:
        settings = self.settings
        numbers = {partition for _, partition in mine}
        self._drop(set(self.tasks) - numbers)
        # Fence every number not held before: until its previous holder's open transaction is
        # aborted, the group's offsets of its partitions are not even readable (still pending).
        new = self._fence(numbers - set(self.tasks))
        starts = (
            resume_offsets(settings.bootstrap, settings.worker_id, sorted(mine)) if mine else {}
        )
        # A number held before this rebalance is kept unless someone committed past what this
        # worker processed meanwhile: then it is taken over like a new one.
        moved = {
            number for number in self.tasks
            if any(self.guard.expected.get(tp, start) != start
                   for tp, start in starts.items() if tp[1] == number)
        }  # fmt: skip
        if moved:
            self._drop(moved)
            new += self._fence(moved)
        if new:
            self.erasures.start()
            rows = [task.read_back() for task in new]
            self.frontiers.reload()  # the newest any held task's state saved
            # What every holder published, whichever group: the unified topics say it.
            marks = self.published.replace(published_entries(settings.bootstrap))
            figures = published_figures(settings.bootstrap)
            for task, entries in zip(new, rows, strict=True):
                self.tasks[task.number] = task
                applied = self._catch_up(task)
                self._heal_stock(task, figures)
                self._forget(task, self.erasures.refs)
                if (self.topic_names[CHANGES], task.number) in mine:
                    self._heal_identity(task)
                metrics.RESEEDS.inc()
                log.info("given raw partition %d: fenced its previous holder, read %d state "
                         "entries and %d published records back, %d reference changes since",
                         task.number, entries, marks, applied)  # fmt: skip
        self.held = mine
        self.guard.reset(starts)
        # Only now: the previous holders are fenced, the state read back.
        metrics.ACTIVE.set(1 if mine else 0)

    def _fence(self, numbers: set[int]) -> list[Task]:
        tasks = [
            Task(
                number,
                self.settings,
                self.systems,
                self.topic_for_model,
                self.references,
                self.disk,
                self.published,
                self.frontiers,
                self.network,
                self.rules,
                self.salt,
            )
            for number in sorted(numbers)
        ]
        for task in tasks:
            try:
                task.fence(self.timeout)
            except Fenced as exc:
                leave(EXIT_RESTART, f"cannot take raw partition {task.number} over: {exc}; "
                                    "starting afresh")  # fmt: skip
        return tasks

    def _heal_stock(self, task: Task, figures: Mapping[str, Mapping[str, Any]]) -> None:
        """A task taken over makes its articles' figures again and publishes, in its next
        transaction, those that differ from what ``unified.availability`` holds: figures
        another holder left half made, another worker group's, a new network file's."""
        outcome = task.stock.recompute(datetime.now(UTC), figures)
        for output in outcome.outputs:
            self._publish_stock(task, output)
        if outcome.outputs:  # else the state's note of the file goes with the next commit
            self.pending.setdefault(task.number, {})
            log.info("raw partition %d: %d availability records differed from the topic (network "
                     "version %d, %s): published again", task.number, len(outcome.outputs),
                     self.network.version, self.network.digest)  # fmt: skip

    def _publish_stock(self, task: Task, output: Output) -> None:
        """An output of the availability stage into ``task``'s open transaction; a group figure
        also as its write-back row (``hub.core.writeback``), for the sinks of the channels'
        databases, in the same transaction."""
        task.producer.publish(self.topic_names[output.topic_id], output)
        if output.topic_id == FIGURES and self.writeback is not None:
            row = writeback_record(output)
            if row is not None:
                task.producer.send(self.writeback, row[0], row[1], [])

    def _heal_identity(self, task: Task) -> None:
        """The task that resolves customers, taken over with no identity state (a new worker
        group: seeded from what the topics hold, so that the feed read from its start publishes
        no older customers) or with a state made with other rules (every customer on
        ``unified.customer.records`` made again with these); what differs is published in its
        next transaction."""
        identity = task.identity
        if not identity.fresh() and not identity.rules_changed():
            return
        started = time.monotonic()
        records = read_records(self.settings)
        if identity.fresh():
            golden = read_golden(self.settings)
            outcome = identity.seed(records, golden, read_links(self.settings),
                                    read_decisions(self.settings).made, self.erasures.hashes,
                                    datetime.now(UTC))  # fmt: skip
            what = f"a new state seeded from {len(golden)} published customers"
        else:
            outcome = identity.rebuild(records, datetime.now(UTC))
            what = f"rules version {self.rules.version} ({self.rules.digest}): resolved again"
        for output in outcome.outputs:
            task.producer.publish(self.topic_names[output.topic_id], output)
        self.pending.setdefault(task.number, {})
        log.info("identity: %s, %d customer records in %.1f s, %d records published", what,
                 len(records), time.monotonic() - started, len(outcome.outputs))  # fmt: skip

    def _forget(self, task: Task, refs: Sequence[str]) -> None:
        """Drop the source rows ``task``'s engine keeps of erased records (committed with its
        next transaction)."""
        dropped = sum(task.engine.forget(ref) for ref in refs)
        if dropped:
            self.pending.setdefault(task.number, {})
            log.info("raw partition %d: forgot %d source rows of erased customers", task.number,
                     dropped)  # fmt: skip

    def _catch_up(self, task: Task) -> int:
        """Apply the reference changes ``task`` has not seen yet, up to the current end, before
        any other record (rows looked up are then as new as can be); commits them."""
        ends, applied = task.references_behind(), 0
        started = time.monotonic()
        while any(task.read_to[tp] < end for tp, end in ends.items()):
            records = task.reference_records()
            if not records:
                if time.monotonic() - started > self.timeout:
                    raise RuntimeError(f"reference topics not read to their end: {ends}")
                time.sleep(0.01)
                continue
            self.process([], None, {task.number: records})
            applied += len(records)
        return applied

    # -- liveness (called from the watchdog's thread)

    def positions(self) -> dict[tuple[str, int], int]:
        if self.taking_over:
            return {}
        held, expected = self.held, dict(self.guard.expected)
        return {partition: offset for partition, offset in expected.items() if partition in held}

    def stalled(self, verdict: Verdict) -> None:
        leave(EXIT_RESTART, f"stalled: {verdict.describe()}; leaving for a fresh start "
                            "(nothing more is committed; the next process reads again)")  # fmt: skip

    # -- records

    def process(
        self, messages: Sequence[Message], group: Any,
        references: Mapping[int, Sequence[Message]] | None = None,
    ) -> None:  # fmt: skip
        """Handle a batch of raw records (in the order consumed), after the reference records
        each task read meanwhile (``references``: by task number; by default each task's new
        ones); commit (``commit_pending``) when the commit interval has passed or the batch is
        empty: per task, one transaction with everything handled since its last commit and the
        next input offsets for consumer group metadata ``group``. Leaves the process when it cannot go
        on safely: records skipped (``OffsetGap``), a flood of dead letters, fenced by a newer
        holder, or an output or transaction Kafka would not take (nothing handled since the last
        commit is committed then: the next process handles it again)."""
        now = datetime.now(UTC)
        counts: Counter[tuple[str, str]] = Counter()
        done: dict[int, dict[tuple[str, int], int]] = {}
        feeds: dict[tuple[str, int], list[Message]] = {}  # the feeds' records, per partition
        message: Message | None = None
        erased = self.erasures.poll()  # erasures made since the last batch
        for task in self.tasks.values():
            self._forget(task, erased)
        with self._failures(lambda: message):
            try:
                for number, task in list(self.tasks.items()):
                    read = (
                        task.reference_records() if references is None else references.get(number)
                    )
                    for message in read or ():
                        if message.error() is None:
                            self.handle(task, message, now, counts)
                            task.reference_read(message)
                    if read:
                        done[number] = {}
                for message in messages:
                    error = message.error()
                    if error is not None:
                        self._consumer_error(error)
                        continue
                    topic, partition = message.topic() or "", message.partition() or 0
                    held = self.tasks.get(partition)
                    if held is None or (topic, partition) not in self.held:
                        continue  # fetched before a rebalance that gave its partition to another
                    offset = message.offset() or 0
                    self.guard.check(topic, partition, offset)
                    system = self.routes[topic][0]
                    if system not in FEEDS:
                        self.handle(held, message, now, counts)
                    elif (topic, partition, offset) in self.applied:  # applied as committed
                        self.applied.discard((topic, partition, offset))
                        counts[(system, "in")] += 1
                        counts[(system, "duplicate")] += 1
                    else:  # applied together, after the loop
                        feeds.setdefault((topic, partition), []).append(message)
                    done.setdefault(partition, {})[(topic, partition)] = offset + 1
                for (_, number), feed in feeds.items():
                    self.handle_feed(self.tasks[number], feed, now, counts)
                for task in self.tasks.values():
                    task.producer.serve()
            finally:
                tally(counts)
        self.group = group
        for number, offsets in done.items():
            self.pending.setdefault(number, {}).update(offsets)
        if not messages or time.monotonic() - self.committed_at >= self.interval:
            # Behind (a large batch): the figures of what commits now wait for the next commit,
            # so that the loop does not wait for two commits per interval when it is short of time.
            self.commit_pending(at_once=len(messages) < BUSY)

    @contextmanager
    def _failures(self, handling: Callable[[], Message | None] | None) -> Iterator[None]:
        """Leave the process when handling records cannot go on safely: records skipped
        (``OffsetGap``), a flood of dead letters, fenced by a newer holder, or an output Kafka
        would not take (nothing handled since the last commit is committed then: the next
        process handles it again). ``handling``: the record being handled, to say which."""
        try:
            yield
        except OffsetGap as gap:
            leave(EXIT_RESTART, f"{gap}; starting afresh to read them again")
        except DeadLetterFlood as flood:
            # Stop for sure, once the letters judged so far are committed: nothing of this
            # batch's input is committed (the batches before it are), so the next worker judges
            # the rest again.
            self._commit({number: self.pending.get(number, {}) for number in self.tasks},
                         self.group)  # fmt: skip
            leave(1, str(flood))
        except Fenced as fenced:
            leave(EXIT_RESTART, f"{fenced}; this worker was replaced, starting afresh")
        except Exception as exc:  # Kafka would not take our output: stop
            # Not the input's fault, so not for the DLQ: stop before this offset is committed;
            # a restarted worker processes the event again (nothing is lost).
            message = handling() if handling is not None else None
            where = _where(message) if message is not None else "a batch"
            leave(1, f"cannot produce for {where}, stopping: {exc!r}")

    def commit_pending(self, at_once: bool = True) -> None:
        """Commit what the tasks handled since their last commit (blocks), then apply the feed
        records it made visible (``apply_committed_feeds``)."""
        if self.pending:
            self._commit(self.pending, self.group)
            self.pending = {}
            self.apply_committed_feeds(at_once)
        self.committed_at = time.monotonic()

    def apply_committed_feeds(self, at_once: bool = True) -> None:
        """Apply the feeds' records (stock levels, customer records) the tasks just committed,
        with the tasks holding their feed partitions, and commit what they made (``at_once``;
        else with the next commit): availability and golden customers follow their inputs by
        one commit, not by a commit interval and a fetch. The same records fetched later are
        skipped (``applied``); had this worker died in between, the next holder applies them
        from the feed (the state and the feed offsets are committed together)."""
        batches: dict[tuple[str, int], list[Message]] = {}
        for task in self.tasks.values():
            task.producer.serve()  # the delivery reports of what the commit sent (never blocks)
            fed, task.fed = task.fed, []
            for message in fed:
                held = (message.topic() or "", message.partition() or 0)
                if held in self.held and held[1] in self.tasks:
                    batches.setdefault(held, []).append(message)
        if not batches:
            return
        now = datetime.now(UTC)
        counts: Counter[tuple[str, str]] = Counter()
        with self._failures(None):
            try:
                for (topic, number), messages in batches.items():
                    messages.sort(key=lambda message: message.offset() or 0)  # log order
                    self.handle_feed(self.tasks[number], messages, now, counts)
                    self.applied.update((topic, number, message.offset() or 0)
                                        for message in messages)  # fmt: skip
            finally:
                tally(counts)
        numbers = {number for _, number in batches}
        if at_once:
            self._commit({number: {} for number in numbers}, self.group)
        else:
            for number in numbers:
                self.pending.setdefault(number, {})

    def _commit(self, done: Mapping[int, Mapping[tuple[str, int], int]], group: Any) -> None:
        self._commit_tasks(done, group)
        self.published.write_changes()  # the marks of what is now committed

    def _commit_tasks(self, done: Mapping[int, Mapping[tuple[str, int], int]], group: Any) -> None:
        """Commit each task's transaction; those of several tasks at once (each commit waits on
        broker round trips, and librdkafka waits without holding the interpreter)."""
        commits: list[tuple[Task, list[TopicPartition]]] = []
        for number, offsets in done.items():
            task = self.tasks[number]
            task.rows.write_changes()  # here, not in the threads: the state is not thread-safe
            commits.append((task, [TopicPartition(t, p, o) for (t, p), o in offsets.items()]))

        def commit(each: tuple[Task, list[TopicPartition]]) -> Exception | None:
            task, offsets = each
            try:
                task.commit(self.timeout, offsets, group)
            except Exception as exc:
                return exc
            return None

        if len(commits) > 1:
            failures = list(self.committers.map(commit, commits))
        else:
            failures = [commit(each) for each in commits]
        for failure in failures:
            if isinstance(failure, Fenced):
                leave(EXIT_RESTART, f"{failure}; this worker was replaced, starting afresh")
            elif isinstance(failure, TransactionFailed):
                leave(EXIT_RESTART, f"transaction aborted, nothing of it is visible: {failure}; "
                                    "starting afresh from the committed offsets")  # fmt: skip
            elif failure is not None:  # whatever else: never go on without commits
                leave(EXIT_RESTART, f"cannot commit the output transaction: {failure!r}; "
                                    "starting afresh from the committed offsets")  # fmt: skip

    def _consumer_error(self, error: KafkaError) -> None:
        if error.fatal():
            leave(EXIT_RESTART, f"the raw-topic consumer failed for good: {error.str()}")
        log.warning("raw-topic consumer: %s", error.str())

    def handle(
        self, task: Task, message: Message, now: datetime, counts: Counter[tuple[str, str]]
    ) -> None:
        """Process one raw record with ``task``'s engine: outputs, row changes and dead letters go
        into its open transaction; ``counts`` gets (system, outcome) tallies.

        Raises ``DeadLetterFlood``, ``Fenced``, or whatever the producer raised (the output could
        not be handed over)."""
        topic, partition = message.topic() or "", message.partition() or 0
        system, dlq = self.routes[topic]
        counts[(system, "in")] += 1
        self.handling = task
        key, value = message.key(), message.value()
        try:
            try:
                if system == REPAIRS:
                    system, outcome = task.repairer.apply(value, now)
                    log.info("repaired %s from %s: %d outputs", key, REPAIRS_TOPIC,
                             len(outcome.outputs))  # fmt: skip
                elif system == DECISIONS:
                    if value is None:  # an erasure request, tombstoned once applied
                        counts[(system, "noop")] += 1
                        return
                    outcome = self._request(task, key, request_of(value), now)
                else:
                    outcome = task.engine.process(system, key, value, now)
            except InvalidEvent:
                raise
            except Exception as exc:  # a bug met by this input: dead-letter it, go on
                raise InvalidEvent("internal_error", repr(exc)) from exc
        except InvalidEvent as error:  # bad input: to the DLQ, and on with the next
            self._dead_letter(task, system, dlq, key, value, message, error,
                              _replay_headers(message), counts)  # fmt: skip
            return
        producer, names = task.producer, self.topic_names
        made = system != DECISIONS  # by the engine: the stages' inputs
        for output in outcome.outputs:
            if made and output.topic_id == RECORDS and self._erased(output):
                task.engine.forget(output.key)  # not published, its row forgotten again
                counts[(system, "erased")] += 1
                continue
            producer.publish(names[output.topic_id], output)
            if made:
                self._feed(task, output)
        counts[(system, "applied")] += len(outcome.outputs)
        counts[(system, "duplicate")] += outcome.duplicates
        counts[(system, "noop")] += outcome.noops
        counts[(system, "expired")] += outcome.expired
        if outcome.skipped and outcome.skipped not in ("duplicate", "noop"):
            counts[(system, "skipped")] += 1
        self.breakers.record((topic, partition), True)
        for failure in outcome.failures:  # a stored row that failed once a row it looks up arrived
            self._dead_letter(task, system, dlq, failure.ref.encode(), orjson.dumps(failure.row),
                              message, failure.error, [("hub.dlq.row_ref", failure.ref.encode())],
                              counts)  # fmt: skip

    def _erased(self, output: Output) -> bool:
        """Whether ``output`` is a change of an erased customer's record (a deletion is not: it
        lifts the block)."""
        return not isinstance(output, Tombstone) and self.erasures.erased(output.key)

    def _feed(self, task: Task, output: Output) -> None:
        """Hand an engine output to the stage it feeds, in the same transaction."""
        if output.topic_id == INVENTORY:
            key, value = feed_record(output)
            feed = FEED
        elif output.topic_id == RECORDS:
            key, value = customer_record(output)
            feed = CHANGES
        else:
            return
        task.producer.send(self.topic_names[feed], key, value, [], delivered=task.fed.append)

    def _request(
        self, task: Task, key: bytes | None, request: Decision | Erasure, now: datetime
    ) -> Outcome:
        """A manual decision or an erasure, applied by ``task``'s identity stage."""
        if isinstance(request, Erasure):
            outcome = task.identity.erase(request, now)
            # The request named the person: it does not stay on the topic once applied.
            outcome.outputs.append(Tombstone(REQUESTS, (key or b"").decode()))
            log.info("customer erased by %s at %s: %d records", request.who, request.at,
                     sum(1 for o in outcome.outputs if o.topic_id == RECORDS))  # fmt: skip
            return outcome
        outcome = task.identity.decide(request, now)
        log.info("customer decision: %s %s %s by %s (%s): %d outputs", request.kind, request.a,
                 request.b, request.who, request.why, len(outcome.outputs))  # fmt: skip
        return outcome

    def handle_feed(
        self, task: Task, messages: Sequence[Message], now: datetime,
        counts: Counter[tuple[str, str]],
    ) -> None:  # fmt: skip
        """Apply records of one feed partition (in log order) with ``task``'s stage."""
        if self.routes[messages[0].topic() or ""][0] == STOCK:
            self.handle_levels(task, messages, now, counts)
        else:
            self.handle_customers(task, messages, now, counts)

    def handle_customers(
        self, task: Task, messages: Sequence[Message], now: datetime,
        counts: Counter[tuple[str, str]],
    ) -> None:  # fmt: skip
        """Apply records of the customer feed, in order, with ``task``'s identity stage: golden
        customers, links and events into its open transaction; a change it refuses (or cannot
        read) to the DLQ. Raises as ``handle``."""
        _, dlq = self.routes[messages[0].topic() or ""]
        self.handling = task
        for message in messages:
            counts[(CUSTOMERS, "in")] += 1
            try:
                try:
                    change = customer_change(message.value())
                    outcome = task.identity.apply(change.ref, change.record, change.position, now,
                                                  change.committed_at)  # fmt: skip
                except InvalidEvent:
                    raise
                except Exception as exc:  # a bug met by this input: dead-letter it, go on
                    raise InvalidEvent("internal_error", repr(exc)) from exc
            except InvalidEvent as error:
                self._dead_letter(task, CUSTOMERS, dlq, message.key(), message.value(), message,
                                  error, _replay_headers(message), counts)  # fmt: skip
                continue
            for output in outcome.outputs:
                task.producer.publish(self.topic_names[output.topic_id], output)
            for key, holders in task.identity.take_storms():
                rule = key.partition("|")[0]
                metrics.MERGE_STORMS.labels(rule).inc()
                log.warning("merge storm: %d customer records share the blocking key %s (limit "
                            "%d): it links none of them", holders, key,
                            self.rules.spec.max_block)  # fmt: skip
            counts[(CUSTOMERS, "applied")] += len(outcome.outputs)
            if outcome.skipped == "duplicate":
                counts[(CUSTOMERS, "duplicate")] += 1
            for failure in outcome.failures:
                self._dead_letter(task, CUSTOMERS, dlq, message.key(), message.value(), message,
                                  failure.error, _replay_headers(message), counts)  # fmt: skip
            if not outcome.failures:
                self.breakers.record((message.topic() or "", message.partition() or 0), True)

    def handle_levels(
        self, task: Task, messages: Sequence[Message], now: datetime,
        counts: Counter[tuple[str, str]],
    ) -> None:  # fmt: skip
        """Apply records of the stock feed with ``task``'s availability stage, in one batch (its
        changes coalesce per article): the figures and alerts go into its open transaction, what
        it refuses to the DLQ. Raises as ``handle``."""
        _, dlq = self.routes[messages[0].topic() or ""]
        changes: list[Change] = []
        read: list[Message] = []
        for message in messages:
            counts[(STOCK, "in")] += 1
            try:
                changes.append(feed_change(message.value()))
                read.append(message)
            except InvalidEvent as error:
                self._dead_letter(task, STOCK, dlq, message.key(), message.value(), message,
                                  error, _replay_headers(message), counts)  # fmt: skip
        self.handling = task
        applied = task.stock.apply_batch(changes, now)
        for output in applied.outputs:
            self._publish_stock(task, output)
        counts[(STOCK, "applied")] += len(applied.outputs)
        counts[(STOCK, "duplicate")] += applied.duplicates
        counts[(STOCK, "noop")] += applied.noops
        refused = dict(applied.refused)
        for index, message in enumerate(read):
            reason = refused.get(index)
            if reason is None:
                self.breakers.record((message.topic() or "", message.partition() or 0), True)
            else:
                self._dead_letter(task, STOCK, dlq, message.key(), message.value(), message,
                                  reason, _replay_headers(message), counts)  # fmt: skip

    def _dead_letter(
        self, task: Task, system: str, dlq: str, key: bytes | None, value: bytes | None,
        message: Message, error: InvalidEvent, extra: list[tuple[str, bytes]],
        counts: Counter[tuple[str, str]],
    ) -> None:  # fmt: skip
        kind, stamp = message.timestamp()
        provenance = Provenance(
            message.topic() or "", message.partition() or 0, message.offset() or 0,
            stamp if kind else None,
        )  # fmt: skip
        headers = dead_letter_headers(provenance, error, STEP, self.settings.worker_id) + extra
        task.producer.send(dlq, key, value, list(headers))
        counts[(system, "dead_lettered")] += 1
        metrics.DEAD_LETTERS.labels(system, error.reason).inc()
        log.warning("dead-lettered %s[%d]@%d%s: %s", provenance.topic, provenance.partition,
                    provenance.offset, f" ({extra[0][1].decode()})" if extra else "", error)  # fmt: skip
        self.breakers.record((provenance.topic, provenance.partition), False)


class TaskFrontiers:
    """The ``Store`` of a worker's shared frontiers: reads the newest entry any task it holds has
    saved, and saves into the state of the task whose record is being handled (so that the entry
    is committed with that record's outputs and read back by whoever takes that task over)."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def get(self, ref: str) -> dict[str, Any] | None:
        saved = [value for task in self.pipeline.tasks.values()
                 if (value := task.rows.get(ref)) is not None]  # fmt: skip
        return max(saved, key=lambda value: value.get("at", 0.0), default=None)

    def put(self, ref: str, value: dict[str, Any] | None) -> None:
        task = self.pipeline.handling
        if task is not None:
            task.rows.put(ref, value)


def _where(message: Message) -> str:
    return f"{message.topic()}[{message.partition()}]@{message.offset()}"


def _replay_headers(message: Message) -> list[tuple[str, bytes]]:
    """A record replayed from the DLQ that fails again says so (``hub dlq replay`` skips it)."""
    headers: Any = message.headers() or []
    pairs = headers.items() if isinstance(headers, dict) else headers
    return [("hub.dlq.replayed_from", bytes(v)) for k, v in pairs if k == "hub.replayed_from"]
