"""What the fault tests share: worker processes, a seeded write load, and the checks that nothing
was lost (``hub reconcile`` agrees) and nothing applied twice (no key received one source position
twice)."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import orjson
import psycopg
import pymysql
import requests

from hub.connectors import load_definitions, shared_topics
from hub.kafka_io import group_lag, header, read_to_end
from hub.models import MODELS
from hub.simulator import ErpSimulator, SalesSimulator, WebShopSimulator
from hub.stack.mariadb import connect as mariadb_connect
from hub.stack.procs import free_port
from hub.topics import registry
from hub.worker.metrics import worker_is_active


class Worker:
    """A hub worker process of the session's consumer group, with its own web port."""

    def __init__(self, stack, name: str = "fault-worker") -> None:
        self.stack = stack
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = stack.state_dir / "logs" / f"{name}.log"
        self.env = {**stack.env, "HUB_WORKER_WEB_PORT": str(free_port())}

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "hub", "worker"], env=self.env,
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def active(self) -> bool:
        """Whether it holds the raw topics (its ``hub_worker_active`` gauge), not a standby."""
        return worker_is_active("127.0.0.1", int(self.env["HUB_WORKER_WEB_PORT"]))

    def partitions(self) -> set[int]:
        """The raw partition numbers it holds (its ``/health``), none when it does not answer."""
        with contextlib.suppress(requests.RequestException, ValueError):
            url = f"http://127.0.0.1:{self.env['HUB_WORKER_WEB_PORT']}/health"
            return set(requests.get(url, timeout=2).json().get("raw_partitions", []))
        return set()

    def child_pid(self) -> int | None:
        """The Faust process the supervisor runs now (None between two)."""
        assert self.proc is not None
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        return int(children[0]) if children else None

    def signal_all(self, signum: int) -> None:
        """Send ``signum`` to the supervisor and its child at once (their own session)."""
        assert self.proc is not None and self.proc.poll() is None
        os.killpg(self.proc.pid, signum)

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


def kill9_connect(stack, pause: float) -> None:
    """kill -9 Kafka Connect, wait ``pause`` s, then `hub stack up` restarts it (the connectors
    resume from their offsets)."""
    os.killpg(int((stack.state_dir / "run" / "connect.pid").read_text()), signal.SIGKILL)
    time.sleep(pause)
    up = stack.hub("stack", "up")
    assert up.returncode == 0, up.stderr


def restart_source(stack, system: str, pause: float) -> None:
    """Stop ``system``'s database, wait ``pause`` s, then `hub stack up` starts it again (Debezium
    reconnects)."""
    from hub.settings import HubSettings
    from hub.stack.manager import Stack

    Stack(HubSettings(state_dir=stack.state_dir)).sources[system].stop()
    time.sleep(pause)
    up = stack.hub("stack", "up")
    assert up.returncode == 0, up.stderr


def restart_kafka(stack, pause: float) -> None:
    """Stop the Kafka broker, wait ``pause`` s, then `hub stack up` starts it again (Connect and
    the workers reconnect; connectors that failed meanwhile are restarted)."""
    from hub.settings import HubSettings
    from hub.stack.manager import Stack

    Stack(HubSettings(state_dir=stack.state_dir)).kafka.stop()
    time.sleep(pause)
    up = stack.hub("stack", "up")
    assert up.returncode == 0, up.stderr


def wait_until(check, what: str, timeout: float = 120, explain=None) -> None:
    """Poll ``check`` until it holds; past ``timeout`` fail, with ``explain()`` if given."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() >= deadline:
            detail = f"\n{explain()}" if explain is not None else ""
            raise AssertionError(f"{what}: not within {timeout:.0f} s{detail}")
        time.sleep(0.5)


class Load(threading.Thread):
    """A seeded write load on the three databases; survives a database restart (reconnects)."""

    def __init__(self, stack, actions: int | None, rate: float, seed: int) -> None:
        """``actions``: how many to run; None: run until ``finish()``."""
        super().__init__(daemon=True)
        self.stack, self.actions, self.rate, self.seed = stack, actions, rate, seed
        self.done = 0
        self.stopping = threading.Event()
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
        while not self.stopping.is_set() and (self.actions is None or self.done < self.actions):
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

    def finish(self, timeout: float = 60) -> None:
        self.stopping.set()
        self.join(timeout)


def caught_up(bootstrap: str, group: str, topic_id: str = "raw.pos.stock") -> bool:
    """Whether ``group`` has committed every record of the raw topic ``topic_id``."""
    return group_lag(bootstrap, group, [registry()[topic_id]]) == 0


def drained(stack) -> None:
    """Wait until the worker's group has committed every raw record."""
    bootstrap, group = stack.endpoints["kafka_bootstrap"], stack.env["HUB_WORKER_ID"]
    raw = shared_topics(load_definitions(), registry())  # the reference ones: read by every task
    # Generous: after a takeover late in a session, the standby replays a long table changelog.
    deadline = time.monotonic() + 480
    while group_lag(bootstrap, group, raw) > 0:
        assert time.monotonic() < deadline, "the worker did not drain the raw topics within 480 s"
        time.sleep(1)


def reconcile_report(stack) -> dict:
    """``hub reconcile --json``'s report (its exit code must match its verdict)."""
    result = stack.hub("reconcile", "--json", "--wait", "120")
    report = json.loads(result.stdout)
    assert (result.returncode == 0) == report["agree"], result.stderr
    return report


