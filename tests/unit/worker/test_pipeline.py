"""The worker's processing around the engine, without a broker: raw records handed in batches as
the stream loop hands them, the producer's sends and transactions recorded."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest

from hub.connectors import load_definitions
from hub.core.availability import feed_record
from hub.core.engine import row_ref
from hub.core.identity import Decisions
from hub.core.records import Upsert
from hub.models import InventoryLevel
from hub.settings import HubSettings
from hub.worker import app as worker_app
from hub.worker import pipeline as pipeline_module
from hub.worker.continuity import EXIT_RESTART
from hub.worker.output import Fenced, OutputProducer, TransactionFailed
from hub.worker.pipeline import Pipeline
from tests.conftest import pick

RAW_STOCK = "raw.pos.pos.stock"
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
CHANGELOG = "unified-commerce-hub-engine-rows-changelog"
FEED = "hub.stock.levels"
CUSTOMER_FEED, REQUESTS = "hub.customer.changes", "hub.customer.requests"
RAW_ERP_CUSTOMER = "raw.erp.erp.CUST_MAST"


@dataclass
class Message:
    """What confluent-kafka's consumer hands out, as far as the pipeline reads it."""

    _topic: str
    _partition: int
    _offset: int
    _key: bytes | None
    _value: bytes | None
    _headers: list[tuple[str, bytes]] | None = None
    _error: Any = None

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self._headers

    def error(self) -> Any:
        return self._error

    def timestamp(self) -> tuple[int, int]:
        return (2, 1_795_440_563_000)


class Left(Exception):
    """The worker left (``os._exit`` in a real one): nothing after it runs."""


@dataclass
class Kafka:
    """Everything the worker's producers were asked to do, in order."""

    sent: list[tuple[str, bytes | None, bytes | None, dict[str, bytes], int]] = field(
        default_factory=list
    )
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    commit_error: Exception | None = None
    send_error: Exception | None = None
    ends: dict[tuple[str, int], int] = field(default_factory=dict)  # the last offset written
    reports: dict[int, list[Any]] = field(default_factory=dict)  # per producer, until its commit

    state: dict[int, dict[str, Any]] = field(default_factory=dict)  # read back, per number
    published: dict[str, Any] = field(default_factory=dict)  # what the unified topics hold
    # Reference records (each task's reader reads them all), and the readers made.
    references: list[Message] = field(default_factory=list)
    readers: list[Reader] = field(default_factory=list)
    erased: list[str] = field(default_factory=list)  # customer record refs erased
    # What unified.customer.records, unified.customer and unified.customer.links hold.
    customer_topics: dict[str, dict[str, Any]] = field(default_factory=dict)

    def outputs(self) -> list[tuple[str, bytes | None, bytes | None, dict[str, bytes]]]:
        """What went anywhere but the engine's changelog and the stock feed (the worker's own)."""
        return [(t, k, v, h) for t, k, v, h, _ in self.sent
                if t not in (CHANGELOG, FEED, CUSTOMER_FEED)]  # fmt: skip

    def feed(self) -> list[tuple[bytes | None, bytes | None, int]]:
        """What went to the stock feed: key, value, partition."""
        return [(k, v, p) for t, k, v, _, p in self.sent if t == FEED]


class Watch:
    """The worker's view of erased customers: the refs erased (``Kafka.erased``)."""

    def __init__(self, kafka: Kafka) -> None:
        self.kafka, self.refs = kafka, []
        self.hashes: set[str] = set()

    def start(self) -> None:
        pass

    def poll(self, timeout: float = 0.0) -> list[str]:
        new = self.kafka.erased[len(self.refs) :]
        self.refs += new
        return new

    def erased(self, ref: str) -> bool:
        return ref in self.kafka.erased


class Reader:
    """A task's reader of the reference topics."""

    def __init__(self, kafka: Kafka) -> None:
        self.kafka, self.assigned, self.next = kafka, [], {}
        kafka.readers.append(self)

    def assign(self, partitions):
        self.assigned = partitions
        self.next = {(tp.topic, tp.partition): max(tp.offset, 0) for tp in partitions}

    def _waiting(self):
        return [m for m in self.kafka.references
                if m.offset() >= self.next.get((m.topic(), m.partition()), 0)]  # fmt: skip

    def consume(self, n, timeout):
        records = self._waiting()[:n]
        for m in records:
            self.next[(m.topic(), m.partition())] = m.offset() + 1
        return records

    def get_watermark_offsets(self, tp, timeout):
        ends = [m.offset() + 1 for m in self.kafka.references
                if (m.topic(), m.partition()) == (tp.topic, tp.partition)]  # fmt: skip
        return 0, max(ends, default=0)

    def close(self):
        pass


