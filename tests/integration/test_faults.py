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
import time

import pytest
import requests

from hub.topics import registry
from tests.integration.harness import (
    Load,
    Worker,
    assert_reconciled,
    drained,
    kill9_connect,
    raw_partitions,
    restart_source,
    shared_out,
    stable_members,
    under_load,
    wait_for_share,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.faults]


@pytest.fixture
def own_worker(stack, quiet_group):
    mine = Worker(stack)
    quiet_group.append(mine)
    mine.start()
    return mine


def test_kill_9_the_worker_mid_stream(stack, own_worker):
    def inject() -> None:
        own_worker.kill9()
        time.sleep(2)
        own_worker.start()

    under_load(stack, 101, inject)


def test_kill_9_kafka_connect_mid_stream(stack, own_worker):
    under_load(stack, 202, lambda: kill9_connect(stack, 2))


def test_restart_a_source_database_mid_stream(stack, own_worker):
    under_load(stack, 303, lambda: restart_source(stack, "shop", 2))


def test_two_active_workers_kill_9_one_and_the_other_takes_its_partitions_over(stack, own_worker):
    other = Worker(stack, "second-worker")
    other.start()
    workers = [own_worker, other]
    try:
        wait_for_share(stack, workers)

        def inject() -> None:
            own_worker.kill9()  # its partition numbers go to the other after the rebalance
            wait_until(lambda: other.partitions() == raw_partitions(),
                       "the other worker taking every raw partition over")  # fmt: skip

        under_load(stack, 404, inject)
        assert other.alive(), other.log.read_text()[-3000:]
        own_worker.start()  # back: the two share the partitions out again
        wait_for_share(stack, workers)
    finally:
        other.stop()


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


def test_a_worker_that_stops_consuming_is_replaced_and_the_pipeline_catches_up(stack, quiet_group):
    frozen = Worker(stack, "frozen-worker")
    frozen.env["HUB_WORKER_STALL_TIMEOUT"] = "8"
    quiet_group.append(frozen)
    frozen.start()
    wait_until(frozen.active, "the worker holding the raw topics")
    first = frozen.child_pid()
    assert first is not None

    health = f"http://127.0.0.1:{frozen.env['HUB_WORKER_WEB_PORT']}/health"
    seen: list[dict] = []

    def inject() -> None:
        # The drill: its stream loop takes no more records, as a stalled one would; it still
        # says "ready", its heartbeats go on, and the group sees nothing wrong.
        os.kill(first, signal.SIGUSR2)

        def reports_stalling() -> bool:
            with contextlib.suppress(requests.RequestException):
                answer = requests.get(health, timeout=2)
                seen.append(answer.json())
                return answer.status_code == 503 and seen[-1]["status"] in ("stalling", "stalled")
            return False

        wait_until(reports_stalling, "/health reporting the stall", timeout=30)

    under_load(stack, 505, inject)
    lagging = [p for p in seen[-1]["partitions"].values() if p["lag"] > 0]
    assert lagging and max(p["seconds_without_progress"] for p in lagging) >= 4, seen[-1]
    status = subprocess.run([sys.executable, "-m", "hub", "stack", "status", "--json"],
                            env=frozen.env, capture_output=True, text=True, check=True)  # fmt: skip
    assert json.loads(status.stdout)["worker"]["state"] == "active"
    text = frozen.log.read_text(errors="replace")
    assert "drill (SIGUSR2)" in text
    assert "[CRITICAL] stalled: no progress for" in text, text[-3000:]
    assert "asked for a fresh start" in text
    assert frozen.alive() and frozen.child_pid() not in (None, first)


def test_a_worker_paused_past_its_session_timeout_cannot_publish_once_replaced(stack, quiet_group):
    first, second = Worker(stack, "paused-worker"), Worker(stack, "other-worker")
    quiet_group.extend([first, second])
    for each in quiet_group:
        each.start()
    wait_for_share(stack, quiet_group)

    def inject() -> None:
        # SIGSTOP, as a long GC or a frozen VM would: the worker holds records and an open
        # transaction, and sends no heartbeat. The other takes its partitions over after the
        # session timeout and writes for a while; then the paused worker wakes up with its records
        # in hand.
        first.signal_all(signal.SIGSTOP)
        try:
            wait_until(lambda: second.partitions() == raw_partitions(),
                       "the other worker taking every raw partition over")  # fmt: skip
            time.sleep(5)
        finally:
            first.signal_all(signal.SIGCONT)

    under_load(stack, 606, inject)  # no loss, no duplicate, no key back in source order

    def state() -> str:
        return (
            f"stable members {stable_members(stack)}, partitions "
            f"{[w.partitions() for w in quiet_group]}\n--- woken log:\n"
            f"{first.log.read_text(errors='replace')[-6000:]}\n--- other log:\n"
            f"{second.log.read_text(errors='replace')[-3000:]}"
        )

    # Woken up, it finds itself fenced if it had anything to write or commit, and rejoins the
    # group either way: the two share the partitions out again.
    wait_until(lambda: shared_out(stack, quiet_group), "the woken worker and the other sharing "
               "the raw partitions out", 120, state)  # fmt: skip
    assert first.alive() and second.alive(), state()


def test_a_worker_whose_kafka_went_away_stops_within_its_stop_timeout(stack, quiet_group):
    from hub.settings import HubSettings
    from hub.stack.manager import Stack

    lonely = Worker(stack, "lonely-worker")
    lonely.env["HUB_WORKER_STOP_TIMEOUT"] = "10"
    quiet_group.append(lonely)
    lonely.start()
    wait_until(lonely.active, "the worker holding the raw topics")
    drained(stack)
    kafka = Stack(HubSettings(state_dir=stack.state_dir)).kafka
    kafka.stop()
    try:
        time.sleep(20)  # the worker tries to reconnect meanwhile
        assert lonely.alive()
        asked = time.monotonic()
        assert lonely.proc is not None
        lonely.proc.terminate()
        status = lonely.proc.wait(60)
        took = time.monotonic() - asked
    finally:
        up = stack.hub("stack", "up")
        assert up.returncode == 0, up.stderr
    text = lonely.log.read_text(errors="replace")
    assert took < 10 + 5 + 5, (took, status, text[-3000:])  # its deadline, the supervisor's margin
    # Reconnection failures are logged with a back-off, not tens of times a second.
    assert text.count("Connection refused") < 30, text.count("Connection refused")
    lonely.start()  # Kafka is back: the pipeline goes on
    wait_until(lonely.active, "the worker holding the raw topics again")
    load = Load(stack, actions=40, rate=20, seed=707)
    load.start()
    load.join(60)
    assert load.done == 40, dict(load.errors)
    drained(stack)
    assert_reconciled(stack)
