"""``hub repair``: read the source rows behind unified keys again and republish the truth over
whatever the keys were marked with (a wrong record, a forged position, a lost delete).

For each key it finds the rows it is made of (the row and the rows it looks up, as ``hub
reconcile`` maps them) at a position read from the source just before (``hub.sources``), and
asks the active worker to apply them (``hub.core.repair``, topic ``hub.repairs``). A key no
source row produces any more is dropped (a tombstone). Then it waits until the topics show every
repaired key at the repair's position or later.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from confluent_kafka import Producer, murmur2
from rich.console import Console

from hub.connectors import ConnectorDefinition, load_definitions
from hub.core.positions import leap
from hub.core.repair import REPAIRS_TOPIC, DropRepair, Expected, RowRepair, encode
from hub.errors import StackError
from hub.models import MODELS
from hub.reconcile import (
    comparable,
    compare,
    differing_keys,
    open_sources,
    read_topic_state,
    topic_state,
    truth,
)
from hub.settings import HubSettings
from hub.sources import position_then_snapshot
from hub.topics import registry

ROUNDS = 3


@dataclass(frozen=True)
class Asked:
    topic: str  # unified topic name
    key: str
    system: str
    position: str
    drop: bool


def repair(
    settings: HubSettings, keys: list[str], differing: bool, wait: float, console: Console
) -> bool:
    """Repair ``keys`` (or every key ``hub reconcile`` finds differing); True once the topics
    show them all as the sources have them. A key changed in its source between the read and the
    worker's repair is read and repaired again (three rounds at most). ``StackError`` for a key
    it cannot place."""
    only_differing = differing
    for round_ in range(1, ROUNDS + 1):
        requests, asked = _plan(settings, keys, only_differing)
        if not asked:
            if round_ == 1:
                console.print("[green]✓[/] nothing differs: nothing to repair")
            return True
        if round_ > 1:
            console.print(f"{len(asked)} keys changed meanwhile: reading them again")
        _send(settings.bootstrap, requests)
        console.print(f"[green]✓[/] {len(requests)} repair requests for {len(asked)} keys sent to "
                      f"{REPAIRS_TOPIC}; waiting for the worker…")  # fmt: skip
        if not _wait(settings, asked, wait, console):
            return False
        keys, only_differing = [item.key for item in asked], True
    console.print(f"[red]✗[/] {', '.join(keys)}: still changing after {ROUNDS} rounds")
    return False


def _plan(
    settings: HubSettings, keys: list[str], only_differing: bool
) -> tuple[list[RowRepair | DropRepair], list[Asked]]:
    """Read the sources (each in a snapshot) and the topics; the requests that repair ``keys``
    (only those that differ, or every differing key when ``keys`` is empty)."""
    definitions = load_definitions()
    connections, unchecked = open_sources(settings, definitions)
    try:
        marks = {
            system: position_then_snapshot(conn, definitions[system].connection.kind)
            for system, conn in connections.items()
        }
        found = truth(definitions, connections, datetime.now(UTC))
    finally:
        for conn in connections.values():
            conn.close()
    state = read_topic_state(settings)
    actual, seen = state.records, state.marks
    if only_differing:
        wrong = differing_keys(compare(*comparable(found.expected, state, set(connections))))
        keys = sorted(set(wrong) & set(keys)) if keys else wrong
    run = f"repair-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    now = datetime.now(UTC)
    topic_ids = {spec.name: spec.id for spec in registry().topics.values()}
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    drops: list[DropRepair] = []
    asked: list[Asked] = []
    for key in keys:
        topic = _topic_of(key, found.expected, actual)
        expected = Expected(topic_id=topic_ids[topic], key=key, position=seen.get((topic, key)))
        origins = found.origins.get((topic, key))
        if origins:
            for origin in origins:  # the rows it looks up first, then its own
                rows.setdefault(
                    (origin.system, origin.table, orjson.dumps(origin.key).decode()),
                    {"origin": origin, "expect": []},
                )
            own = origins[-1]
            rows[(own.system, own.table, orjson.dumps(own.key).decode())]["expect"].append(expected)
            asked.append(Asked(topic, key, origins[-1].system, marks[origins[-1].system][0], False))
            continue
        system = str(actual[topic][key].get("source_system"))
        if system not in marks:
            why = unchecked.get(system, f"no definition of {system!r}")
            raise StackError(f"{key}: its source {system} cannot be read ({why})")
        position, snapshot = marks[system]
        drops.append(DropRepair(system=system, topic_id=expected.topic_id, key=key,
                                expect=expected.position, position=position, snapshot=snapshot,
                                committed_at=now, id=run))  # fmt: skip
        asked.append(Asked(topic, key, system, position, True))
    requests: list[RowRepair | DropRepair] = []
    for planned in rows.values():
        origin = planned["origin"]
        position, snapshot = marks[origin.system]
        requests.append(RowRepair(system=origin.system, table=origin.table, key=origin.key,
                                  row=origin.row, expect=planned["expect"], position=position,
                                  snapshot=snapshot, committed_at=now, id=run))  # fmt: skip
    return [*requests, *drops], asked


def _topic_of(
    key: str, expected: dict[str, dict[str, Any]], actual: dict[str, dict[str, Any]]
) -> str:
    # The engine's topics only: a derived figure (unified.availability shares the inventory's
    # keys) is made again from its levels once they are repaired.
    mapped = {spec.name for spec in registry().topics.values() if spec.model in MODELS}
    places = sorted({t for t, records in (*expected.items(), *actual.items())
                     if key in records and t in mapped})  # fmt: skip
    if not places:
        raise StackError(
            f"{key}: on no unified topic and made by no source row of a system that can be read "
            "(hub reconcile lists the keys that differ)"
        )
    if len(places) > 1:
        raise StackError(f"{key}: a key of {', '.join(places)}; repair is per key of one topic")
    return places[0]


def _send(bootstrap: str, requests: list[RowRepair | DropRepair]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                         "acks": "all", "log_level": 3})  # fmt: skip
    failures: list[str] = []

    def report(err: Any, msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    partitions = registry()[REPAIRS_TOPIC].partitions
    definitions = load_definitions()
    for request in requests:
        key, where = route(request, definitions, partitions)
        for partition in where:
            producer.produce(REPAIRS_TOPIC, encode(request), key, partition, on_delivery=report)
    left = producer.flush(30)
    if left or failures:
        raise StackError(f"could not write the repair requests to {REPAIRS_TOPIC}: "
                         f"{failures or f'{left} not delivered'}")  # fmt: skip


def route(
    request: RowRepair | DropRepair, definitions: Mapping[str, ConnectorDefinition],
    partitions: int,
) -> tuple[bytes, list[int]]:  # fmt: skip
    """The key and the partitions of ``hub.repairs`` a request goes to: a row's to the partition
    number its raw topic has it in (its Kafka key hashed as Kafka's producers hash it), where the
    worker holding that number applies it; a reference row's to every partition (every worker
    holds its rows); a dropped key's to the one its own key hashes to (no source row makes it any
    more: any one worker may drop it, once)."""
    every = list(range(partitions))
    if isinstance(request, DropRepair):
        key = f"{request.topic_id}:{request.key}".encode()
        return key, [murmur2(key, partitions)]
    definition = definitions[request.system]
    key = definition.kafka_key(request.table, request.key, request.row)
    if request.table in definition.reference:
        return key, every
    return key, [murmur2(key, partitions)]


def _wait(settings: HubSettings, asked: list[Asked], wait: float, console: Console) -> bool:
    deadline = time.monotonic() + wait
    pending = list(asked)
    while True:
        state = topic_state(settings)
        for item in list(pending):
            record = state[item.topic].get(item.key)
            if item.drop:
                done = record is None
            else:
                ahead = None if record is None else leap(item.position, record["source_position"])
                done = ahead is not None and ahead >= 0
            if done:
                pending.remove(item)
                verb = "dropped" if item.drop else "republished"
                console.print(f"[green]✓[/] {item.key}: {verb} from {item.system}")
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(1)
    for item in pending:
        console.print(f"[red]✗[/] {item.key}: not repaired within {wait:.0f} s; is a worker "
                      f"active ('hub stack status')? See 'hub dlq list' for a bad_repair")  # fmt: skip
    return not pending