@pytest.fixture
def kafka(monkeypatch) -> Kafka:
    kafka = Kafka()

    def send(self, topic, key, value, headers, partition=-1, delivered=None):
        if kafka.send_error is not None:
            raise kafka.send_error
        kafka.sent.append((topic, key, value, dict(headers), partition))
        self.pending += 1
        if delivered is not None:  # reported at the commit, as written: partition 0 here
            offset = kafka.ends[(topic, 0)] = kafka.ends.get((topic, 0), -1) + 1
            kafka.reports.setdefault(id(self), []).append(
                (delivered, Message(topic, 0, offset, key, value))
            )

    def commit(self, timeout, offsets=None, group=None):
        for delivered, message in kafka.reports.pop(id(self), []):
            delivered(message)
        kafka.calls.append(("commit", self.config["transactional.id"],
                            [(tp.topic, tp.partition, tp.offset) for tp in offsets or []]))  # fmt: skip
        if kafka.commit_error is not None:
            raise kafka.commit_error
        self.pending = 0

    monkeypatch.setattr(OutputProducer, "send", send)
    monkeypatch.setattr(OutputProducer, "serve", lambda self: None)
    monkeypatch.setattr(OutputProducer, "commit", commit)
    monkeypatch.setattr(
        OutputProducer, "fence",
        lambda self, timeout: kafka.calls.append(("fence", self.config["transactional.id"])),
    )  # fmt: skip
    monkeypatch.setattr(
        pipeline_module, "read_entries",
        lambda *a: kafka.calls.append(("rows", a[2])) or iter(kafka.state.get(a[2], {}).items()),
    )  # fmt: skip
    monkeypatch.setattr(
        pipeline_module, "published_entries",
        lambda *a: kafka.calls.append(("pub",)) or iter(kafka.published.items()),
    )  # fmt: skip
    monkeypatch.setattr(pipeline_module, "published_figures", lambda *a: {})  # topic empty
    monkeypatch.setattr(pipeline_module, "resume_offsets", lambda *a: {})
    monkeypatch.setattr(pipeline_module, "Consumer", lambda config: Reader(kafka))
    monkeypatch.setattr(pipeline_module, "ErasureWatch", lambda *a: Watch(kafka))
    for name, topic in (("read_records", "records"), ("read_golden", "golden"),
                        ("read_links", "links")):  # fmt: skip
        monkeypatch.setattr(pipeline_module, name,
                            lambda settings, t=topic: dict(kafka.customer_topics.get(t, {})))  # fmt: skip
    monkeypatch.setattr(pipeline_module, "read_decisions", lambda settings: Decisions())
    pipeline_module.COUNTS.clear()
    return kafka


@pytest.fixture
def left(monkeypatch) -> list[tuple[int, str]]:
    reasons: list[tuple[int, str]] = []

    def leave(status: int, reason: str) -> None:
        reasons.append((status, reason))
        raise Left(reason)

    monkeypatch.setattr(pipeline_module, "leave", leave)
    return reasons


@pytest.fixture(params=["rocksdb", "memory"])
def settings(request, tmp_path):
    """Settings for a worker without a broker, its state on disk or in memory."""

    def make(**options: Any) -> HubSettings:
        options.setdefault("worker_commit_interval", 1e-9)  # each batch committed, unless said
        return HubSettings(kafka_bootstrap="127.0.0.1:1", state_dir=tmp_path,
                           worker_store=request.param, connector_watch_interval=0, **options)  # fmt: skip

    return make


@pytest.fixture
def pipeline(kafka, left, settings) -> Pipeline:
    """A worker given partition 0 of the POS stock topic (nothing published, nothing committed)."""
    pipeline = Pipeline(settings(dlq_max_consecutive=3, dlq_window=10))
    pipeline.assign([(RAW_STOCK, 0)])
    kafka.calls.clear()
    return pipeline


def stock(op: str | None, offset: int = 0, partition: int = 0) -> Message:
    record = pick("pos_stock", "pos.stock", op)
    return Message(RAW_STOCK, partition, offset, record.key, record.value)


def test_every_routed_raw_topic_the_repairs_topic_and_the_stages_feeds_are_read(settings):
    pipeline = Pipeline(settings())
    assert {system for system, _ in pipeline.routes.values()} == {
        *load_definitions(),
        "hub-repair",
        "hub-stock",
        "hub-customers",
        "hub-customer-requests",
    }
    assert pipeline.routes["hub.stock.levels"] == ("hub-stock", "hub.dlq")
    assert pipeline.routes["hub.customer.changes"] == ("hub-customers", "hub.dlq")
    assert pipeline.partitions == 4  # the customer feed's one partition goes to task 0
    shop = {topic for topic, (system, _) in pipeline.routes.items() if system == "shop"}
    assert shop == {f"raw.shop.shop.{t}" for t in ("variant", "inventory_level", "customer",
                                                  "orders", "order_line")}  # fmt: skip
    assert all(dlq == "hub.dlq" for _, dlq in pipeline.routes.values())


def test_faust_runs_the_app_but_none_of_its_kafka_clients(settings):
    app = worker_app.create_app(settings())
    assert not app.agents
    assert not app.boot_strategy._should_enable_kafka_consumer()
    assert not app.boot_strategy._should_enable_kafka_producer()
    assert app.boot_strategy._should_enable_web()


def test_change_is_produced_to_unified_inventory(pipeline, kafka):
    pipeline.process([stock("u")], "group")
    ((topic, key, value, _),) = kafka.outputs()
    assert (topic, key) == ("unified.inventory", b"3769999999996@store:LYO01")
    assert orjson.loads(value)["on_hand"] == "9"
    assert pipeline_module.COUNTS == {"in": 1, "applied": 1}


