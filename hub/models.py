"""Canonical models: the language every channel reads on the unified topics.

The JSON Schema files under ``schemas/`` are generated from these models (``hub schemas write``) and
a contract test fails when the two disagree. Quantities and money are exact decimals, serialised as
JSON strings so no consumer ever sees a binary float.
"""

from __future__ import annotations

import functools
import string
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

LocationType = Literal["store", "warehouse", "web"]
GTIN = Field(pattern=r"^[0-9]{13}$", description="The article's GTIN-13 (EAN-13): the common key.")


def _config(title: str, path: str) -> ConfigDict:
    return ConfigDict(
        frozen=True,
        extra="forbid",
        title=title,
        json_schema_extra={"$id": f"https://unified-commerce-hub/schemas/{path}"},
    )


@functools.cache
def _format_fields(key_format: str) -> tuple[str, ...]:
    """The field names a key format refers to, in order."""
    return tuple(name for _, name, _, _ in string.Formatter().parse(key_format) if name)


class SourceFields(BaseModel):
    """Where a canonical record came from: present on every unified record."""

    KEY_FORMAT: ClassVar[str] = ""

    @classmethod
    def key_fields(cls) -> tuple[str, ...]:
        return _format_fields(cls.KEY_FORMAT)

    @classmethod
    def key_of(cls, values: Mapping[str, object]) -> str:
        """The topic key for these field values (all of ``key_fields()`` must be present)."""
        return cls.KEY_FORMAT.format(**{name: values[name] for name in cls.key_fields()})

    @property
    def key(self) -> str:
        return self.key_of({name: getattr(self, name) for name in self.key_fields()})

    source_system: str = Field(description="The system that reported it: pos, shop, erp, ...")
    source_table: str = Field(description="<schema or database>.<table> it was captured from.")
    source_position: str = Field(
        description="Where the change sits in its source's log; sorts in log order within a source."
    )
    source_op: Literal["c", "u", "r"] = Field(
        description="c insert, u update, r snapshot read (deletes are tombstones)."
    )
    source_committed_at: datetime = Field(description="When the source transaction committed.")
    emitted_at: datetime = Field(description="When the hub produced this record.")


class InventoryLevel(SourceFields):
    """The stock of one article in one location, as its source system last reported it.

    Key on ``unified.inventory``: ``<gtin>@<location_id>``. A deleted source row becomes a tombstone.
    """

    model_config = _config("InventoryLevel", "inventory_level/v2.json")
    KEY_FORMAT: ClassVar[str] = "{gtin}@{location_id}"

    # 2 added ``unsellable``. Every version of a model reads the records of the earlier ones (a
    # field is only ever added, optional): a consumer upgrades its schema first, then reads both.
    schema_version: Literal[1, 2] = 2
    gtin: str = GTIN
    source_article_id: str = Field(description="The article's id in its source system.")
    location_id: str = Field(
        pattern=r"^(store|warehouse|web):[A-Za-z0-9_-]+$",
        description="<location_type>:<the source's location code>, e.g. store:PAR01, warehouse:W001.",
    )
    location_type: LocationType
    on_hand: Decimal = Field(description="Units physically there; POS data may go negative.")
    reserved: Decimal | None = Field(
        default=None, description="Units promised to orders (ERP allocations, shop committed)."
    )
    safety_stock: Decimal | None = Field(default=None, description="Units kept back (ERP).")
    unsellable: Decimal | None = Field(
        default=None,
        description="Units there, counted in on_hand, that cannot be sold: damaged, quality hold, "
        "expired (a warehouse's blocked stock). None: the source does not say.",
    )
    unit: str = Field(description="Unit of measure as the source states it, e.g. PCE, KG.")
    updated_at: datetime | None = Field(
        default=None, description="The row's own timestamp (last count, last update); UTC."
    )


