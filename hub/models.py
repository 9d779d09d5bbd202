"""Canonical models: the language every channel reads on the unified topics.

The JSON Schema files under ``schemas/`` are generated from these models (``hub schemas write``)
and a contract test fails when the two disagree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

LocationType = Literal["store", "warehouse", "web"]


class InventoryLevel(BaseModel):
    """The stock of one article in one location, as its source system last reported it.

    Key on ``unified.inventory``: ``<sku>@<location_id>``. A deleted source row becomes a tombstone
    (null value) for that key.
    """

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        title="InventoryLevel",
        json_schema_extra={"$id": "https://unified-commerce-hub/schemas/inventory_level/v1.json"},
    )

    schema_version: Literal[1] = 1
    sku: str = Field(pattern=r"^[0-9]{13}$", description="The article's EAN-13 (GTIN-13).")
    location_id: str = Field(
        pattern=r"^(store|warehouse|web):[A-Za-z0-9_-]+$",
        description="<location_type>:<the source system's location code>, e.g. store:PAR01.",
    )
    location_type: LocationType
    on_hand: int = Field(
        description="Units physically in the location; may be negative in POS data."
    )
    counted_at: datetime | None = Field(
        default=None, description="Last physical count in the source (naive source times as UTC)."
    )
    source_system: str = Field(description="The system that reported this level, e.g. pos.")
    source_table: str = Field(description="<schema>.<table> the change was captured from.")
    source_position: str = Field(
        description="Where the change sits in its source's log; sorts in log order within a source."
    )
    source_op: Literal["c", "u", "r"] = Field(
        description="c insert, u update, r snapshot read (deletes are tombstones)."
    )
    source_committed_at: datetime = Field(description="When the source transaction committed.")
    emitted_at: datetime = Field(description="When the hub produced this record.")

    @property
    def key(self) -> str:
        return inventory_key(self.sku, self.location_id)


def inventory_key(sku: str, location_id: str) -> str:
    """The ``unified.inventory`` key of one article in one location."""
    return f"{sku}@{location_id}"


MODELS: dict[str, type[BaseModel]] = {"InventoryLevel": InventoryLevel}
