"""``hub tail``: print declared topics' records live, for people (or as JSON lines)."""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, TopicPartition
from rich.console import Console

from hub.settings import HubSettings
from hub.topics import TopicSpec, registry


def _describe(spec: TopicSpec, value: dict[str, Any]) -> str:
    if spec.model == "InventoryLevel":
        reserved = f" reserved {value['reserved']}" if value.get("reserved") is not None else ""
        return f"on_hand [bold]{value['on_hand']:>9}[/]{reserved} {value['unit']}"
    if spec.model == "CustomerRecord":
        name = " ".join(p for p in (value.get("given_name"), value.get("family_name")) if p)
        return f"{name or '?'} <{value.get('email') or '-'}> {value.get('phone_e164') or ''}"
    if spec.model == "OrderLine":
        return f"{value['status']:<9} {value['quantity']} x {value['gtin']} @ {value['unit_price']}"
    if spec.model == "Availability":
        gives = ", ".join(f"{s['contributes']} at {s['location_id']}"
                          for s in value["explanation"] if s["contributes"] != "0")  # fmt: skip
        return (f"available [bold]{value['available']:>7}[/] {value['unit']}"
                f" ({gives or 'none anywhere'})")  # fmt: skip
    if spec.model == "GoldenCustomer":
        fields = value["fields"]
        name = " ".join(
            str(fields[f]["value"]) for f in ("given_name", "family_name") if f in fields
        )
        email = fields.get("email", {}).get("value", "-")
        return (f"[bold]{name or '?'}[/] <{email}>: {len(value['members'])} records "
                f"({', '.join(value['members'])})")  # fmt: skip
    if spec.model == "CustomerLink":
        return f"→ {value['golden_id']}"
    if spec.model == "CustomerEvent":
        into = value["into"] if isinstance(value["into"], str) else ", ".join(value["into"])
        return f"[yellow]{value['event']}[/] into {into}"
    if spec.model == "CustomerErasure":
        return f"[red]erased[/] {', '.join(value['records'])}"
    if spec.model == "StockAlert":
        colour = "red" if value["status"] == "firing" else "green"
        return f"[{colour}]{value['event'].replace('_', ' ')}[/] (value {value['value']})"
    return str(value)


def _line(spec: TopicSpec, key: str, value: dict[str, Any] | None, appended: datetime) -> str:
    short = spec.name.removeprefix("unified.")
    if value is None:
        return f"[magenta]{short:<17}[/] [red]{key:<34}[/] deleted"
    # An alert's cause: the figure it carries (none when withdrawn).
    cause = value.get("availability") or value if spec.model == "StockAlert" else value
    committed = datetime.fromisoformat(cause.get("source_committed_at") or value["emitted_at"])
    lag_ms = (appended - committed).total_seconds() * 1000
    made_by = ":".join(str(cause[k]) for k in ("source_system", "source_op") if k in cause)
    return (
        f"[magenta]{short:<17}[/] [cyan]{key:<34}[/] {_describe(spec, value)}  "
        f"[dim]{made_by} {lag_ms:6.1f} ms after commit[/]"
    )


def tail(
    settings: HubSettings, topic_ids: Sequence[str], from_beginning: bool, limit: int, as_json: bool
) -> None:
    """Blocks until Ctrl-C/SIGTERM or ``limit`` records."""
    specs = [registry()[topic_id] for topic_id in topic_ids]
    by_name = {spec.name: spec for spec in specs}
    consumer = Consumer({
        "bootstrap.servers": settings.bootstrap,
        "group.id": "hub-tail",
        "enable.auto.commit": False,
        "enable.partition.eof": False,
    })  # fmt: skip
    start = OFFSET_BEGINNING if from_beginning else OFFSET_END
    consumer.assign([TopicPartition(s.name, p, start) for s in specs for p in range(s.partitions)])
    console = Console(highlight=False, soft_wrap=True)
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    if not as_json:
        names = ", ".join(by_name)
        console.print(f"[bold]Tailing {names}[/] on {settings.bootstrap} (Ctrl-C to stop)")
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
            if as_json:
                line = {"topic": msg.topic(), "partition": msg.partition(), "offset": msg.offset(),
                        "key": key, "value": value}  # fmt: skip
                sys.stdout.write(orjson.dumps(line).decode() + "\n")
                sys.stdout.flush()
                continue
            spec = by_name[msg.topic() or ""]
            if spec.model:
                appended = datetime.fromtimestamp(msg.timestamp()[1] / 1000, UTC)
                console.print(_line(spec, key, value, appended))
            else:
                console.print(f"{key}  {value}")
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