class CustomerRecord(SourceFields):
    """One customer as one source system knows them (the golden record comes later).

    Key on ``unified.customer.records``: ``<source_system>:<source_id>``.
    """

    model_config = _config("CustomerRecord", "customer_record/v1.json")
    KEY_FORMAT: ClassVar[str] = "{source_system}:{source_id}"

    schema_version: Literal[1] = 1
    source_id: str = Field(description="The customer's id in its source (card no, CUST_NO, id).")
    email: str | None = Field(default=None, description="Trimmed, lower-case.")
    phone_e164: str | None = Field(
        default=None, pattern=r"^\+[1-9][0-9]{6,14}$", description="E.164; French numbers +33."
    )
    given_name: str | None = None
    family_name: str | None = None
    postcode: str | None = None
    marketing_consent: bool | None = Field(
        default=None, description="None when the source does not record consent."
    )
    note: str | None = Field(default=None, description="Free text kept by the source, if any.")
    created_at: datetime | None = None
    updated_at: datetime | None = None


class OrderLine(SourceFields):
    """One line of a web order or a till ticket, with its order's status and customer.

    Key on ``unified.order_lines``: ``<channel>:<order_id>:<line_no>``.
    """

    model_config = _config("OrderLine", "order_line/v1.json")
    KEY_FORMAT: ClassVar[str] = "{channel}:{order_id}:{line_no}"

    schema_version: Literal[1] = 1
    channel: Literal["web", "store"]
    order_id: str = Field(description="Web order id or till ticket id.")
    line_no: int
    gtin: str = GTIN
    quantity: Decimal
    unit_price: Decimal = Field(description="Exact decimal, in the order's currency (EUR).")
    customer_ref: str | None = Field(
        default=None,
        description="The customer's record on unified.customer.records (shop:<customer id>, "
        "pos:<loyalty card no>); unified.customer.links turns it into the golden customer. None "
        "when anonymous.",
    )
    location_id: str | None = Field(default=None, description="store:<code> for till tickets.")
    status: Literal["open", "completed", "cancelled", "voided"]
    ordered_at: datetime | None = None
    updated_at: datetime | None = None


class StockSource(BaseModel):
    """One location behind an availability figure, with every number that made it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    location_id: str = Field(pattern=r"^(store|warehouse|web):[A-Za-z0-9_-]+$")
    location_type: LocationType
    on_hand: Decimal = Field(description="As its source last reported it (a till may go below 0).")
    reserved: Decimal = Field(description="Promised to orders; 0 when the source does not say.")
    safety_stock: Decimal = Field(description="The source's own safety stock; 0 if it has none.")
    kept_back: Decimal = Field(
        description="Units the network's safety rules keep back here: the location's own rules "
        "and, in a group's figure, those of the group's channel."
    )
    unsellable: Decimal = Field(
        description="Damaged, on hold, expired; 0 if the source does not say."
    )
    available: Decimal = Field(
        ge=0, description="This location's own figure (its rules without channel), never below 0."
    )
    shortfall: Decimal = Field(ge=0, description="How far below 0 its own figure would be.")
    contributes: Decimal = Field(
        ge=0, description="What it gives this record's figure (after the channel's rules)."
    )
    source_system: str
    source_position: str = Field(description="Of the level's latest change, in its source's log.")
    source_committed_at: datetime


class AvailabilityRule(BaseModel):
    """The rules that produced an availability figure."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    network_version: int = Field(description="``version`` of the network file.")
    network_digest: str = Field(description="A hash of the whole network file as loaded.")
    group: str | None = Field(default=None, description="The location group, for a group figure.")
    channel: str | None = Field(default=None, description="The group's channel.")
    safety_rules: list[str] = Field(description="The safety rules that kept units back, by name.")