def test_an_inventory_output_feeds_the_availability_stage_in_the_same_transaction(pipeline, kafka):
    pipeline.process([stock("u")], "group")
    ((key, value, _),) = kafka.feed()
    assert key == b"3769999999996"  # by article: every location of it meets in one partition
    assert orjson.loads(value)["key"] == "3769999999996@store:LYO01"
    assert kafka.calls == [("commit", "unified-commerce-hub-raw-p0", [(RAW_STOCK, 0, 1)])]
    pipeline.assign([(RAW_STOCK, 0), (FEED, 0)])
    kafka.sent.clear()
    pipeline.process([Message(FEED, 0, 0, key, value)], "group")
    made = {(topic, k.decode()) for topic, k, _, _ in kafka.outputs()}
    assert ("unified.availability", "3769999999996@store:LYO01") in made
    assert ("unified.availability", "3769999999996@group:stores") in made
    assert ("unified.alerts", "oversell:3769999999996@store:LYO01") not in made
    figure = next(orjson.loads(v) for t, k, v, _ in kafka.outputs()
                  if k == b"3769999999996@store:LYO01")  # fmt: skip
    assert figure["available"] == "9" and figure["explanation"][0]["source_system"] == "pos"
    assert pipeline_module.COUNTS["in"] == 2


def test_a_feed_record_of_an_unknown_location_is_dead_lettered(pipeline, kafka):
    pipeline.assign([(RAW_STOCK, 0), (FEED, 0)])
    value = orjson.dumps({"key": "3769999999996@store:NICE1", "position": "pg:1:1", "level": None})
    pipeline.process([Message(FEED, 0, 0, b"3769999999996", value)], "group")
    ((topic, key, _, headers),) = kafka.outputs()
    assert (topic, key) == ("hub.dlq", b"3769999999996")
    assert headers["hub.dlq.reason"] == b"unknown_location"


def test_feed_records_of_a_batch_are_applied_together_and_the_bad_ones_dead_lettered(
    pipeline, kafka
):
    pipeline.assign([(RAW_STOCK, 0), (FEED, 0)])
    gtin = "3769999999996"

    def level(on_hand: int, at: int) -> bytes:
        """The feed record of LYO01's level at position ``at``."""
        at_position = f"pg:{at:016x}:{at:016x}"
        record = InventoryLevel(
            gtin=gtin, source_article_id=gtin, location_id="store:LYO01", location_type="store",
            on_hand=Decimal(on_hand), unit="PCE", source_system="pos", source_table="pos.stock",
            source_position=at_position, source_op="u", source_committed_at=NOW, emitted_at=NOW,
        )  # fmt: skip
        return feed_record(Upsert.of("unified.inventory", record, record.key, at_position))[1]

    first, second = level(7, 1), level(4, 2)
    unknown = orjson.dumps({"key": f"{gtin}@store:NICE1", "position": "pg:1:1", "level": None})
    kafka.sent.clear()
    before = dict(pipeline_module.COUNTS)
    batch = [first, b"not json", second, unknown, first]
    pipeline.process([Message(FEED, 0, n, gtin.encode(), v) for n, v in enumerate(batch)], "g")
    figures = [(k.decode(), orjson.loads(v)) for t, k, v, _ in kafka.outputs()
               if t == "unified.availability"]  # fmt: skip
    # Coalesced: each figure once, from the latest level, the latest change as its cause.
    keys = [k for k, _ in figures]
    assert f"{gtin}@group:stores" in keys and len(keys) == len(set(keys))
    assert dict(figures)[f"{gtin}@store:LYO01"]["available"] == "4"
    assert {f["source_position"] for _, f in figures} == {f"pg:{2:016x}:{2:016x}"}
    letters = [(k, h["hub.dlq.reason"], h["hub.dlq.offset"]) for t, k, _, h in kafka.outputs()
               if t == "hub.dlq"]  # fmt: skip
    assert sorted(letters, key=lambda letter: letter[2]) == [
        (gtin.encode(), b"invalid_record", b"1"), (gtin.encode(), b"unknown_location", b"3"),
    ]  # fmt: skip
    # the first level again, after the second
    assert pipeline_module.COUNTS["duplicate"] - before.get("duplicate", 0) == 1
    assert kafka.calls[-1] == ("commit", "unified-commerce-hub-raw-p0", [(FEED, 0, 5)])


