"""The shapes of ``hub api``'s answers, for its OpenAPI document (and the typed client). The
records inside are the unified topics' own models (``hub.models``), as the topics carry them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from hub.models import Availability, GoldenCustomer, InventoryLevel, OrderLine, StockAlert


class Freshness(BaseModel):
    """The newest record an answer shows: how fresh the answer is."""

    source_system: str | None = None
    source_position: str | None = Field(default=None, description="In its source's log.")
    source_committed_at: datetime | None = Field(default=None,
                                                 description="When it committed in its source.")  # fmt: skip
    emitted_at: datetime | None = Field(default=None, description="When the hub produced it.")


class AvailabilityAnswer(BaseModel):
    gtin: str
    groups: list[Availability] = Field(description="Per channel group (web, stores, …).")
    locations: list[Availability] = Field(description="Per location.")
    freshness: Freshness | None


class InventoryAnswer(BaseModel):
    gtin: str
    levels: list[InventoryLevel]
    freshness: Freshness | None


class CustomerAnswer(BaseModel):
    customer: GoldenCustomer
    freshness: Freshness | None


class OrderLinesAnswer(BaseModel):
    golden_id: str
    members: list[str]
    lines: list[OrderLine] = Field(description="Newest first, every channel.")
    freshness: Freshness | None


class AlertsAnswer(BaseModel):
    alerts: list[StockAlert]
    freshness: Freshness | None


class StockAtLocation(BaseModel):
    on_hand: str = Field(description="Decimal, as a string (exact).")
    available: str | None = Field(description="Its location figure; None before the first.")


class ArticleStock(BaseModel):
    gtin: str
    locations: dict[str, StockAtLocation] = Field(description="By location id.")
    groups: dict[str, str] = Field(description="Available units by group (group:<name>).")


class StockAnswer(BaseModel):
    articles: list[ArticleStock]
    position: str = Field(description="The stream position this is as of: follow the stream "
                          "from here (`/v1/stream?from=`) and nothing is missed.")  # fmt: skip


class StatusAnswer(BaseModel):
    ready: bool = Field(description="Whether the API has caught up with the topics.")
    reader_error: str | None
    partitions_to_read: int
    sources: dict[str, Freshness] = Field(description="Per source system, its newest change.")
    worker_lag: int | None = Field(description="Raw records the worker group has not processed.")
    dead_letters: dict[str, int] = Field(description="Dead letters by reason.")
    records: dict[str, int] = Field(description="Records held, per unified topic.")
    position: str = Field(description="Where the API stands in the topics (a stream position).")
    alerts_firing: int


class ErrorAnswer(BaseModel):
    error: str = Field(description="A stable code: bad_gtin, unknown_article, not_ready, …")
    detail: str | dict[str, Any] = Field(description="What exactly was wrong.")