class Availability(BaseModel):
    """What can be sold of one article: at one location, or from one location group (a channel's
    stock). Every number behind the figure is in ``explanation``.

    Key on ``unified.availability``: ``<gtin>@<location id>`` or ``<gtin>@group:<group>``.
    """

    model_config = _config("Availability", "availability/v1.json")
    KEY_FORMAT: ClassVar[str] = "{gtin}@{scope_id}"

    @property
    def key(self) -> str:
        return f"{self.gtin}@{self.scope_id}"

    schema_version: Literal[1] = 1
    gtin: str = GTIN
    scope: Literal["location", "group"]
    scope_id: str = Field(description="The location id, or group:<name>.")
    channel: str | None = Field(
        default=None, description="The group's channel; None for a location."
    )
    unit: str
    available: Decimal = Field(
        ge=0,
        description="on_hand - reserved - safety_stock - kept_back - unsellable, never below 0; "
        "for a group, the sum of what its locations contribute.",
    )
    shortfall: Decimal = Field(
        ge=0,
        description="How far below 0 the figure would be (a group: the sum of its locations' own "
        "shortfalls; what the channel's rules keep back is no shortfall).",
    )
    on_hand: Decimal
    reserved: Decimal
    safety_stock: Decimal
    kept_back: Decimal
    unsellable: Decimal
    locations: int = Field(ge=0, description="Locations with a level behind the figure.")
    contributing: int = Field(ge=0, description="Of those, the ones contributing more than 0.")
    explanation: list[StockSource]
    rule: AvailabilityRule
    source_system: str = Field(description="Of the level change that produced this figure.")
    source_position: str = Field(description="Of that change, in its source's log.")
    source_committed_at: datetime = Field(description="When that change committed in its source.")
    emitted_at: datetime


class StockAlert(BaseModel):
    """A stock alert's state, published at every transition (fired, resolved).

    Key on ``unified.alerts``: ``<alert rule>:<the availability key it watches>``.
    """

    model_config = _config("StockAlert", "stock_alert/v1.json")

    @property
    def key(self) -> str:
        return f"{self.rule}:{self.subject}"

    schema_version: Literal[1] = 1
    rule: str = Field(description="The alert rule's name in the network file.")
    kind: Literal["low_stock", "out_of_stock", "oversell"]
    status: Literal["firing", "resolved"]
    event: Literal[
        "low_stock",
        "stock_recovered",
        "out_of_stock",
        "back_in_stock",
        "oversell",
        "oversell_resolved",
        "withdrawn",
    ] = Field(description="What happened; withdrawn: the figure itself is gone (no level left).")
    subject: str = Field(
        description="The availability key watched, e.g. 3760000000017@store:PAR01."
    )
    gtin: str = GTIN
    scope: Literal["location", "group"]
    scope_id: str
    channel: str | None = None
    threshold: Decimal
    band: Decimal
    value: Decimal = Field(
        description="The figure compared: available, or for oversell reserved - on_hand."
    )
    since: datetime = Field(description="Source commit time of the change that fired it.")
    resolved_at: datetime | None = Field(
        default=None, description="Source commit time of the change that resolved it."
    )
    transition_id: str = Field(
        description="Stable per transition, also across replays: the webhooks' idempotency key."
    )
    availability: Availability | None = Field(
        description="The record that caused the transition; None when withdrawn."
    )
    emitted_at: datetime


class GoldenField(BaseModel):
    """One field of a golden customer: its value, the member record it came from, the policy
    (``connectors/identity.yaml``, survivorship) that chose that record."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    value: str | bool
    record: str = Field(description="The member record ref it came from, e.g. shop:17.")
    policy: Literal["most_recent", "most_complete", "latest_explicit", "trusted"]


class GoldenFields(BaseModel):
    """The golden values; a field no member has is absent."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    email: GoldenField | None = None
    phone_e164: GoldenField | None = None
    given_name: GoldenField | None = None
    family_name: GoldenField | None = None
    postcode: GoldenField | None = None
    marketing_consent: GoldenField | None = None


class MemberLink(BaseModel):
    """Why two member records are one person: the match rule (or ``manual-link``) and its score."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    a: str
    b: str
    rule: str
    score: float = Field(ge=0, le=1)


class Related(BaseModel):
    """A record that shares a contact point with a member but is kept apart (a household)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    member: str = Field(description="The member record.")
    record: str = Field(description="The record kept apart from it.")
    rule: str = Field(description="The apart rule (or manual-ban) that keeps them apart.")
    detail: str