def test_a_committed_level_is_applied_at_once_by_the_task_holding_its_feed_partition(
    pipeline, kafka
):
    pipeline.assign([(RAW_STOCK, 0), (FEED, 0)])
    kafka.calls.clear()
    pipeline.process([stock("u")], "group")
    # One commit for the level (and its feed record), then one for the figures it made.
    assert [call[0] for call in kafka.calls] == ["commit", "commit"]
    assert kafka.calls[1][2] == []  # the feed record is not consumed yet: no offset moves
    made = [(t, k.decode()) for t, k, _, _ in kafka.outputs()]
    inventory = made.index(("unified.inventory", "3769999999996@store:LYO01"))
    figure = made.index(("unified.availability", "3769999999996@store:LYO01"))
    assert inventory < figure
    ((_, value, _),) = kafka.feed()
    # Fetched later, the same record is skipped; its offset is committed then.
    kafka.sent.clear()
    kafka.calls.clear()
    pipeline.process([Message(FEED, 0, 0, b"3769999999996", value)], "group")
    assert kafka.outputs() == []
    assert kafka.calls == [("commit", "unified-commerce-hub-raw-p0", [(FEED, 0, 1)])]
    assert pipeline.applied == set()


def test_behind_the_figures_of_a_commit_wait_for_the_next_one(pipeline, kafka, monkeypatch):
    monkeypatch.setattr(pipeline_module, "BUSY", 2)  # a batch of two is a large one here
    pipeline.assign([(RAW_STOCK, 0), (FEED, 0)])
    kafka.calls.clear()
    pipeline.process([stock("c", 0), stock("u", 1)], "group")
    assert [call[0] for call in kafka.calls] == ["commit"]  # one commit per interval, not two
    assert ("unified.availability", b"3769999999996@store:LYO01") in {
        (t, k) for t, k, _, _ in kafka.outputs()
    }  # made already, in the open transaction
    pipeline.process([], "group")  # the next commit takes them
    assert [call[0] for call in kafka.calls] == ["commit", "commit"]


def erp_customer(op: str | None, offset: int = 0) -> Message:
    record = pick("erp_customer", "erp.CUST_MAST", op)
    return Message(RAW_ERP_CUSTOMER, 0, offset, record.key, record.value)


def test_a_customer_record_feeds_the_identity_stage_and_its_golden_customer_follows_one_commit_on(
    pipeline, kafka
):
    pipeline.assign([(RAW_ERP_CUSTOMER, 0), (CUSTOMER_FEED, 0), (REQUESTS, 0)])
    kafka.calls.clear()
    pipeline.process([erp_customer("c")], "group")
    ((key, value, _),) = [(k, v, p) for t, k, v, _, p in kafka.sent if t == CUSTOMER_FEED]
    assert key == b"erp:990001" and orjson.loads(value)["record"]["family_name"] == "Le Gall"
    assert [call[0] for call in kafka.calls] == ["commit", "commit"]  # the record, then its golden
    made = {t: (k.decode(), orjson.loads(v)) for t, k, v, _ in kafka.outputs()}
    gid, golden = made["unified.customer"]
    assert golden["members"] == ["erp:990001"] and gid.startswith("g-")
    assert golden["fields"]["email"]["value"] == "anne-sophie.legall@example.fr"
    assert made["unified.customer.links"] == ("erp:990001", {
        "schema_version": 1, "ref": "erp:990001", "golden_id": gid,
        "emitted_at": made["unified.customer.links"][1]["emitted_at"]})  # fmt: skip
    # Fetched later, the same feed record is skipped; its offset is committed then.
    kafka.sent.clear()
    pipeline.process([Message(CUSTOMER_FEED, 0, 0, key, value)], "group")
    assert kafka.outputs() == []


def test_a_new_worker_group_seeds_its_customers_from_the_topics_and_publishes_none_again(
    kafka, left, settings
):
    first = Pipeline(settings())
    first.assign([(RAW_ERP_CUSTOMER, 0), (CUSTOMER_FEED, 0), (REQUESTS, 0)])
    first.process([erp_customer("c")], "group")
    made = {t: {k.decode(): orjson.loads(v)} for t, k, v, _ in kafka.outputs() if v is not None}
    record = next(orjson.loads(v) for t, k, v, _, _ in kafka.sent
                  if t == "unified.customer.records")  # fmt: skip
    kafka.customer_topics = {
        "records": {"erp:990001": record}, "golden": made["unified.customer"],
        "links": {"erp:990001": made["unified.customer.links"]["erp:990001"]["golden_id"]},
    }  # fmt: skip
    kafka.sent.clear()
    other = Pipeline(settings(worker_id="another-group"))
    other.assign([(RAW_ERP_CUSTOMER, 0), (CUSTOMER_FEED, 0), (REQUESTS, 0)])
    task = other.tasks[0]
    assert not task.identity.fresh()
    assert [t for t, _, _, _ in kafka.outputs()] == []
    # The feed read from its start: the record is a replay for the seeded state.
    change = task.identity.apply("erp:990001", record, record["source_position"], NOW)
    assert change.skipped == "duplicate"