def assert_reconciled(stack) -> dict:
    """``hub reconcile`` agrees; returns its JSON report."""
    report = reconcile_report(stack)
    summary = {
        t: (len(r["missing"]), len(r["extra"]), len(r["wrong"]))
        for t, r in report["topics"].items()
    }
    assert report["agree"], f"{summary} {json.dumps(report)[:3000]}"
    assert not report["unchecked_systems"], report["unchecked_systems"]
    return report


def engine_topics() -> list:
    """The unified topics the engine writes: one source position per record."""
    return [spec for spec in registry().topics.values()
            if spec.kind == "unified" and spec.model in MODELS]  # fmt: skip


def duplicate_effects(stack) -> tuple[int, dict[tuple[str, str, str], int]]:
    """The records on the engine's unified topics, and every (topic, key, source position) seen
    twice."""
    specs = engine_topics()
    seen: Counter[tuple[str, str, str]] = Counter()
    for msg in read_to_end(stack.endpoints["kafka_bootstrap"], specs):
        position = header(msg, "hub.source_position")
        assert position, f"{msg.topic()} {msg.key()} has no hub.source_position header"
        seen[(msg.topic() or "", (msg.key() or b"").decode(), position)] += 1
    return sum(seen.values()), {key: n for key, n in seen.items() if n > 1}


def out_of_order_effects(stack) -> dict[tuple[str, str], list[str]]:
    """Keys of the engine's unified topics whose source positions, in log order, do not strictly
    increase (a worker that wrote after it was replaced would show here): key → its positions."""
    specs = engine_topics()
    positions: dict[tuple[str, str], list[str]] = {}
    for msg in read_to_end(stack.endpoints["kafka_bootstrap"], specs):
        key = (msg.topic() or "", (msg.key() or b"").decode())
        positions.setdefault(key, []).append(header(msg, "hub.source_position") or "")
    return {
        key: seen
        for key, seen in positions.items()
        if any(later <= earlier for earlier, later in itertools.pairwise(seen))
    }


def figure_effects(stack) -> tuple[dict[str, list], dict[str, int]]:
    """Availability figures that went back in time (a level behind the figure older than in the
    key's previous record), and figures published twice in a row the same (a duplicate effect):
    each figure is made from several sources' levels, so positions are compared per level."""
    spec = registry()["unified.availability"]
    last: dict[str, dict | None] = {}
    back: dict[str, list] = {}
    twice: dict[str, int] = {}
    for msg in read_to_end(stack.endpoints["kafka_bootstrap"], [spec]):
        key = (msg.key() or b"").decode()
        value = orjson.loads(msg.value()) if msg.value() is not None else None
        before = last.get(key)
        if before is not None and value is not None:
            was = {e["location_id"]: e["source_position"] for e in before["explanation"]}
            now = {e["location_id"]: e["source_position"] for e in value["explanation"]}
            older = [
                (loc, was[loc], pos) for loc, pos in now.items() if loc in was and pos < was[loc]
            ]
            if older:
                back[key] = older
            same = {k: v for k, v in value.items() if k not in ("emitted_at", "source_system",
                    "source_position", "source_committed_at")}  # fmt: skip
            if same == {k: before[k] for k in same}:
                twice[key] = twice.get(key, 1) + 1
        last[key] = value
    return back, twice


def assert_no_duplicate_effect(stack) -> int:
    """No key on a unified topic received the same source position twice; returns the records."""
    records, twice = duplicate_effects(stack)
    assert not twice, (
        f"{len(twice)} keys got the same source position twice, e.g. {list(twice.items())[:5]}"
    )
    return records


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
    disorder = out_of_order_effects(stack)
    assert not disorder, (
        f"{len(disorder)} keys went back in source order: {list(disorder.items())[:3]}"
    )
    back, twice = figure_effects(stack)
    assert not back, f"{len(back)} availability figures went back in time: {list(back.items())[:3]}"
    assert not twice, (
        f"{len(twice)} availability figures published twice: {list(twice.items())[:3]}"
    )


def raw_partitions() -> set[int]:
    """The partition numbers the worker group shares out."""
    return set(range(registry()["raw.pos.stock"].partitions))


def shared_out(stack, workers: list[Worker]) -> bool:
    """Whether ``workers`` are the stable group, each holding its own share of the raw partition
    numbers, all of them between them."""
    held = [w.partitions() for w in workers]
    every = set().union(*held)
    return (
        stable_members(stack) == len(workers) and all(held)
        and sum(map(len, held)) == len(every) and every == raw_partitions()
    )  # fmt: skip


def wait_for_share(stack, workers: list[Worker]) -> None:
    """Wait until ``workers`` share the raw partition numbers out, every one active."""
    wait_until(lambda: shared_out(stack, workers), f"{len(workers)} workers sharing the raw "
               f"partitions out", explain=lambda: str([w.partitions() for w in workers]))  # fmt: skip


def stable_members(stack) -> int:
    """Members of the worker's consumer group once it is stable (0 while it rebalances)."""
    from confluent_kafka import ConsumerGroupState
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": stack.endpoints["kafka_bootstrap"]})
    group = stack.env["HUB_WORKER_ID"]
    description = admin.describe_consumer_groups([group], request_timeout=10)[group].result()
    return len(description.members) if description.state == ConsumerGroupState.STABLE else 0
