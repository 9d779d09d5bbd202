"""The Faust adapter around the engine, without a broker (agent test context, sends recorded)."""

from __future__ import annotations

import asyncio
from unittest.mock import AsyncMock

import orjson
import pytest
from faust.topics import Topic
from faust.types import TP

from hub.connectors import load_definitions
from hub.core.engine import MemoryStore
from hub.settings import HubSettings
from hub.worker import app as worker_app
from hub.worker import pipeline as pipeline_module
from hub.worker.continuity import EXIT_RESTART
from hub.worker.output import Fenced, OutputProducer, TransactionFailed
from hub.worker.transactions import Transactions
from tests.conftest import pick

Sent = list[tuple[str, bytes, bytes | None, dict[str, bytes]]]
RAW_STOCK = "raw.pos.pos.stock"


@pytest.fixture
def sent(monkeypatch) -> Sent:
    """(topic, key, value, headers) of every record the agent sends, in order."""
    records: Sent = []

    async def fake_send(self, *, key=None, value=None, headers=None, **_):
        records.append((self.get_topic_name(), key, value, dict(headers or [])))
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def fake_output(self, topic, key, value, headers):
        if topic.endswith("-engine-rows-changelog"):
            return  # the engine's row changes: not what these tests look at
        records.append((topic, key, value, dict(headers)))

    monkeypatch.setattr(Topic, "send", fake_send)  # Faust's own sends (none expected)
    monkeypatch.setattr(OutputProducer, "send", fake_output)  # unified topics, DLQ
    pipeline_module.COUNTS.clear()
    return records


@pytest.fixture
def transactions(monkeypatch) -> list[str]:
    """The transactional calls the worker makes (no broker here)."""
    calls: list[str] = []
    monkeypatch.setattr(OutputProducer, "fence", lambda self, timeout: calls.append("fence"))
    monkeypatch.setattr(OutputProducer, "commit", lambda self, timeout: calls.append("commit"))
    monkeypatch.setattr(OutputProducer, "abort", lambda self, timeout: calls.append("abort"))
    return calls


@pytest.fixture
async def agent(monkeypatch, transactions):
    settings = HubSettings(dlq_max_consecutive=3, dlq_window=10, kafka_bootstrap="127.0.0.1:1",
                           connector_watch_interval=0)  # fmt: skip
    app = worker_app.create_app(settings)
    app.loop = asyncio.get_running_loop()
    app.finalize()
    app.flow_control.resume()
    app.crash = AsyncMock()
    # The worker is given the POS stock partition (nothing published yet, no committed offset).
    monkeypatch.setattr(pipeline_module, "read_published", lambda bootstrap: MemoryStore())
    monkeypatch.setattr(pipeline_module, "read_rows", lambda bootstrap, worker_id: MemoryStore())
    monkeypatch.setattr(pipeline_module, "resume_offsets", lambda *args: {})
    await app.on_partitions_assigned.send({TP(RAW_STOCK, 0)})
    agent = app.agents["normalise-pos"]
    async with agent.test_context() as ctx:
        ctx.app = app
        # The agent reads several raw topics: say which one each test record comes from.
        ctx._get_strtopic = lambda channel: RAW_STOCK
        yield ctx


def test_one_agent_per_system_reading_its_routed_raw_topics():
    app = worker_app.create_app(HubSettings(kafka_bootstrap="127.0.0.1:1"))
    assert set(app.agents) == {
        f"normalise-{system}" for system in [*load_definitions(), "hub-repair"]
    }
    topics = app.agents["normalise-shop"].channel.topics
    assert set(topics) == {f"raw.shop.shop.{t}" for t in ("variant", "inventory_level", "customer",
                                                         "orders", "order_line")}  # fmt: skip


async def test_change_is_produced_to_unified_inventory(agent, sent):
    record = pick("pos_stock", "pos.stock", "u")
    await agent.put(record.value, key=record.key)
    ((topic, out_key, out_value, _),) = sent
    assert topic == "unified.inventory"
    assert out_key == b"3769999999996@store:LYO01"
    assert orjson.loads(out_value)["on_hand"] == "9"
    assert pipeline_module.COUNTS == {"in": 1, "applied": 1}


async def test_delete_is_produced_as_tombstone(agent, sent):
    record = pick("pos_stock", "pos.stock", "d")
    await agent.put(record.value, key=record.key)
    ((topic, key, value, headers),) = sent
    assert (topic, key, value) == ("unified.inventory", b"3769999999996@store:LYO01", None)
    # Even a tombstone says which source position it stands for (read back after a crash).
    assert headers["hub.source_position"].startswith(b"pg:")