def test_a_manual_decision_is_applied_and_a_bad_one_dead_lettered(pipeline, kafka):
    from hub.core.golden import request_record
    from hub.core.identity import Decision

    pipeline.assign([(RAW_ERP_CUSTOMER, 0), (CUSTOMER_FEED, 0), (REQUESTS, 0)])
    pipeline.process([erp_customer("c")], "group")
    other = orjson.dumps({"key": "shop:5", "position": "pg:1", "committed_at": None,
                          "record": {"given_name": "Anne", "family_name": "Martin"}})  # fmt: skip
    pipeline.process([Message(CUSTOMER_FEED, 0, 1, b"shop:5", other)], "group")
    kafka.sent.clear()
    key, value = request_record(Decision("link", "shop:5", "erp:990001", "ops", "same card", "t1"))
    batch = [Message(REQUESTS, 0, 0, key, value), Message(REQUESTS, 0, 1, b"x", b'{"kind": "x"}')]
    pipeline.process(batch, "group")
    made = [(t, orjson.loads(v)) for t, k, v, _ in kafka.outputs() if v is not None]
    [golden] = [v for t, v in made if t == "unified.customer"]
    assert golden["members"] == ["erp:990001", "shop:5"]
    assert golden["links"][0]["rule"] == "manual-link"
    [letter] = [h for t, _, _, h in kafka.outputs() if t == "hub.dlq"]
    assert letter["hub.dlq.reason"] == b"invalid_request"


def test_an_erasure_is_applied_and_the_erased_customers_later_changes_are_not_published(
    pipeline, kafka
):
    from hub.core.golden import Erasure, erasure_record

    pipeline.assign([(RAW_ERP_CUSTOMER, 0), (CUSTOMER_FEED, 0), (REQUESTS, 0)])
    pipeline.process([erp_customer("c")], "group")
    kafka.sent.clear()
    key, value = erasure_record(Erasure("erp:990001", "dpo", "GDPR request", "t2"))
    pipeline.process([Message(REQUESTS, 0, 0, key, value)], "group")
    dead = {(t, k) for t, k, v, _ in kafka.outputs() if v is None}
    assert {("unified.customer.records", b"erp:990001"), ("unified.customer.links", b"erp:990001"),
            (REQUESTS, key)} <= dead  # the request named them: tombstoned too  # fmt: skip
    [event] = [
        orjson.loads(v) for t, _, v, _ in kafka.outputs() if t == "unified.customer.erasures"
    ]
    assert event["records"] == ["erp:990001"]
    kafka.erased.append("erp:990001")  # as every worker reads it from hub.customer.erased
    kafka.sent.clear()
    pipeline.process([erp_customer("u", 1)], "group")  # the source row changes again
    assert [t for t, _, _, _ in kafka.outputs()] == []
    assert pipeline_module.COUNTS["erased"] == 1
    pipeline.process([Message(REQUESTS, 0, 1, key, None)], "group")  # its tombstone, read back
    assert kafka.outputs() == []


def test_every_task_forgets_the_rows_of_a_customer_erased_meanwhile(kafka, left, settings):
    pipeline = Pipeline(settings())
    pipeline.assign([(RAW_ERP_CUSTOMER, 0), (RAW_ERP_CUSTOMER, 1)])
    forgotten: list[tuple[int, str]] = []
    for number, task in pipeline.tasks.items():
        task.engine.forget = lambda ref, n=number: forgotten.append((n, ref)) or 0  # type: ignore[method-assign]
    kafka.erased.append("shop:7")
    pipeline.process([], "group")
    assert sorted(forgotten) == [(0, "shop:7"), (1, "shop:7")]


def test_a_level_whose_feed_partition_another_worker_holds_waits_for_it(pipeline, kafka):
    pipeline.process([stock("u")], "group")  # the feed's partition 0 is not held here
    assert [call[0] for call in kafka.calls] == ["commit"]
    assert not [k for t, k, _, _ in kafka.outputs() if t == "unified.availability"]
    assert pipeline.applied == set()


def test_a_batch_is_one_transaction_per_partition_number_with_its_next_offsets(pipeline, kafka):
    pipeline.process([stock("c", 0), stock("u", 1), stock("d", 2)], "group")
    assert kafka.calls == [("commit", "unified-commerce-hub-raw-p0", [(RAW_STOCK, 0, 3)])]
    assert [value is None for _, _, value, _ in kafka.outputs()] == [False, False, True]


def committing_every(seconds: float, settings: Any, kafka: Kafka, **options: Any) -> Pipeline:
    """A worker given partition 0 of the POS stock topic, committing every ``seconds``."""
    pipeline = Pipeline(settings(worker_commit_interval=seconds, **options))
    pipeline.assign([(RAW_STOCK, 0)])
    kafka.calls.clear()
    return pipeline


def test_batches_go_out_at_once_and_are_committed_together_once_the_interval_is_over(
    kafka, left, settings, monkeypatch
):
    clock = [100.0]
    monkeypatch.setattr(pipeline_module.time, "monotonic", lambda: clock[0])
    pipeline = committing_every(0.1, settings, kafka)
    pipeline.process([stock("c", 0)], "group")
    clock[0] += 0.05
    pipeline.process([stock("u", 1)], "group")
    assert len(kafka.outputs()) == 2 and kafka.calls == []  # out at once, not committed yet
    clock[0] += 0.06
    pipeline.process([stock("u", 2)], "group")
    assert kafka.calls == [("commit", "unified-commerce-hub-raw-p0", [(RAW_STOCK, 0, 3)])]


