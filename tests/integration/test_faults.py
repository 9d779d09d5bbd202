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
    restart_source,
    stable_members,
    under_load,
    wait_for_pair,
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


def test_two_workers_in_one_group_kill_9_the_active_one(stack, own_worker):
    standby = Worker(stack, "standby-worker")
    standby.start()
    workers = [own_worker, standby]
    try:
        wait_for_pair(stack, workers)
        survivors: list[Worker] = []

        def inject() -> None:
            active = next(w for w in workers if w.active())
            active.kill9()  # the standby must take over after the rebalance
            survivors.extend(w for w in workers if w is not active)
            wait_until(survivors[0].active, "the standby taking the raw topics over")

        under_load(stack, 404, inject)
        assert survivors[0].alive(), survivors[0].log.read_text()[-3000:]
    finally:
        standby.stop()


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
        # The drill: its agents take no more records, as a stalled framework's would; it still
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
    first, second = Worker(stack, "paused-worker"), Worker(stack, "standby-worker")
    quiet_group.extend([first, second])
    for each in quiet_group:
        each.start()
    wait_for_pair(stack, quiet_group)
    paused: list[Worker] = []

    def inject() -> None:
        # SIGSTOP, as a long GC or a frozen VM would: the worker holds records and an open
        # transaction, and sends no heartbeat. The standby takes over after the session timeout
        # and writes for a while; then the paused worker wakes up with its records in hand.
        active = next(w for w in quiet_group if w.active())
        standby = next(w for w in quiet_group if w is not active)
        paused.append(active)
        active.signal_all(signal.SIGSTOP)
        try:
            wait_until(standby.active, "the standby taking the raw topics over")
            time.sleep(5)
        finally:
            active.signal_all(signal.SIGCONT)

    under_load(stack, 606, inject)  # no loss, no duplicate, no key back in source order
    (woken,) = paused
    other = next(w for w in quiet_group if w is not woken)

    def settled() -> bool:
        # Woken up, it finds itself fenced if it had anything to write or commit, and rejoins the
        # group either way. The rebalance that follows may give the raw topics back to it (it then
        # takes them over and fences the other) or leave them with the other: both are right, as
        # long as the two end up one active, one standby.
        return stable_members(stack) == 2 and sum(w.active() for w in (woken, other)) == 1

    def state() -> str:
        return (
            f"stable members {stable_members(stack)}, woken active {woken.active()}, "
            f"other active {other.active()}\n--- woken log:\n"
            f"{woken.log.read_text(errors='replace')[-6000:]}\n--- other log:\n"
            f"{other.log.read_text(errors='replace')[-3000:]}"
        )

    wait_until(settled, "the woken worker and the other one active and standby", 120, state)
    assert woken.alive() and other.alive(), state()
    sys.stderr.write(
        f"[paused] settled with the woken worker {'active' if woken.active() else 'standby'}\n"
    )


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
    assert text.count("Unable connect to node") < 30, text.count("Unable connect to node")
    lonely.start()  # Kafka is back: the pipeline goes on
    wait_until(lonely.active, "the worker holding the raw topics again")
    load = Load(stack, actions=40, rate=20, seed=707)
    load.start()
    load.join(60)
    assert load.done == 40, dict(load.errors)
    drained(stack)
    assert_reconciled(stack)
