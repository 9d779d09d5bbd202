"""``hub tail``: print a declared topic's records live, for people (or as JSON lines)."""

from __future__ import annotations

import signal
import sys
from datetime import UTC, datetime
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, TopicPartition
from rich.console import Console

from hub.settings import HubSettings
from hub.topics import registry


def _inventory_line(key: str, value: dict[str, Any] | None, appended: datetime) -> str:
    if value is None:
        return f"[red]{key:<32}[/] deleted"
    committed = datetime.fromisoformat(value["source_committed_at"])
    lag_ms = (appended - committed).total_seconds() * 1000
    return (
        f"[cyan]{key:<32}[/] on_hand [bold]{value['on_hand']:>5}[/]  "
        f"{value['source_system']}:{value['source_op']} {value['source_position']}  "
        f"[dim]{lag_ms:7.1f} ms after commit[/]"
    )


def tail(
    settings: HubSettings, topic_id: str, from_beginning: bool, limit: int, as_json: bool
) -> None:
    """Blocks until Ctrl-C/SIGTERM or ``limit`` records."""
    spec = registry()[topic_id]
    consumer = Consumer({
        "bootstrap.servers": settings.bootstrap,
        "group.id": "hub-tail",
        "enable.auto.commit": False,
        "enable.partition.eof": False,
    })  # fmt: skip
    start = OFFSET_BEGINNING if from_beginning else OFFSET_END
    consumer.assign([TopicPartition(spec.name, p, start) for p in range(spec.partitions)])
    console = Console(highlight=False, soft_wrap=True)
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    if not as_json:
        console.print(f"[bold]Tailing {spec.name}[/] on {settings.bootstrap} (Ctrl-C to stop)")
    seen = 0
    try:
        while not stopping and (limit == 0 or seen < limit):
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                console.print(f"[red]{msg.error()}[/]")
                continue
            seen += 1
            key = (msg.key() or b"").decode()
            raw = msg.value()
            value = orjson.loads(raw) if raw is not None else None
            appended = datetime.fromtimestamp(msg.timestamp()[1] / 1000, UTC)
            if as_json:
                sys.stdout.write(orjson.dumps({"partition": msg.partition(), "offset": msg.offset(),
                                               "key": key, "value": value}).decode() + "\n")  # fmt: skip
                sys.stdout.flush()
            elif spec.model == "InventoryLevel":
                console.print(_inventory_line(key, value, appended))
            else:
                console.print(f"{key}  {value}")
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