def test_a_quiet_moment_commits_what_was_handled(kafka, left, settings):
    pipeline = committing_every(5.0, settings, kafka)
    pipeline.process([stock("c", 0), stock("u", 1)], "group")
    assert kafka.calls == []
    pipeline.process([], "group")
    assert kafka.calls == [("commit", "unified-commerce-hub-raw-p0", [(RAW_STOCK, 0, 2)])]
    pipeline.process([], "group")
    assert len(kafka.calls) == 1  # nothing more to commit


def test_partitions_taken_back_are_committed_first_partitions_lost_never_are(kafka, left, settings):
    pipeline = committing_every(5.0, settings, kafka)
    pipeline.process([stock("c", 0)], "group")
    pipeline.revoke()
    assert kafka.calls == [("commit", "unified-commerce-hub-raw-p0", [(RAW_STOCK, 0, 1)])]
    pipeline.assign([(RAW_STOCK, 0)])
    kafka.calls.clear()
    pipeline.process([stock("u", 1)], "group")
    pipeline.lose()  # someone else may hold it already: its transaction is theirs to abort
    pipeline.process([], "group")
    assert kafka.calls == []


def test_commit_pending_commits_what_was_handled_as_the_stopping_loop_asks(kafka, left, settings):
    pipeline = committing_every(5.0, settings, kafka)
    pipeline.process([stock("c", 0)], "group")
    pipeline.commit_pending()
    assert kafka.calls == [("commit", "unified-commerce-hub-raw-p0", [(RAW_STOCK, 0, 1)])]


def test_delete_is_produced_as_tombstone(pipeline, kafka):
    pipeline.process([stock("d")], "group")
    ((topic, key, value, headers),) = kafka.outputs()
    assert (topic, key, value) == ("unified.inventory", b"3769999999996@store:LYO01", None)
    # Even a tombstone says which source position it stands for (read back after a crash).
    assert headers["hub.source_position"].startswith(b"pg:")


def test_debezium_tombstone_produces_nothing(pipeline, kafka):
    pipeline.process([Message(RAW_STOCK, 0, 0, stock(None).key(), None)], "group")
    assert kafka.outputs() == []
    assert pipeline_module.COUNTS == {"in": 1, "skipped": 1}
    assert kafka.calls[-1][2] == [(RAW_STOCK, 0, 1)]  # its offset is committed all the same


def test_bad_event_goes_to_dlq_unchanged_with_provenance(pipeline, kafka):
    key = stock("u").key()
    pipeline.process([Message(RAW_STOCK, 0, 0, key, b"{not json")], "group")
    ((topic, out_key, out_value, headers),) = kafka.outputs()
    assert (topic, out_key, out_value) == ("hub.dlq", key, b"{not json")
    assert headers["hub.dlq.topic"] == RAW_STOCK.encode()
    assert headers["hub.dlq.reason"] == b"malformed_json"
    assert headers["hub.dlq.step"] == b"normalise"
    assert headers["hub.dlq.offset"] == b"0" and headers["hub.dlq.partition"] == b"0"
    assert pipeline_module.COUNTS["dead_lettered"] == 1


def test_pipeline_goes_on_after_a_bad_event(pipeline, kafka):
    pipeline.process([Message(RAW_STOCK, 0, 0, b"{}", b"[]"), stock("c", 1)], "group")
    assert [s[0] for s in kafka.outputs()] == ["hub.dlq", "unified.inventory"]


def test_flood_of_bad_events_stops_the_worker_once_its_letters_are_committed(pipeline, kafka, left):
    garbage = [Message(RAW_STOCK, 0, n, b"k", b"garbage") for n in range(5)]
    with pytest.raises(Left):
        pipeline.process(garbage, "group")
    ((status, reason),) = left
    assert status == 1 and "3 invalid events in a row" in reason
    assert len(kafka.outputs()) == 3  # every bad event judged reached the DLQ before the stop
    # ... committed without the input offsets: the next worker judges them again.
    assert kafka.calls == [("commit", "unified-commerce-hub-raw-p0", [])]


def test_a_flood_commits_the_batches_before_it_with_their_offsets(kafka, left, settings):
    pipeline = committing_every(5.0, settings, kafka, dlq_max_consecutive=3)
    pipeline.process([stock("c", 0)], "group")
    with pytest.raises(Left):
        pipeline.process([Message(RAW_STOCK, 0, n, b"k", b"garbage") for n in range(1, 6)], "group")
    assert kafka.calls == [("commit", "unified-commerce-hub-raw-p0", [(RAW_STOCK, 0, 1)])]


def test_an_output_the_producer_refuses_stops_the_worker_instead_of_dead_lettering(
    pipeline, kafka, left
):
    kafka.send_error = BufferError("local queue full for good")
    with pytest.raises(Left):
        pipeline.process([stock("u", 4)], "group")
    ((status, reason),) = left
    assert status == 1
    assert reason.startswith(f"cannot produce for {RAW_STOCK}[0]@4, stopping: BufferError")
    # Not the input's fault: it will be processed again, not dead-lettered; nothing committed.
    assert pipeline_module.COUNTS["dead_lettered"] == 0 and kafka.calls == []