async def test_debezium_tombstone_produces_nothing(agent, sent):
    record = pick("pos_stock", "pos.stock", None)
    await agent.put(None, key=record.key)
    assert sent == []
    assert pipeline_module.COUNTS == {"in": 1, "skipped": 1}


async def test_bad_event_goes_to_dlq_unchanged_with_provenance(agent, sent):
    key = pick("pos_stock", "pos.stock", "u").key
    await agent.put(b"{not json", key=key)
    ((topic, out_key, out_value, headers),) = sent
    assert (topic, out_key, out_value) == ("hub.dlq", key, b"{not json")
    assert headers["hub.dlq.topic"] == RAW_STOCK.encode()
    assert headers["hub.dlq.reason"] == b"malformed_json"
    assert headers["hub.dlq.step"] == b"normalise"
    assert "hub.dlq.offset" in headers and "hub.dlq.partition" in headers
    assert pipeline_module.COUNTS["dead_lettered"] == 1


async def test_pipeline_goes_on_after_a_bad_event(agent, sent):
    await agent.put(b"[]", key=b"{}")
    record = pick("pos_stock", "pos.stock", "c")
    await agent.put(record.value, key=record.key)
    assert [s[0] for s in sent] == ["hub.dlq", "unified.inventory"]


async def test_flood_of_bad_events_stops_the_worker(agent, sent, monkeypatch):
    left: list[tuple[int, str]] = []
    monkeypatch.setattr(worker_app, "leave", lambda status, reason: left.append((status, reason)))
    for _ in range(2):
        await agent.put(b"garbage", key=b"k")
    assert left == []
    await agent.put(b"garbage", key=b"k", wait=False)  # the agent stops: nothing will answer
    for _ in range(100):
        if left:
            break
        await asyncio.sleep(0.02)
    ((status, reason),) = left
    assert status == 1 and "3 invalid events in a row" in reason
    assert len(sent) == 3  # every bad event reached the DLQ before the stop


async def test_an_output_the_producer_refuses_stops_the_worker_instead_of_dead_lettering(
    agent, sent, monkeypatch
):
    def refuse(self, topic, key, value, headers):
        raise BufferError("local queue full for good")

    monkeypatch.setattr(OutputProducer, "send", refuse)
    left: list[tuple[int, str]] = []
    monkeypatch.setattr(worker_app, "leave", lambda status, reason: left.append((status, reason)))
    record = pick("pos_stock", "pos.stock", "u")
    await agent.put(record.value, key=record.key, wait=False)
    for _ in range(100):
        if left:
            break
        await asyncio.sleep(0.02)
    ((status, reason),) = left
    assert status == 1
    assert reason.startswith(f"cannot produce for {RAW_STOCK}[0]@0, stopping: BufferError")
    # Not the input's fault: it will be processed again, not dead-lettered.
    assert pipeline_module.COUNTS["dead_lettered"] == 0


async def test_being_given_the_raw_topics_reads_the_published_state_back(agent, monkeypatch):
    from hub.worker import metrics

    reads: list[int] = []

    def read_published(settings):
        reads.append(1)
        return MemoryStore({"out:unified.inventory:k": {"pos": "pg:9:9", "hash": "h"}})

    monkeypatch.setattr(pipeline_module, "read_published", read_published)
    signal = agent.app.on_partitions_assigned
    assert metrics.ACTIVE._value.get() == 1  # the fixture gave it the stock partition
    await signal.send({TP(RAW_STOCK, 0), TP("hub-engine-rows-changelog", 0)})
    assert reads == []  # kept, not gained: what it knows it published is still true
    await signal.send({TP("hub-engine-rows-changelog", 0)})  # a standby now
    assert metrics.ACTIVE._value.get() == 0
    await signal.send({TP(RAW_STOCK, 0)})  # taken over: another worker may have published since
    assert reads == [1]
    assert metrics.ACTIVE._value.get() == 1


