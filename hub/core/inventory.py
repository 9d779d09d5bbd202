"""Inventory rules: each system's stock rows → canonical ``InventoryLevel`` records."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from hub.core.debezium import ChangeEvent, micro_timestamp
from hub.core.records import Output, Tombstone, Upsert
from hub.errors import InvalidEvent
from hub.models import InventoryLevel, inventory_key

UNIFIED_INVENTORY = "unified.inventory"
_EAN = re.compile(r"^[0-9]{13}$")
_STORE = re.compile(r"^[A-Za-z0-9_-]+$")


def _text(row: Mapping[str, Any], column: str, pattern: re.Pattern[str]) -> str:
    value = row.get(column)
    if not isinstance(value, str):
        raise InvalidEvent("bad_value", f"{column}={value!r} is not text")
    # char(n) columns arrive blank-padded.
    value = value.strip()
    if not pattern.match(value):
        raise InvalidEvent("bad_value", f"{column}={value!r} does not match {pattern.pattern}")
    return value


def _int(row: Mapping[str, Any], column: str) -> int:
    value = row.get(column)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidEvent("bad_value", f"{column}={value!r} is not an integer")
    return value


def pos_stock(event: ChangeEvent, emitted_at: datetime) -> list[Output]:
    """``pos.stock`` (store_code, ean, qty, last_count_at) → ``InventoryLevel`` at ``store:<code>``.

    A delete becomes a tombstone for the key. Raises ``InvalidEvent`` for a row it cannot read.
    """
    row = event.before if event.op == "d" else event.after
    if row is None:  # decode() guarantees a row; keep mypy and future callers honest
        raise InvalidEvent("malformed_envelope", "no row image")
    sku = _text(row, "ean", _EAN)
    location_id = f"store:{_text(row, 'store_code', _STORE)}"
    key = inventory_key(sku, location_id)
    if event.op == "d":
        return [Tombstone(UNIFIED_INVENTORY, key)]
    try:
        level = InventoryLevel(
            sku=sku,
            location_id=location_id,
            location_type="store",
            on_hand=_int(row, "qty"),
            counted_at=micro_timestamp(row.get("last_count_at"), "last_count_at"),
            source_system="pos",
            source_table=event.source.table,
            source_position=event.source.position,
            source_op=event.op,
            source_committed_at=event.source.committed_at,
            emitted_at=emitted_at,
        )
    except ValidationError as exc:
        raise InvalidEvent("invalid_record", str(exc.errors(include_url=False))) from None
    return [Upsert(UNIFIED_INVENTORY, key, level)]
