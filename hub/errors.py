"""The hub's exceptions.

``InvalidEvent`` is the one exception for bad input: the business core raises it with a reason, and
only the agent boundary catches it and hands the event to the dead-letter topic. Everything else is
an operational error and is not dead-lettered.
"""

from __future__ import annotations


class InvalidEvent(Exception):
    """An input event the hub cannot turn into canonical records.

    ``reason`` is short and stable (it becomes a DLQ header and a metric label); ``detail`` says
    what exactly was wrong with this event.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class DeadLetterFlood(RuntimeError):
    """Too many events in a row (or too large a share) were invalid: stop instead of swallowing."""


class StackError(RuntimeError):
    """A component of the local stack failed; the message says which, where its log is, what to do."""


class RegistryError(ValueError):
    """The topic registry or a connector definition is malformed."""


# Every reason an event can be dead-lettered with, and what to do about it (the README's table of
# reasons is checked against this, and `hub dlq replay --reason` accepts only these).
REASONS: dict[str, str] = {
    "malformed_json": "The record is not JSON: a producer other than the connector wrote it, or a "
    "converter other than JSON. Fix the connector's converter; replay does not help the record.",
    "malformed_envelope": "JSON but not a Debezium change event (no op, no source, a half "
    "schema/payload wrapper, an unwrapping transform). Fix the connector config; the detail says "
    "what the record looks like.",
    "malformed_source": "The source block lacks the fields positions are made of (lsn; binlog "
    "file/pos/row) or a commit time. Check the Debezium version and the connector.",
    "unsupported_connector": "A connector the hub has no position rule for (only postgresql, "
    "mariadb, mysql). Capture the system with one of those.",
    "unsupported_op": "An op other than c, u, d, r (or t). Check what wrote the record.",
    "truncate": "A TRUNCATE has no rows to map. Re-read the table (hub repair --differing) or "
    "decide what it means, then replay.",
    "missing_key": "A change without a row key (a table without a primary key, or key fields a "
    "mapping cannot derive). Give the table a primary key or fix the mapping, then replay.",
    "no_route": "A table captured with no mapping and no lookup needing it. Add a mapping to the "
    "system's definition (or stop capturing the table), restart the worker, replay.",
    "missing_column": "A mapping names a column the row does not have (renamed or dropped "
    "upstream). Fix the mapping, restart the worker, replay.",
    "bad_value": "A value a transform cannot read (a phone that is no phone, an email that is no "
    "email, a GTIN with a wrong "
    "check digit, more decimals than the scale). Fix the source row (its change comes again) or "
    "the mapping, then replay.",
    "invalid_record": "The mapped record breaks the model (a required field null, a location id "
    "with spaces). Fix the mapping or the source row, then replay.",
    "unavailable_value": "An unchanged TOASTed column whose last value the hub never saw. Declare "
    "it under toasted: in the definition, or set REPLICA IDENTITY FULL on the table, then re-read "
    "the row (hub repair).",
    "implausible_position": "The change claims a log position far ahead of anything its source "
    "has written: a record not written by the connector (see Security). Find who wrote it; if the "
    "source really wrote that much, raise HUB_WORKER_MAX_POSITION_LEAP and replay.",
    "bad_repair": "A record on hub.repairs that is not a repair request from hub repair. Find "
    "who wrote it; run hub repair again.",
    "unknown_location": "A stock level of a location the stock network (connectors/network.yaml) "
    "does not declare: counted nowhere rather than somewhere wrong. Declare the location (and its "
    "groups), restart the worker, replay.",
    "unit_mismatch": "An article whose locations report stock in different units: no total can "
    "add them. Fix the unit at the source (its change comes again) or in the mapping, then replay.",
    "no_identity": "A customer record with no email, no phone and no name: nothing tells who it "
    "is, so it joins no golden customer (it stays on unified.customer.records). Fill one in at the "
    "source: its next change joins it; replay does not help.",
    "invalid_request": "A record of hub.customer.requests that is no manual decision (link or "
    "unlink of two different records, with who, why and when): write decisions with hub customer "
    "link|unlink; replay does not help.",
    "internal_error": "A bug met by this input: report it with the dead letter; replay after the "
    "fix.",
}
