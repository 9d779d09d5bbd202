"""The real stack, started once per test session on free ports in its own state dir.

Nothing here skips: a missing prerequisite makes ``hub stack up`` fail, and so the run, with the
message that says what to install.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from hub.stack.procs import free_port
from hub.topics import registry

DEADLINE = 120.0  # generous: these tests wait for results, they never assert on speed


@dataclass
class StackHandle:
    state_dir: Path
    env: dict[str, str]
    endpoints: dict[str, Any]
    logs: list[Path] = field(default_factory=list)

    def hub(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "hub", *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout, check=False)  # fmt: skip

    @property
    def pos_dsn(self) -> str:
        return str(self.endpoints["sources"]["pos"])

    def sql(
        self, system: str, statement: str, params: tuple[Any, ...] = ()
    ) -> list[tuple[Any, ...]]:
        """Run one statement in a source database as its application and commit."""
        dsn = str(self.endpoints["sources"][system])
        if dsn.startswith("mariadb://"):
            from hub.stack.mariadb import connect

            conn: Any = connect(dsn)
        else:
            import psycopg

            conn = psycopg.connect(dsn)
        try:
            with conn.cursor() as cur:
                cur.execute(statement, params)
                rows = list(cur.fetchall()) if cur.description else []
            conn.commit()
            return rows
        finally:
            conn.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Fault tests (they replace the session's worker) run after the others; tests that stop the
    # stack run last.
    items.sort(key=lambda item: (item.get_closest_marker("stops_stack") is not None,
                                 item.get_closest_marker("faults") is not None
                                 or item.get_closest_marker("chaos") is not None,
                                 item.get_closest_marker("after_others") is not None))  # fmt: skip


@pytest.fixture(scope="session")
def stack() -> Iterator[StackHandle]:
    state_dir = Path(tempfile.mkdtemp(prefix="hub-it-"))
    state_dir.chmod(0o755)  # PostgreSQL runs as the postgres OS user when we are root
    ports = set()
    while len(ports) < 7:
        ports.add(free_port())
    kafka, controller, connect, pos, shop, erp, web = sorted(ports)
    env = {
        **os.environ,
        "HUB_STATE_DIR": str(state_dir),
        "HUB_KAFKA_PORT": str(kafka),
        "HUB_KAFKA_CONTROLLER_PORT": str(controller),
        "HUB_CONNECT_PORT": str(connect),
        "HUB_POS_PG_PORT": str(pos),
        "HUB_SHOP_PG_PORT": str(shop),
        "HUB_ERP_MARIADB_PORT": str(erp),
        "HUB_WORKER_WEB_PORT": str(web),
        "HUB_WORKER_ID": f"hub-it-{uuid.uuid4().hex[:8]}",
        "COLUMNS": "200",
    }
    handle = StackHandle(state_dir, env, {})
    try:
        started = time.monotonic()
        up = handle.hub("stack", "up")
        sys.stderr.write(up.stderr)
        if up.returncode != 0:
            pytest.fail(
                f"'hub stack up' failed (exit {up.returncode}):\n{up.stdout}\n{up.stderr}",
                pytrace=False,
            )
        sys.stderr.write(f"[integration] stack up in {time.monotonic() - started:.1f}s\n")
        handle.endpoints = json.loads(handle.hub("stack", "env", "--json").stdout)
        yield handle
    finally:
        if os.environ.get("HUB_IT_KEEP"):  # keep the stack and its data to look into a failure
            sys.stderr.write(f"[integration] stack kept in {state_dir}\n")
        else:
            handle.hub("stack", "down", "--purge", timeout=300)
            shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def worker(stack: StackHandle) -> Iterator[subprocess.Popen[bytes]]:
    log = stack.state_dir / "logs" / "worker.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "hub", "worker"], env=stack.env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        if proc.returncode not in (0, -15):
            sys.stderr.write(log.read_text(errors="replace")[-5000:])


@pytest.fixture
def quiet_group(stack: StackHandle, worker: subprocess.Popen[bytes]) -> Iterator[list[Any]]:
    """The session's worker stopped: the test starts workers of the same group itself (harness
    ``Worker``s it appends here are stopped after it). Tests using it are marked ``faults``: they
    run after the tests that need the session's worker."""
    worker.terminate()
    worker.wait(60)
    started: list[Any] = []
    yield started
    for each in started:
        each.stop()


class TopicReader:
    """Reads a declared topic from the beginning and remembers every record per key."""

    def __init__(self, bootstrap: str, topic_id: str) -> None:
        spec = registry()[topic_id]
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"it-{uuid.uuid4()}",
                                  "enable.auto.commit": False})  # fmt: skip
        self.consumer.assign(
            [TopicPartition(spec.name, p, OFFSET_BEGINNING) for p in range(spec.partitions)]
        )
        self.history: dict[str, list[dict[str, Any] | None]] = {}

    def poll(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            msg = self.consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            value = orjson.loads(msg.value()) if msg.value() is not None else None
            self.history.setdefault(msg.key().decode(), []).append(value)

    def wait_for(self, key: str, check: Callable[[dict[str, Any] | None], bool],
                 timeout: float = DEADLINE) -> dict[str, Any] | None:  # fmt: skip
        """Wait until the latest record of ``key`` satisfies ``check``; fail with what was seen."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll(0.5)
            records = self.history.get(key)
            if records and check(records[-1]):
                return records[-1]
        pytest.fail(f"{key}: no matching record within {timeout:.0f}s; saw {self.history.get(key)}")

    def close(self) -> None:
        self.consumer.close()


def _reader(stack: StackHandle, topic_id: str) -> Iterator[TopicReader]:
    reader = TopicReader(stack.endpoints["kafka_bootstrap"], topic_id)
    yield reader
    reader.close()


@pytest.fixture
def inventory(stack: StackHandle) -> Iterator[TopicReader]:
    yield from _reader(stack, "unified.inventory")


@pytest.fixture
def customers(stack: StackHandle) -> Iterator[TopicReader]:
    yield from _reader(stack, "unified.customer.records")


@pytest.fixture
def order_lines(stack: StackHandle) -> Iterator[TopicReader]:
    yield from _reader(stack, "unified.order_lines")


@pytest.fixture
def availability(stack: StackHandle) -> Iterator[TopicReader]:
    yield from _reader(stack, "unified.availability")


@pytest.fixture
def alerts(stack: StackHandle) -> Iterator[TopicReader]:
    yield from _reader(stack, "unified.alerts")


@pytest.fixture
def golden(stack: StackHandle) -> Iterator[TopicReader]:
    yield from _reader(stack, "unified.customer")


@pytest.fixture
def customer_links(stack: StackHandle) -> Iterator[TopicReader]:
    yield from _reader(stack, "unified.customer.links")


@pytest.fixture
def customer_events(stack: StackHandle) -> Iterator[TopicReader]:
    yield from _reader(stack, "unified.customer.events")
