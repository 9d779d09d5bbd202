"""``hub dlq``: read the dead-letter topic readably, and replay dead letters after a fix.

Replaying re-produces a dead letter's original key and value to its original topic; the worker
then processes it like any other record. Replay breaks order: an old update replayed after a newer
one is applied after it. Replay what the fix concerns (``--reason``, ``--topic``), not everything.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from rich.console import Console
from rich.table import Table

from hub.kafka_io import read_to_end
from hub.settings import HubSettings
from hub.topics import registry

REPLAY_GROUP = "hub-dlq-replay"


@dataclass(frozen=True)
class DeadLetter:
    partition: int
    offset: int
    appended: datetime
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]

    @property
    def reason(self) -> str:
        return self.headers.get("hub.dlq.reason", "?")

    @property
    def source(self) -> str:
        return self.headers.get("hub.dlq.topic", "?")

    @property
    def replayable(self) -> bool:
        """Rows dead-lettered from the engine's state have no original record to replay."""
        return "hub.dlq.row_ref" not in self.headers and self.source in _raw_names()

    @property
    def failed_replay(self) -> bool:
        """It had been replayed once already and failed again: a person should look first."""
        return "hub.dlq.replayed_from" in self.headers


def _text(value: str | bytes | None) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else (value or "")


def _headers(raw: Any) -> dict[str, str]:
    pairs = raw.items() if isinstance(raw, dict) else (raw or [])
    return {str(k): _text(v) for k, v in pairs}


def _raw_names() -> set[str]:
    return {spec.name for spec in registry().topics.values() if spec.kind == "raw"}


def read(settings: HubSettings, group: str | None = None) -> Iterator[DeadLetter]:
    """Every dead letter from the start (or from ``group``'s committed offsets) to the current end."""
    for msg in read_to_end(settings.bootstrap, [registry()["hub.dlq"]], group=group):
        yield DeadLetter(
            msg.partition() or 0,
            msg.offset() or 0,
            datetime.fromtimestamp(msg.timestamp()[1] / 1000, UTC),
            msg.key(),
            msg.value(),
            _headers(msg.headers()),
        )


def show(settings: HubSettings, limit: int, as_json: bool) -> int:
    """Print dead letters (newest last); returns how many there are."""
    import orjson

    letters = list(read(settings))
    if as_json:
        for letter in letters[-limit:] if limit else letters:
            print(orjson.dumps({
                "offset": letter.offset, "appended": letter.appended, "reason": letter.reason,
                "headers": letter.headers, "key": (letter.key or b"").decode(errors="replace"),
                "value": (letter.value or b"").decode(errors="replace")[:4000],
            }).decode())  # fmt: skip
        return len(letters)
    table = Table(title=f"{len(letters)} dead letters in {registry()['hub.dlq'].name}")
    for column in ("offset", "appended (UTC)", "from", "reason", "detail"):
        table.add_column(column, overflow="fold")
    for letter in letters[-limit:] if limit else letters:
        origin = (
            letter.headers.get("hub.dlq.partition", "?"),
            letter.headers.get("hub.dlq.offset", "?"),
        )
        where = f"{letter.source}[{origin[0]}]@{origin[1]}"
        table.add_row(str(letter.offset), letter.appended.strftime("%Y-%m-%d %H:%M:%S"), where,
                      letter.reason, letter.headers.get("hub.dlq.detail", "")[:160])  # fmt: skip
    Console().print(table)
    return len(letters)


def replay(
    settings: HubSettings, reason: str | None, topic: str | None, dry_run: bool, console: Console,
    again: bool = False,
) -> int:  # fmt: skip
    """Re-produce the selected dead letters not replayed yet; returns how many were replayed.

    Letters that failed again after an earlier replay are left alone unless ``again``.
    """
    producer = Producer({"bootstrap.servers": settings.bootstrap, "enable.idempotence": True,
                         "partitioner": "murmur2_random"})  # fmt: skip
    chosen, skipped, last = 0, 0, {}
    for letter in read(settings, group=REPLAY_GROUP):
        last[letter.partition] = letter.offset
        if (reason and letter.reason != reason) or (topic and letter.source != topic):
            continue
        if not letter.replayable or (letter.failed_replay and not again):
            skipped += 1
            continue
        chosen += 1
        if not dry_run:
            headers: list[tuple[str, str | bytes | None]] = [
                ("hub.replayed_from", f"{registry()['hub.dlq'].name}:{letter.offset}")
            ]
            producer.produce(letter.source, key=letter.key, value=letter.value, headers=headers)
    if dry_run:
        console.print(f"would replay {chosen} dead letters ({skipped} left alone)")
        return chosen
    if producer.flush(30) != 0:
        raise RuntimeError(
            "some replayed records were not acknowledged by Kafka; nothing committed"
        )
    if last:
        spec = registry()["hub.dlq"]
        committer = Consumer({"bootstrap.servers": settings.bootstrap, "group.id": REPLAY_GROUP})
        committer.commit(offsets=[TopicPartition(spec.name, p, o + 1) for p, o in last.items()],
                         asynchronous=False)  # fmt: skip
        committer.close()
    console.print(
        f"replayed {chosen} dead letters to their topics; {skipped} left alone (rows from the "
        "engine's state, re-evaluated when their source row changes; or failed again after a replay: "
        "use --again once fixed)"
    )
    return chosen