class GoldenCustomer(BaseModel):
    """One person across every channel: the golden record of a cluster of customer records.

    Key on ``unified.customer``: the golden id, ``g-`` and 16 hex digits, stable while its first
    created member stays in it. A tombstone when no member is left (merged into another, erased).
    """

    model_config = _config("GoldenCustomer", "golden_customer/v1.json")

    @property
    def key(self) -> str:
        return self.golden_id

    schema_version: Literal[1] = 1
    golden_id: str = Field(pattern=r"^g-[0-9a-f]{16}$")
    members: list[str] = Field(min_length=1, description="Member record refs, sorted.")
    fields: GoldenFields
    links: list[MemberLink] = Field(description="The links that join the members.")
    related: list[Related] = Field(
        default_factory=list, description="Records sharing a contact point, kept apart."
    )
    rules_version: int = Field(description="``version`` of the identity rules file.")
    source_system: str | None = Field(
        description="The system of the record change that made this version; None for a manual "
        "decision."
    )
    source_position: str | None = Field(
        description="Of the record change that made this version; None for a manual decision."
    )
    source_committed_at: datetime | None = Field(
        description="When that change committed in its source; None for a manual decision."
    )
    emitted_at: datetime


class CustomerLink(BaseModel):
    """Which golden customer a record belongs to.

    Key on ``unified.customer.links``: the record ref (``shop:17``, ``pos:LC00000042``); a
    tombstone when the record is gone.
    """

    model_config = _config("CustomerLink", "customer_link/v1.json")

    @property
    def key(self) -> str:
        return self.ref

    schema_version: Literal[1] = 1
    ref: str = Field(pattern=r"^[a-z0-9_-]+:.+$")
    golden_id: str = Field(pattern=r"^g-[0-9a-f]{16}$")
    emitted_at: datetime


class CustomerEvent(BaseModel):
    """A golden id that stopped being one: its members merged into another customer, or split
    into several. A channel that stored the old id follows it.

    Key on ``unified.customer.events``: the old golden id.
    """

    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=True, title="CustomerEvent",
        json_schema_extra={"$id": "https://unified-commerce-hub/schemas/customer_event/v1.json"},
    )  # fmt: skip

    @property
    def key(self) -> str:
        return self.from_

    schema_version: Literal[1] = 1
    event: Literal["merged", "split"]
    from_: str = Field(alias="from", pattern=r"^g-[0-9a-f]{16}$", description="The old id.")
    into: str | list[str] = Field(
        description="merged: the golden id now holding its members; split: those ids, sorted."
    )
    source_position: str | None
    emitted_at: datetime


class CustomerErasure(BaseModel):
    """A customer erased (GDPR): every record of theirs the hub wrote is now a tombstone; a
    channel or sink that copied them erases them too.

    Key on ``unified.customer.erasures``: the golden id (the record ref when the hub had not
    seen the record yet).
    """

    model_config = _config("CustomerErasure", "customer_erasure/v1.json")

    @property
    def key(self) -> str:
        return self.golden_id or self.records[0]

    schema_version: Literal[1] = 1
    golden_id: str | None = Field(pattern=r"^g-[0-9a-f]{16}$")
    records: list[str] = Field(
        min_length=1, description="The record refs erased, as on unified.customer.records."
    )
    requested_at: str = Field(description="When the erasure was asked for (ISO time).")
    emitted_at: datetime


Canonical = InventoryLevel | CustomerRecord | OrderLine
# What a connector mapping can make of a source row.
MODELS: dict[str, type[InventoryLevel] | type[CustomerRecord] | type[OrderLine]] = {
    "InventoryLevel": InventoryLevel,
    "CustomerRecord": CustomerRecord,
    "OrderLine": OrderLine,
}
# Every model a unified topic carries: the mapped ones and those the hub's stages derive.
UNIFIED_MODELS: dict[str, type[BaseModel]] = {
    **MODELS,
    "Availability": Availability,
    "StockAlert": StockAlert,
    "GoldenCustomer": GoldenCustomer,
    "CustomerLink": CustomerLink,
    "CustomerEvent": CustomerEvent,
    "CustomerErasure": CustomerErasure,
}
