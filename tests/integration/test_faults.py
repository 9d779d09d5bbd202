"""Faults under a steady write load on all three sources: nothing lost, nothing applied twice.

Each test runs a seeded load, injects a fault mid-stream, lets the load finish, waits for the
pipeline to drain, then asserts `hub reconcile` finds no difference and that no key on a unified
topic received the same source position twice. These tests stop the session's worker and run
their own (same consumer group), so they run after the other integration tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import psycopg
import pymysql
import pytest

from hub.kafka_io import header, read_to_end
from hub.settings import HubSettings
from hub.simulator import ErpSimulator, SalesSimulator, WebShopSimulator
from hub.stack.mariadb import connect as mariadb_connect
from hub.topics import registry
from tests.integration.test_dead_letters import caught_up

pytestmark = [pytest.mark.integration, pytest.mark.faults]


class Worker:
    """A hub worker process of the session's consumer group."""

    def __init__(self, stack) -> None:
        self.stack = stack
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = stack.state_dir / "logs" / "fault-worker.log"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "hub", "worker"], env=self.stack.env,
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip

    def kill9(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, self.log.read_text()[-3000:]
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture
def own_worker(stack, worker):
    worker.terminate()  # the session's worker: these tests run their own of the same group
    worker.wait(60)
    mine = Worker(stack)
    mine.start()
    yield mine
    mine.stop()


class Load(threading.Thread):
    """A seeded write load on the three databases; survives a database restart (reconnects)."""

    def __init__(self, stack, actions: int, rate: float, seed: int) -> None:
        super().__init__(daemon=True)
        self.stack, self.actions, self.rate, self.seed = stack, actions, rate, seed
        self.done = 0
        self.errors: Counter[str] = Counter()

    def _open(self):
        sources = self.stack.endpoints["sources"]
        pos, shop = psycopg.connect(sources["pos"]), psycopg.connect(sources["shop"])
        erp = mariadb_connect(sources["erp"])
        return (pos, shop, erp), (SalesSimulator(pos, self.seed), WebShopSimulator(shop, self.seed),
                                  ErpSimulator(erp, self.seed))  # fmt: skip

    def run(self) -> None:
        conns, (tills, web, erp) = self._open()
        next_at = time.monotonic()
        while self.done < self.actions:
            roll = (self.done * 7919) % 10
            try:
                if roll < 5:
                    tills.sell()
                elif roll < 7:
                    web.order()
                elif roll < 8:
                    web.fulfil()
                else:
                    erp.move()
                self.done += 1
            except (
                psycopg.OperationalError,
                pymysql.err.OperationalError,
                pymysql.err.InterfaceError,
            ) as exc:
                self.errors[type(exc).__name__] += 1
                time.sleep(0.5)
                for conn in conns:
                    with contextlib.suppress(Exception):  # already closed by the failure
                        conn.close()
                try:
                    conns, (tills, web, erp) = self._open()
                except (psycopg.OperationalError, pymysql.err.OperationalError):
                    continue
            next_at += 1 / self.rate
            time.sleep(max(0.0, next_at - time.monotonic()))
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.close()


def drained(stack) -> None:
    """Wait until the worker's group has committed every raw record."""
    bootstrap, group = stack.endpoints["kafka_bootstrap"], stack.env["HUB_WORKER_ID"]
    raw = [spec.id for spec in registry().topics.values() if spec.kind == "raw"]
    deadline = time.monotonic() + 240
    while not all(caught_up(bootstrap, group, topic_id) for topic_id in raw):
        assert time.monotonic() < deadline, "the worker did not drain the raw topics within 240 s"
        time.sleep(1)


def assert_reconciled(stack) -> None:
    result = stack.hub("reconcile", "--json", "--wait", "120")
    report = json.loads(result.stdout)
    summary = {
        t: (len(r["missing"]), len(r["extra"]), len(r["wrong"]))
        for t, r in report["topics"].items()
    }
    assert report["agree"], f"{summary} {result.stdout[:3000]}"
    assert result.returncode == 0


def assert_no_duplicate_effect(stack) -> None:
    """No key on a unified topic received the same source position twice."""
    specs = [spec for spec in registry().topics.values() if spec.kind == "unified"]
    seen: Counter[tuple[str, str, str]] = Counter()
    for msg in read_to_end(stack.endpoints["kafka_bootstrap"], specs):
        position = header(msg, "hub.source_position")
        assert position, f"{msg.topic()} {msg.key()} has no hub.source_position header"
        seen[(msg.topic() or "", (msg.key() or b"").decode(), position)] += 1
    twice = {key: n for key, n in seen.items() if n > 1}
    assert not twice, (
        f"{len(twice)} keys got the same source position twice, e.g. {list(twice.items())[:5]}"
    )


def under_load(stack, seed: int, inject) -> None:
    """Run a load of 240 actions, ``inject`` a fault 3 s in, then check nothing was lost or doubled."""
    load = Load(stack, actions=240, rate=40, seed=seed)
    load.start()
    time.sleep(3)
    inject()
    load.join(180)
    assert load.done == 240, f"the load stopped early: {dict(load.errors)}"
    drained(stack)
    assert_reconciled(stack)
    assert_no_duplicate_effect(stack)


def test_kill_9_the_worker_mid_stream(stack, own_worker):
    def inject() -> None:
        own_worker.kill9()
        time.sleep(2)
        own_worker.start()

    under_load(stack, 101, inject)


def test_kill_9_kafka_connect_mid_stream(stack, own_worker):
    def inject() -> None:
        os.killpg(int((stack.state_dir / "run" / "connect.pid").read_text()), signal.SIGKILL)
        time.sleep(2)
        up = stack.hub("stack", "up")  # restarts Connect; the connectors resume from their offsets
        assert up.returncode == 0, up.stderr

    under_load(stack, 202, inject)


def test_restart_a_source_database_mid_stream(stack, own_worker):
    from hub.stack.manager import Stack

    def inject() -> None:
        Stack(HubSettings(state_dir=stack.state_dir)).sources["shop"].stop()
        time.sleep(2)
        up = stack.hub("stack", "up")  # starts it again; Debezium reconnects
        assert up.returncode == 0, up.stderr

    under_load(stack, 303, inject)


def test_replaying_the_raw_topics_from_the_start_publishes_nothing(stack, own_worker):
    drained(stack)
    own_worker.stop()
    specs = [spec for spec in registry().topics.values() if spec.kind == "unified"]
    before = _ends(stack, specs)
    reset = subprocess.run(
        [sys.executable, "-c", _RESET, stack.endpoints["kafka_bootstrap"], stack.env["HUB_WORKER_ID"]],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert reset.returncode == 0, reset.stderr
    own_worker.start()
    time.sleep(5)
    drained(stack)
    assert _ends(stack, specs) == before, "a replay from the beginning published records"
    assert_reconciled(stack)


def _ends(stack, specs) -> dict[tuple[str, int], int]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {"bootstrap.servers": stack.endpoints["kafka_bootstrap"], "group.id": "it-ends"}
    )
    try:
        return {(s.name, p): consumer.get_watermark_offsets(TopicPartition(s.name, p), 10)[1]
                for s in specs for p in range(s.partitions)}  # fmt: skip
    finally:
        consumer.close()


# Commits offset 0 on every raw partition for the group (the worker is stopped).
_RESET = """
import sys
from confluent_kafka import Consumer, TopicPartition
from hub.topics import registry
bootstrap, group = sys.argv[1], sys.argv[2]
consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
raw = [s for s in registry().topics.values() if s.kind == "raw"]
consumer.commit(offsets=[TopicPartition(s.name, p, 0) for s in raw for p in range(s.partitions)],
                asynchronous=False)
consumer.close()
"""