async def test_records_skipped_after_a_rebalance_make_the_worker_start_afresh(
    agent, sent, monkeypatch
):
    left: list[tuple[int, str]] = []
    monkeypatch.setattr(worker_app, "leave", lambda status, reason: left.append((status, reason)))
    # The group committed offset 0 and the test context numbers records 0, 1, 2…; then records 1-4
    # vanish (the next record the agent sees is 5).
    monkeypatch.setattr(pipeline_module, "resume_offsets", lambda *a: {(RAW_STOCK, 0): 0})
    await agent.app.on_partitions_assigned.send({TP(RAW_STOCK, 0)})
    record = pick("pos_stock", "pos.stock", "u")
    await agent.put(record.value, key=record.key, partition=0)
    agent.sent_offset = 5
    await agent.put(record.value, key=record.key, partition=0, wait=False)
    for _ in range(100):
        if left:
            break
        await asyncio.sleep(0.02)
    assert left == [(EXIT_RESTART, f"{RAW_STOCK}[0]: got offset 5, expected 1: 4 records were "
                                   "skipped; starting afresh to read them again")]  # fmt: skip
    assert len(sent) == 1  # the record after the gap was not processed


async def test_records_of_a_partition_the_worker_no_longer_holds_are_left_alone(agent, sent):
    await agent.app.on_partitions_assigned.send({TP(RAW_STOCK, 1)})
    record = pick("pos_stock", "pos.stock", "u")
    await agent.put(record.value, key=record.key, partition=0, wait=False)
    await agent.put(record.value, key=record.key, partition=1)
    assert len(sent) == 1
    assert pipeline_module.COUNTS["in"] == 1


