"""Availability written back into a channel's own database: the records of the write-back topic
(``writeback.availability``) that a Kafka Connect JDBC sink upserts into a table the channel reads
(the shop's ``shop.channel_availability``), one row per article and channel group.

A sink needs to know each field's type, so the records are Kafka Connect JSON with their schema
(``{"schema": …, "payload": …}``, the ``JsonConverter`` with ``schemas.enable``): the key is the
row's primary key (GTIN, group), the value the row, a tombstone deletes it. ``available`` is a Connect
``Decimal`` (exact, scale ``SCALE``), ``updated_at`` a Connect ``Timestamp`` (the source commit
of the change behind the figure).

Only group figures are written back: a channel sells from its groups (the web shop from
``web-fulfilment``), not from single locations. Pure: no Kafka, no database.
"""

from __future__ import annotations

import base64
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from hub.core.records import Document, Output, Tombstone

WRITEBACK = "writeback.availability"
SCALE = 3

KEY_SCHEMA = {
    "type": "struct", "name": "hub.writeback.AvailabilityKey", "optional": False,
    "fields": [{"field": "gtin", "type": "string", "optional": False},
               {"field": "group_name", "type": "string", "optional": False}],
}  # fmt: skip
VALUE_SCHEMA = {
    "type": "struct", "name": "hub.writeback.Availability", "optional": True,
    "fields": [
        {"field": "gtin", "type": "string", "optional": False},
        {"field": "group_name", "type": "string", "optional": False},
        {"field": "channel", "type": "string", "optional": True},
        {"field": "available", "type": "bytes", "optional": False,
         "name": "org.apache.kafka.connect.data.Decimal", "version": 1,
         "parameters": {"scale": str(SCALE)}},
        {"field": "unit", "type": "string", "optional": True},
        {"field": "source_position", "type": "string", "optional": False},
        {"field": "updated_at", "type": "int64", "optional": False,
         "name": "org.apache.kafka.connect.data.Timestamp", "version": 1},
    ],
}  # fmt: skip


def connect_decimal(value: Decimal, scale: int = SCALE) -> str:
    """``value`` as Connect's ``Decimal`` in JSON: the unscaled integer, big-endian two's
    complement, base64. Rounds half even past ``scale`` decimals (no stock figure has more)."""
    unscaled = int(value.scaleb(scale).to_integral_value())
    size = max(1, (unscaled.bit_length() + 8) // 8)
    return base64.b64encode(unscaled.to_bytes(size, "big", signed=True)).decode()


def writeback_record(output: Output) -> tuple[bytes, bytes | None] | None:
    """The write-back record (key, value; None: delete the row) of an output of
    ``unified.availability``; None when it is not a group figure (nothing to write back)."""
    article, _, scope = output.key.partition("@")
    if not scope.startswith("group:"):
        return None
    key = orjson.dumps({"schema": KEY_SCHEMA,
                        "payload": {"gtin": article, "group_name": scope.removeprefix("group:")}})  # fmt: skip
    if isinstance(output, Tombstone):
        return key, None
    if not isinstance(output, Document):  # the availability stage makes documents only
        return None
    figure: dict[str, Any] = output.content
    committed = datetime.fromisoformat(str(figure["source_committed_at"]))
    row = {
        "gtin": article,
        "group_name": scope.removeprefix("group:"),
        "channel": figure.get("channel"),
        "available": connect_decimal(Decimal(str(figure["available"]))),
        "unit": figure.get("unit"),
        "source_position": figure["source_position"],
        "updated_at": int(committed.timestamp() * 1000),
    }
    return key, orjson.dumps({"schema": VALUE_SCHEMA, "payload": row})