@pytest.mark.parametrize(
    ("error", "says"),
    [(Fenced("another worker took the raw topics over"), "this worker was replaced"),
     (TransactionFailed("Broker: timed out"), "transaction aborted, nothing of it is visible"),
     (RuntimeError("anything else"), "cannot commit the output transaction")],
)  # fmt: skip
def test_a_transaction_that_cannot_commit_makes_the_worker_leave_before_its_offsets(
    pipeline, kafka, left, error, says
):
    kafka.commit_error = error
    with pytest.raises(Left):
        pipeline.process([stock("u")], "group")
    ((status, reason),) = left
    assert status == EXIT_RESTART and says in reason


def test_a_number_kept_through_a_rebalance_reads_nothing_back_a_number_regained_does(
    pipeline, kafka, monkeypatch
):
    from hub.worker import metrics

    assert metrics.ACTIVE._value.get() == 1
    pipeline.process([stock("u", 0)], "group")
    kafka.calls.clear()
    monkeypatch.setattr(pipeline_module, "resume_offsets", lambda *a: {(RAW_STOCK, 0): 1})
    pipeline.revoke()
    pipeline.assign([(RAW_STOCK, 0)])
    assert kafka.calls == []  # kept: what it knows is still what was committed
    pipeline.revoke()
    pipeline.assign([])  # a standby for a while
    assert metrics.ACTIVE._value.get() == 0 and not pipeline.tasks
    pipeline.revoke()
    pipeline.assign([(RAW_STOCK, 0)])  # another worker may have published meanwhile
    assert kafka.calls == [("fence", "unified-commerce-hub-raw-p0"), ("rows", 0), ("pub",)]
    assert metrics.ACTIVE._value.get() == 1


def test_a_number_someone_else_moved_on_meanwhile_is_taken_over_again(pipeline, kafka, monkeypatch):
    pipeline.process([stock("u", 0)], "group")  # this worker would resume at 1
    kafka.calls.clear()
    monkeypatch.setattr(pipeline_module, "resume_offsets", lambda *a: {(RAW_STOCK, 0): 7})
    pipeline.revoke()
    pipeline.assign([(RAW_STOCK, 0)])
    assert kafka.calls == [("fence", "unified-commerce-hub-raw-p0"), ("rows", 0), ("pub",)]


def test_a_worker_out_of_the_group_drops_what_it_held(pipeline, kafka):
    pipeline.lose()
    pipeline.assign([(RAW_STOCK, 0)])
    assert [call[0] for call in kafka.calls] == ["fence", "rows", "pub"]


def test_each_partition_number_is_a_task_with_its_own_transactional_id(kafka, left, settings):
    pipeline = Pipeline(settings())
    pipeline.assign([(RAW_STOCK, 1), (RAW_STOCK, 0), ("raw.pos.pos.ticket", 1)])
    # Every number fenced before any state is read back; the published marks are read once.
    assert kafka.calls == [
        ("fence", "unified-commerce-hub-raw-p0"), ("fence", "unified-commerce-hub-raw-p1"),
        ("rows", 0), ("rows", 1), ("pub",),
    ]  # fmt: skip
    kafka.calls.clear()
    pipeline.process([stock("c", 0, partition=1), stock("u", 0, partition=0)], "group")
    assert sorted(kafka.calls) == [
        ("commit", "unified-commerce-hub-raw-p0", [(RAW_STOCK, 0, 1)]),
        ("commit", "unified-commerce-hub-raw-p1", [(RAW_STOCK, 1, 1)]),
    ]
    changelog = {partition for topic, _, _, _, partition in kafka.sent if topic == CHANGELOG}
    assert changelog <= {0, 1}


def test_records_skipped_after_a_rebalance_make_the_worker_start_afresh(
    pipeline, kafka, left, monkeypatch
):
    monkeypatch.setattr(pipeline_module, "resume_offsets", lambda *a: {(RAW_STOCK, 0): 0})
    pipeline.lose()
    pipeline.assign([(RAW_STOCK, 0)])
    with pytest.raises(Left):
        pipeline.process([stock("u", 0), stock("u", 5)], "group")
    assert left == [(EXIT_RESTART, f"{RAW_STOCK}[0]: got offset 5, expected 1: 4 records were "
                                   "skipped; starting afresh to read them again")]  # fmt: skip
    assert len(kafka.outputs()) == 1  # the record after the gap was not processed
    assert not [call for call in kafka.calls if call[0] == "commit"]  # nor any offset committed


def test_records_of_a_partition_the_worker_no_longer_holds_are_left_alone(pipeline, kafka):
    pipeline.process([stock("u", 0, partition=1)], "group")
    assert kafka.outputs() == [] and kafka.calls == []
    assert pipeline_module.COUNTS["in"] == 0


def test_an_assignment_that_cannot_be_taken_over_starts_the_worker_afresh(
    pipeline, left, monkeypatch
):
    def unreadable(*args):
        raise RuntimeError("Kafka stopped answering with 3 partitions still unread")

    monkeypatch.setattr(pipeline_module, "read_entries", unreadable)
    pipeline.lose()
    with pytest.raises(Left):
        pipeline.assign([(RAW_STOCK, 0)])
    ((status, reason),) = left
    assert status == EXIT_RESTART and "could not take the assignment over" in reason