class FakeProducer:
    """An ``OutputProducer`` stand-in: ``commit`` raises what it is told to."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error, self.pending, self.calls = error, 0, []
        self.deferring = False

    def send_deferred(self):
        self.calls.append(("send_deferred",))

    def use(self, transactional_id):
        self.calls.append(("use", transactional_id))

    def fence(self, timeout):
        self.calls.append(("fence",))

    def commit(self, timeout):
        self.calls.append(("commit", self.pending))
        if self.error:
            raise self.error
        self.pending = 0


@pytest.mark.parametrize(
    ("error", "says"),
    [(Fenced("another worker took the raw topics over"), "this worker was replaced"),
     (TransactionFailed("Broker: timed out"), "transaction aborted, nothing of it is visible"),
     (RuntimeError("anything else"), "cannot commit the output transaction")],
)  # fmt: skip
async def test_a_transaction_that_cannot_commit_makes_the_worker_leave_before_its_offsets(
    error, says
):
    left: list[tuple[int, str]] = []
    producer = FakeProducer(error)
    txn = Transactions(producer, "g", 0.1, lambda status, reason: left.append((status, reason)))
    await txn.take([0])
    assert producer.calls == [("use", "g-raw-p0"), ("fence",)] and txn.gate.is_set()
    await txn.commit()
    assert producer.calls[-1:] == [("fence",)]  # nothing written: nothing to commit
    producer.pending = 3
    await txn.commit()
    ((status, reason),) = left
    assert status == EXIT_RESTART and says in reason
    assert txn.gate.is_set()  # left (os._exit in the worker): the gate no longer matters


async def test_agents_wait_while_an_assignment_holds_the_gate_but_not_while_a_commit_runs():
    producer = FakeProducer()
    txn = Transactions(producer, "g", 0.1, lambda status, reason: None)
    assert not txn.gate.is_set()  # nothing assigned yet
    await txn.take([0])
    txn.hold("assignment")
    producer.pending = 1
    await txn.commit()
    assert not txn.gate.is_set()  # the assignment still holds it
    txn.unhold("assignment")
    assert txn.gate.is_set()
    producer.pending = 1
    await txn.commit()
    assert txn.gate.is_set() and producer.deferring is False


def test_records_written_during_a_commit_wait_and_go_out_after_it_in_order():
    produced: list[bytes] = []

    class Librdkafka:
        def produce(self, topic, value, key, headers, on_delivery):
            produced.append(key)

        def poll(self, timeout):
            return 0

    producer = OutputProducer("127.0.0.1:1", "t")
    producer._producer = Librdkafka()
    producer.send("t", b"1", b"v", [])
    producer.deferring = True  # a commit runs in another thread
    producer.send("t", b"2", b"v", [])
    producer.send("t", b"3", b"v", [])
    assert produced == [b"1"]
    producer.deferring = False
    producer.send_deferred()
    producer.send("t", b"4", b"v", [])
    assert produced == [b"1", b"2", b"3", b"4"]


async def test_taking_the_raw_topics_over_fences_before_reading_the_state_back(agent, monkeypatch):
    order: list[str] = []
    monkeypatch.setattr(OutputProducer, "fence", lambda self, timeout: order.append("fence"))
    monkeypatch.setattr(
        pipeline_module, "read_rows", lambda *a: order.append("rows") or MemoryStore()
    )
    monkeypatch.setattr(
        pipeline_module, "read_published", lambda *a: order.append("pub") or MemoryStore()
    )
    signal = agent.app.on_partitions_assigned
    await signal.send(set())  # a standby for a while
    await signal.send({TP(RAW_STOCK, 0)})
    assert order == ["fence", "rows", "pub"]
    assert agent.app.pipeline.producer.config["transactional.id"].endswith("-raw-p0")


def test_row_changes_go_out_with_the_outputs_as_the_changelog_always_had_them(sent):
    from hub.worker.state import ChangelogStore, rows_changelog

    written: list[tuple[str, bytes, bytes | None]] = []

    class Recorder:
        def send(self, topic, key, value, headers):
            written.append((topic, key, value))

    changelog = rows_changelog("bench-sut").name
    assert changelog == "bench-sut-engine-rows-changelog"  # the name Faust's table gave it
    store = ChangelogStore(Recorder(), changelog)
    store.put("row:pos:pos.ticket:{}", {"row": {"ticket_id": 7}})
    assert store.get("row:pos:pos.ticket:{}") == {"row": {"ticket_id": 7}}
    store.put("row:pos:pos.ticket:{}", None)
    assert store.get("row:pos:pos.ticket:{}") is None
    key = b'"row:pos:pos.ticket:{}"'  # Faust's JSON key serializer
    assert written == [(changelog, key, b'{"row":{"ticket_id":7}}'), (changelog, key, None)]
    store.replace(MemoryStore({"row:a": {"row": {}}}))
    assert dict(store) == {"row:a": {"row": {}}} and len(written) == 2  # read back, not written


async def test_a_quiet_moment_commits_at_once_and_a_steady_stream_at_least_every_interval():
    import time

    class Streaming(FakeProducer):
        """Written to just now, whenever asked, while ``steady``."""

        steady = False
        quiet_since = 0.0

        @property
        def last_send(self):
            return time.monotonic() if self.steady else self.quiet_since

    producer = Streaming()
    txn = Transactions(producer, "g", 0.05, lambda status, reason: None)
    await txn.take([0])
    runner = asyncio.create_task(txn.run(idle=0.003))
    try:
        producer.pending, producer.quiet_since = 1, time.monotonic()  # one write, then quiet
        await asyncio.sleep(0.05)
        assert ("commit", 1) in producer.calls
        commits = sum(call[0] == "commit" for call in producer.calls)
        producer.steady = True  # never a quiet moment: only the interval commits
        started = time.monotonic()
        while time.monotonic() - started < 0.3:
            producer.pending += 1
            await asyncio.sleep(0.001)
        elapsed = time.monotonic() - started
        made = sum(call[0] == "commit" for call in producer.calls) - commits
        assert 1 <= made <= elapsed / 0.05 + 1, producer.calls  # one per interval at most
    finally:
        runner.cancel()


def test_the_consumers_fetch_wait_is_capped_once(monkeypatch):
    from types import SimpleNamespace

    from faust.transport.drivers import aiokafka as driver

    made: list[SimpleNamespace] = []

    def create(self, transport):
        made.append(SimpleNamespace(_fetch_max_wait_ms=1500))
        return made[-1]

    monkeypatch.setattr(driver.AIOKafkaConsumerThread, "_create_worker_consumer", create)
    worker_app.cap_fetch_wait(20)
    worker_app.cap_fetch_wait(20)  # a second call does not wrap it again
    consumer = driver.AIOKafkaConsumerThread._create_worker_consumer(None, None)
    assert consumer._fetch_max_wait_ms == 20 and len(made) == 1


async def test_an_assignment_that_cannot_be_taken_over_starts_the_worker_afresh(agent, monkeypatch):
    left: list[tuple[int, str]] = []
    monkeypatch.setattr(
        pipeline_module, "leave", lambda status, reason: left.append((status, reason))
    )

    def unreadable(*args):
        raise RuntimeError("Kafka stopped answering with 3 partitions still unread")

    monkeypatch.setattr(pipeline_module, "read_rows", unreadable)
    signal = agent.app.on_partitions_assigned
    await signal.send(set())
    await signal.send({TP(RAW_STOCK, 0)})  # Faust would crash the worker on an exception here
    ((status, reason),) = left
    assert status == EXIT_RESTART and "could not take the assignment over" in reason
