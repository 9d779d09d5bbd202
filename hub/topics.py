"""The topic registry, loaded from ``schemas/topics.yaml`` (declared once, read everywhere)."""

from __future__ import annotations

import difflib
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from hub.errors import RegistryError
from hub.settings import REPO_ROOT, get_settings

SCHEMAS_DIR = REPO_ROOT / "schemas"


class SourceTable(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    system: str
    table: str


class TopicSpec(BaseModel):
    """One topic as declared in the registry."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    name: str
    kind: Literal["raw", "internal", "unified", "dlq", "control"]
    key: str
    value: str
    partitions: int
    cleanup_policy: Literal["delete", "compact"]
    retention_ms: int | None = None
    max_message_bytes: int | None = None
    # LogAppendTime: the broker stamps each record as it appends it (latency is measured with it).
    timestamp_type: Literal["CreateTime", "LogAppendTime"] | None = None
    source: SourceTable | None = None
    model: str | None = None
    schema_file: str | None = None
    example: str | None = None
    dlq: str | None = None

    def kafka_config(self) -> dict[str, str]:
        """Topic-level configs for the admin client."""
        config: dict[str, str] = {"cleanup.policy": self.cleanup_policy}
        if self.retention_ms is not None:
            config["retention.ms"] = str(self.retention_ms)
        if self.max_message_bytes is not None:
            config["max.message.bytes"] = str(self.max_message_bytes)
        if self.timestamp_type is not None:
            config["message.timestamp.type"] = self.timestamp_type
        return config


class TopicRegistry(BaseModel):
    model_config = ConfigDict(frozen=True)
    topics: dict[str, TopicSpec]

    def __getitem__(self, topic_id: str) -> TopicSpec:
        try:
            return self.topics[topic_id]
        except KeyError:
            close = difflib.get_close_matches(topic_id, self.topics, n=3, cutoff=0.5)
            close += [t for t in self.topics if topic_id in t and t not in close]
            hint = (
                f"did you mean {', '.join(close[:3])}?"
                if close
                else f"declared: {', '.join(sorted(self.topics))}"
            )
            raise RegistryError(f"no topic with id {topic_id!r}; {hint}") from None

    def by_name(self, name: str) -> TopicSpec:
        for spec in self.topics.values():
            if spec.name == name:
                return spec
        raise RegistryError(f"no topic named {name!r} in schemas/topics.yaml")

    def raw_for(self, system: str, table: str) -> TopicSpec:
        for spec in self.topics.values():
            if spec.source is not None and (spec.source.system, spec.source.table) == (
                system,
                table,
            ):
                return spec
        raise RegistryError(f"no raw topic declared for {system}:{table}")


def load_registry(path: Path | None = None) -> TopicRegistry:
    """Parse and validate the registry file; raises ``RegistryError`` with the offending entry."""
    path = path or SCHEMAS_DIR / "topics.yaml"
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise RegistryError(f"cannot read the topic registry {path}: {exc}") from exc
    topics: dict[str, TopicSpec] = {}
    for topic_id, raw in (document or {}).get("topics", {}).items():
        fields = dict(raw)
        if "schema" in fields:
            fields["schema_file"] = fields.pop("schema")
        try:
            topics[topic_id] = TopicSpec(id=topic_id, **fields)
        except ValidationError as exc:
            raise RegistryError(f"{path}: topic {topic_id!r}: {exc}") from exc
    registry = TopicRegistry(topics=topics)
    for spec in topics.values():
        if spec.dlq is not None and registry[spec.dlq].kind != "dlq":
            raise RegistryError(
                f"topic {spec.id!r} names {spec.dlq!r} as DLQ, which is not kind dlq"
            )
    return registry


@lru_cache(maxsize=1)
def registry() -> TopicRegistry:
    """The registry the settings name (``HUB_TOPICS_FILE``; this checkout's by default), parsed once."""
    return load_registry(get_settings().topics_file)