def test_raw_topics_shared_out_by_the_group_must_agree_on_their_partition_count(
    tmp_path, monkeypatch, settings
):
    import yaml

    from hub.errors import RegistryError
    from hub.settings import REPO_ROOT
    from hub.topics import load_registry

    document = yaml.safe_load((REPO_ROOT / "schemas" / "topics.yaml").read_text())
    document["topics"]["raw.pos.stock"]["partitions"] = 3
    document["topics"]["raw.shop.variant"]["partitions"] = 2  # a reference topic: free
    path = tmp_path / "topics.yaml"
    path.write_text(yaml.safe_dump(document))
    monkeypatch.setattr(pipeline_module, "registry", lambda: load_registry(path))
    with pytest.raises(RegistryError, match=r"declare \[3, 4\]"):
        Pipeline(settings())
    document["topics"]["raw.pos.stock"]["partitions"] = 4
    path.write_text(yaml.safe_dump(document))
    assert Pipeline(settings()).partitions == 4


VARIANT = "raw.shop.shop.variant"
LEVEL = "raw.shop.shop.inventory_level"


def variant(offset: int = 0) -> Message:
    record = pick("shop_web_stock", "shop.variant", "c")
    return Message(VARIANT, 0, offset, record.key, record.value)


def test_a_task_taken_over_reads_the_reference_topics_to_their_end_first(pipeline, kafka):
    pipeline.lose()
    kafka.references = [variant(0)]
    pipeline.assign([(RAW_STOCK, 0), (LEVEL, 0)])
    # The variant was applied and its offset saved with the state, in a transaction of its own.
    assert pipeline.tasks[0].rows.get(f"refpos:{VARIANT}:0") == {"next": 1}
    assert kafka.calls[-1] == ("commit", "unified-commerce-hub-raw-p0", [])
    level = pick("shop_web_stock", "shop.inventory_level", "c")
    pipeline.process([Message(LEVEL, 0, 0, level.key, level.value)], "group")
    ((topic, _, value, _),) = kafka.outputs()  # its variant is known: published at once
    assert topic == "unified.inventory" and orjson.loads(value)["location_type"] == "web"


def test_the_reference_topics_are_read_on_from_where_the_state_had_them(pipeline, kafka):
    pipeline.lose()
    kafka.state[0] = {f"refpos:{VARIANT}:0": {"next": 5}}
    pipeline.assign([(RAW_STOCK, 0)])
    starts = {(tp.topic, tp.partition): tp.offset for tp in kafka.readers[-1].assigned}
    assert starts[(VARIANT, 0)] == 5
    assert starts[("raw.erp.erp.ART_MASTER", 0)] < 0  # never read: from the beginning


def test_every_task_applies_each_reference_change_to_its_own_rows(kafka, left, settings):
    pipeline = Pipeline(settings())
    pipeline.assign([(RAW_STOCK, 0), (RAW_STOCK, 1)])
    assert RAW_STOCK in pipeline.input_names and VARIANT not in pipeline.input_names
    kafka.calls.clear()
    kafka.references = [variant(0)]
    pipeline.process([], "group")  # a quiet moment: only reference news
    assert sorted(kafka.calls) == [("commit", "unified-commerce-hub-raw-p0", []),
                                   ("commit", "unified-commerce-hub-raw-p1", [])]  # fmt: skip
    stored = row_ref("shop", "shop.variant", orjson.loads(variant().key()))
    for task in pipeline.tasks.values():
        assert task.rows.get(f"refpos:{VARIANT}:0") == {"next": 1}
        assert task.rows.get(stored) is not None


def test_a_task_whose_state_read_the_references_to_their_end_waits_for_nothing(
    pipeline, kafka, left
):
    pipeline.lose()
    kafka.references = [variant(0)]
    kafka.state[0] = {f"refpos:{VARIANT}:0": {"next": 1}}
    pipeline.assign([(RAW_STOCK, 0)])
    assert left == [] and 0 in pipeline.tasks
    assert not [call for call in kafka.calls if call[0] == "commit"]  # nothing applied again


def test_a_task_that_saw_nothing_of_a_system_judges_its_changes_by_what_the_others_saw(
    kafka, left, settings
):
    pipeline = Pipeline(settings())
    pipeline.assign([(RAW_STOCK, 0), (RAW_STOCK, 1)])
    pipeline.process([stock("c", 0, partition=0)], "group")  # task 0 sees the POS
    envelope = orjson.loads(stock("u").value())
    envelope["source"]["lsn"] += 100 << 30  # 100 GiB of WAL ahead: no POS wrote that
    forged = Message(RAW_STOCK, 1, 0, stock("u").key(), orjson.dumps(envelope))
    pipeline.process([forged], "group")  # on partition 1, whose task never saw the POS
    ((_, _, _, headers),) = [o for o in kafka.outputs() if o[0] == "hub.dlq"]
    assert headers["hub.dlq.reason"] == b"implausible_position"
    # The frontier is saved with the state of the task that moved it.
    assert pipeline.tasks[0].rows.get("frontier:pos") is not None
