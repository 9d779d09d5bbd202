"""Decode Debezium change events (JSON converter, ``schemas.enable=false``).

Contract: ``decode`` is pure and never raises anything but ``InvalidEvent``. A Debezium tombstone
(the null value that follows a delete) decodes to ``None``: it exists for log compaction of the raw
topic and carries no change of its own.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal, cast

import orjson

from hub.errors import InvalidEvent

Op = Literal["c", "u", "d", "r"]
WRAPPER = (
    '{"schema", "payload"} wrapper (Kafka Connect\'s JsonConverter with schemas.enable=true; the '
    "hub reads it, or set value.converter.schemas.enable=false on the connector)"
)
_OPS: frozenset[str] = frozenset({"c", "u", "d", "r"})


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """Where a change came from, read from the envelope's ``source`` block."""

    connector: str  # postgresql, mariadb, ...
    name: str  # the connector's topic.prefix
    db: str
    table: str  # <schema>.<table> (Postgres) or <db>.<table> (MariaDB)
    position: str  # sorts in log order within one source
    committed_at: datetime
    snapshot: bool
    txid: int | None = None  # PostgreSQL: the transaction's id (32 bits), for snapshot visibility


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One row change. ``before`` is None for inserts and snapshot reads, ``after`` for deletes."""

    op: Op
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    source: SourceInfo
    key: Mapping[str, Any] | None


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent("malformed_json", f"{what} is not JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise InvalidEvent(
            "malformed_envelope", f"{what} is a JSON {type(parsed).__name__}, not an object"
        )
    return parsed


def _row(envelope: Mapping[str, Any], field: str) -> Mapping[str, Any] | None:
    row = envelope.get(field)
    if row is not None and not isinstance(row, dict):
        raise InvalidEvent("malformed_envelope", f"'{field}' is not an object")
    return cast("Mapping[str, Any] | None", row)


def postgres_position(source: Mapping[str, Any]) -> str:
    """``pg:<commit lsn>:<event lsn>`` as fixed-width hex, so positions sort as strings.

    Debezium's ``sequence`` is ``["<last commit lsn>", "<event lsn>"]``; snapshot reads carry no
    commit lsn and all share the snapshot's lsn.
    """
    lsn = source.get("lsn")
    if not isinstance(lsn, int):
        raise InvalidEvent("malformed_source", "postgres source block has no integer 'lsn'")
    commit = 0
    sequence = source.get("sequence")
    if isinstance(sequence, str):
        try:
            parts = orjson.loads(sequence)
        except orjson.JSONDecodeError:
            raise InvalidEvent("malformed_source", f"unreadable sequence {sequence!r}") from None
        if isinstance(parts, list) and parts and parts[0] is not None:
            commit = int(parts[0])
    return f"pg:{commit:016x}:{lsn:016x}"


def mariadb_position(source: Mapping[str, Any]) -> str:
    """``mdb:<binlog file>:<position>:<row in event>``, fixed-width so positions sort as strings.

    Snapshot reads all share the binlog position the snapshot started at.
    """
    file, pos, row = source.get("file"), source.get("pos"), source.get("row", 0)
    if not isinstance(file, str) or not isinstance(pos, int) or not isinstance(row, int):
        raise InvalidEvent("malformed_source", "mariadb source block lacks file/pos/row")
    return f"mdb:{file}:{pos:016x}:{row:08x}"


def _position(source: Mapping[str, Any]) -> str:
    connector = source.get("connector")
    if connector == "postgresql":
        return postgres_position(source)
    if connector in ("mariadb", "mysql"):
        return mariadb_position(source)
    raise InvalidEvent("unsupported_connector", f"no position rule for connector {connector!r}")


def committed_at(source: Mapping[str, Any]) -> datetime:
    """When the source committed the change, from Debezium's ``source`` block (microseconds when
    the connector gives them). ``KeyError`` when it gives no time at all."""
    micros = source.get("ts_us")
    if isinstance(micros, int):
        return datetime.fromtimestamp(micros / 1_000_000, UTC)
    return datetime.fromtimestamp(int(source["ts_ms"]) / 1000, UTC)


def _source_info(envelope: Mapping[str, Any]) -> SourceInfo:
    source = envelope.get("source")
    if not isinstance(source, dict):
        raise InvalidEvent("malformed_envelope", "missing 'source' block")
    try:
        committed = committed_at(source)
        schema = source.get("schema")
        table = f"{schema}.{source['table']}" if schema else f"{source['db']}.{source['table']}"
        return SourceInfo(
            connector=str(source["connector"]),
            name=str(source["name"]),
            db=str(source["db"]),
            table=table,
            position=_position(source),
            committed_at=committed,
            snapshot=str(source.get("snapshot", "false")) not in ("false", "None"),
            txid=source["txId"] if isinstance(source.get("txId"), int) else None,
        )
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise InvalidEvent("malformed_source", f"source block unreadable: {exc!r}") from None


def _key(raw: bytes | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    key = _json_object(raw, "key")
    if "payload" in key and "schema" in key and isinstance(key["payload"], dict):
        return dict(key["payload"])
    return key


def decode(key: bytes | None, value: bytes | None) -> ChangeEvent | None:
    """Decode one raw record; ``None`` for a Debezium tombstone. Raises ``InvalidEvent``."""
    if value is None:
        return None
    envelope = _json_object(value, "value")
    # A converter with schemas.enable=true wraps the envelope; accept both.
    if "payload" in envelope and "schema" in envelope:
        payload = envelope["payload"]
        if not isinstance(payload, dict):
            raise InvalidEvent("malformed_envelope", f"'payload' is not an object in a {WRAPPER}")
        envelope = _with_decimals_as_text(payload, envelope["schema"])
    op = envelope.get("op")
    if op is None:
        if "payload" in envelope or "schema" in envelope:
            raise InvalidEvent(
                "malformed_envelope",
                f"no 'op': a half {WRAPPER} (it has {sorted(envelope)}, both are needed)",
            )
        raise InvalidEvent(
            "malformed_envelope",
            f"no 'op': not a Debezium change event (it has {sorted(envelope)[:8]}); a connector "
            "transform such as ExtractNewRecordState unwraps events, which the hub needs whole",
        )
    if op == "t":
        source = envelope.get("source") or {}
        raise InvalidEvent(
            "truncate",
            f"{source.get('schema') or source.get('db')}.{source.get('table')} was truncated: no row "
            "images to map; re-snapshot the table (hub stack) or replay after deciding what it means",
        )
    if op not in _OPS:
        raise InvalidEvent("unsupported_op", f"op {op!r} (expected one of c, u, d, r)")
    before, after = _row(envelope, "before"), _row(envelope, "after")
    if op == "d" and before is None:
        raise InvalidEvent("malformed_envelope", "delete without 'before'")
    if op != "d" and after is None:
        raise InvalidEvent("malformed_envelope", f"op {op!r} without 'after'")
    return ChangeEvent(
        op=cast("Op", op),
        before=before,
        after=after,
        source=_source_info(envelope),
        key=_key(key),
    )


DECIMAL = "org.apache.kafka.connect.data.Decimal"
VARIABLE_DECIMAL = "io.debezium.data.VariableScaleDecimal"


def _decimal_text(encoded: str, scale: int) -> str:
    """Kafka Connect's Decimal: base64 of a big-endian two's-complement unscaled integer."""
    try:
        unscaled = int.from_bytes(base64.b64decode(encoded, validate=True), "big", signed=True)
    except (binascii.Error, ValueError):
        raise InvalidEvent("bad_value", f"{encoded!r} is not a base64 decimal") from None
    return str(Decimal(unscaled).scaleb(-scale))


def _with_decimals_as_text(payload: dict[str, Any], schema: Any) -> dict[str, Any]:
    """Rewrite precise-mode decimals of ``before``/``after`` as the strings string mode would give."""
    rows = {f.get("field"): f for f in (schema or {}).get("fields", []) if isinstance(f, dict)}
    result = dict(payload)
    for image in ("before", "after"):
        row, row_schema = payload.get(image), rows.get(image)
        if not isinstance(row, dict) or not isinstance(row_schema, dict):
            continue
        converted = dict(row)
        for column in row_schema.get("fields", []):
            name, value = column.get("field"), row.get(column.get("field"))
            if value is None:
                continue
            if column.get("name") == DECIMAL:
                converted[name] = _decimal_text(
                    value, int(column.get("parameters", {}).get("scale", 0))
                )
            elif column.get("name") == VARIABLE_DECIMAL and isinstance(value, dict):
                converted[name] = _decimal_text(value.get("value", ""), int(value.get("scale", 0)))
        result[image] = converted
    return result
