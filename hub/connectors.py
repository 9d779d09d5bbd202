"""Connector definitions (``connectors/*.yaml``) and the Debezium configs rendered from them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hub.core.engine import SystemMappings
from hub.core.mapping import MappingSpec, compile_mapping
from hub.core.retention import RetentionSpec
from hub.errors import RegistryError
from hub.settings import REPO_ROOT, get_settings
from hub.topics import TopicRegistry, TopicSpec

CONNECTORS_DIR = REPO_ROOT / "connectors"


def _as_settings(value: object) -> object:
    """Connector settings as Connect takes them: every key and value a string."""
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    return value


def _no_inline_passwords(value: dict[str, str]) -> dict[str, str]:
    """Connector settings with no password written out: only config-provider references."""
    for key, setting in value.items():
        if "password" in key.lower() and not setting.startswith("${"):
            raise ValueError(f"{key}: passwords only as config-provider references")
    return value


class ConnectorRef(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)
    name: str
    class_: str = Field(alias="class")


class Connection(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["postgres", "mariadb"]
    database: str
    user: str
    password_secret: str
    server_id: int | None = None  # MariaDB: the replica id the connector presents
    hostname: str | None = None  # None: the local stack's host
    port: int | None = None  # None: the local stack's port for this system


class Partitioning(BaseModel):
    """How one table's change events are keyed in Kafka when its primary key is not what puts it
    beside the rows it goes with (scale-out: rows that look each other up must share a partition).

    ``by``: the Kafka key's fields and the column each takes its value from, in order (a list:
    columns keeping their names). Debezium keys the table's events by those columns
    (``message.key.columns``), renamed where a field differs from its column, so that equal values
    give equal key bytes whatever the table calls them (``shop.orders.id`` and
    ``shop.order_line.order_id`` both as ``{"order_id": …}``). ``key``: the table's primary key,
    the row's identity for the hub now that the Kafka key may not hold all of it."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    key: tuple[str, ...] = Field(min_length=1)
    by: dict[str, str] = Field(min_length=1)

    @field_validator("by", mode="before")
    @classmethod
    def _same_names(cls, value: object) -> object:
        if isinstance(value, list | tuple):
            return {str(column): str(column) for column in value}
        return value

    def kafka_key(self, row: Mapping[str, Any]) -> bytes:
        """The Kafka key Debezium gives a change of ``row`` (JSON without schema, compact, fields
        in order: the same bytes, so the same partition). ``KeyError`` for a missing column."""
        return orjson.dumps({name: row[column] for name, column in self.by.items()}, default=str)


class ConnectorDefinition(BaseModel):
    """One source system: how to reach it, which tables to capture, Debezium settings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    system: str
    description: str
    connector: ConnectorRef
    connection: Connection
    tables: tuple[str, ...]
    debezium: dict[str, str]
    toasted: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    # Tables keyed otherwise than by their primary key (see ``Partitioning``).
    partitioning: dict[str, Partitioning] = Field(default_factory=dict)
    # Reference tables (articles): rows that rows of every partition look up. Every worker reads
    # all of their topic, whatever partitions of the others it holds.
    reference: tuple[str, ...] = ()
    # Tables whose closed rows (and the rows that look them up) leave the engine's state a while
    # after they closed (see ``hub.core.retention``).
    retention: dict[str, RetentionSpec] = Field(default_factory=dict)
    mappings: tuple[MappingSpec, ...] = ()

    @model_validator(mode="after")
    def _mappings_use_captured_tables(self) -> ConnectorDefinition:
        captured = set(self.tables)
        for mapping in self.mappings:
            used = {mapping.table} | compile_mapping(mapping).lookup_tables
            if not used <= captured:
                raise ValueError(
                    f"mapping of {mapping.table} uses uncaptured {sorted(used - captured)}"
                )
        for section in ("toasted", "partitioning", "reference", "retention"):
            named = set(getattr(self, section))
            if not named <= captured:
                raise ValueError(f"{section} names uncaptured tables {sorted(named - captured)}")
        kept = set(self.toasted)
        for mapping in self.mappings:
            looked_up = compile_mapping(mapping).lookup_tables
            kept |= looked_up | ({mapping.table} if looked_up else set())
        if not set(self.retention) <= kept:
            raise ValueError(
                f"retention names {sorted(set(self.retention) - kept)}, whose rows the hub does "
                "not keep (only rows that are looked up, or that look others up, are kept)"
            )
        both = set(self.partitioning) & set(self.reference)
        if both:
            raise ValueError(f"{sorted(both)}: a reference table is read whole, not partitioned")
        return self

    def engine_view(self) -> SystemMappings:
        """What the processing engine needs of this definition."""
        keys = {table: part.key for table, part in self.partitioning.items()}
        return SystemMappings(self.system, self.mappings, self.toasted, keys, self.retention)

    @field_validator("debezium", mode="before")
    @classmethod
    def _stringify(cls, value: object) -> object:
        return _as_settings(value)

    @field_validator("debezium")
    @classmethod
    def _no_inline_secrets(cls, value: dict[str, str]) -> dict[str, str]:
        return _no_inline_passwords(value)

    def kafka_key(self, table: str, key: Mapping[str, Any], row: Mapping[str, Any] | None) -> bytes:
        """The Kafka key of a change of ``table``'s row ``row`` (None: deleted) whose primary key
        is ``key`` (columns in primary-key order), as this definition has Debezium write it."""
        partitioning = self.partitioning.get(table)
        if partitioning is None:
            return orjson.dumps(dict(key), default=str)
        return partitioning.kafka_key({**key, **(row or {})})

    @property
    def topic_prefix(self) -> str:
        return f"raw.{self.system}"

    @property
    def slot(self) -> str:
        return f"hub_{self.system}"

    @property
    def publication(self) -> str:
        return f"hub_{self.system}"


@dataclass(frozen=True)
class Endpoint:
    """Where Connect reaches the source, and where the Connect worker keeps its secrets file."""

    hostname: str
    port: int
    secrets_file: Path
    kafka_bootstrap: str  # for the MariaDB connector's schema history topic


# Files beside the definitions that declare rules, not systems.
RULE_FILES = frozenset({"network.yaml", "identity.yaml"})


def read_rule_file(path: Path, what: str, error: type[Exception]) -> Any:
    """The parsed YAML of a rules file beside the definitions (``what``: how to name it);
    ``error`` when it cannot be read, naming the file."""
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise error(f"cannot read the {what} {path}: {exc}") from exc


_Model = TypeVar("_Model", bound=BaseModel)


def _read(path: Path, model: type[_Model]) -> _Model:
    """The definition in ``path``; ``RegistryError`` naming the file when it is not one."""
    try:
        return model(**yaml.safe_load(path.read_text()))
    except (ValidationError, TypeError, yaml.YAMLError) as exc:
        raise RegistryError(f"{path}: {exc}") from exc


def load_definitions(directory: Path | None = None) -> dict[str, ConnectorDefinition]:
    """All definitions, by system name: those in ``directory``, by default the settings'
    ``HUB_CONNECTORS_DIR``. Raises ``RegistryError`` naming the file at fault."""
    directory = directory or get_settings().connectors_dir
    if not directory.is_dir():
        raise RegistryError(f"no connector definitions: {directory} is not a directory")
    definitions: dict[str, ConnectorDefinition] = {}
    for path in sorted(directory.glob("*.yaml")):
        if path.name in RULE_FILES:
            continue
        definition = _read(path, ConnectorDefinition)
        if definition.system in definitions:
            raise RegistryError(f"{path}: system {definition.system!r} is defined twice")
        definitions[definition.system] = definition
    return definitions


def reference_tables(definitions: Mapping[str, ConnectorDefinition]) -> set[tuple[str, str]]:
    """(system, table) of every reference table the definitions declare."""
    return {(d.system, table) for d in definitions.values() for table in d.reference}


def shared_topics(
    definitions: Mapping[str, ConnectorDefinition], registry: TopicRegistry
) -> list[TopicSpec]:
    """The raw topics a worker group shares out, whose progress its committed offsets show: every
    raw topic but the reference ones (each worker reads those whole, and keeps how far it read
    with its state)."""
    reference = reference_tables(definitions)
    return [
        spec for spec in registry.topics.values()
        if spec.kind == "raw" and spec.source
        and (spec.source.system, spec.source.table) not in reference
    ]  # fmt: skip


def render_config(
    definition: ConnectorDefinition, endpoint: Endpoint, registry: TopicRegistry
) -> dict[str, str]:
    """The Kafka Connect config of ``definition``. Raises ``RegistryError`` for an undeclared table."""
    for table in definition.tables:
        expected = f"{definition.topic_prefix}.{table}"
        declared = registry.raw_for(definition.system, table).name
        if declared != expected:
            raise RegistryError(
                f"{definition.system}:{table} writes {expected}, registry says {declared}"
            )
    conn = definition.connection
    config = {
        "connector.class": definition.connector.class_,
        "tasks.max": "1",
        "database.hostname": conn.hostname or endpoint.hostname,
        "database.port": str(conn.port or endpoint.port),
        "database.user": conn.user,
        "database.password": f"${{file:{endpoint.secrets_file}:{conn.password_secret}}}",
        "topic.prefix": definition.topic_prefix,
        "table.include.list": ",".join(definition.tables),
    }
    if conn.kind == "postgres":
        config |= {
            "database.dbname": conn.database,
            "slot.name": definition.slot,
            "publication.name": definition.publication,
        }
    else:
        if conn.server_id is None:
            raise RegistryError(f"{definition.system}: a MariaDB connection needs a server_id")
        history = registry[f"internal.{definition.system}.schema_history"].name
        config |= {
            "database.server.id": str(conn.server_id),
            "database.include.list": conn.database,
            "schema.history.internal.kafka.bootstrap.servers": endpoint.kafka_bootstrap,
            "schema.history.internal.kafka.topic": history,
        }
    config.update(definition.debezium)
    config.update(_keying(definition))
    return config


def _keying(definition: ConnectorDefinition) -> dict[str, str]:
    """Debezium settings that key the events of ``definition.partitioning``'s tables: the key
    columns, and a ``ReplaceField$Key`` transform per table whose key fields are renamed (applied
    to that table's topic only), after any transforms the definition declares itself."""
    if not definition.partitioning:
        return {}
    config = {
        "message.key.columns": ";".join(
            f"{table}:{','.join(part.by.values())}"
            for table, part in sorted(definition.partitioning.items())
        )
    }
    transforms = [t for t in definition.debezium.get("transforms", "").split(",") if t]
    predicates = [p for p in definition.debezium.get("predicates", "").split(",") if p]
    for table, part in sorted(definition.partitioning.items()):
        renames = [f"{column}:{name}" for name, column in part.by.items() if name != column]
        if not renames:
            continue
        name = "hubkey_" + re.sub(r"\W", "_", table)
        topic = f"{definition.topic_prefix}.{table}"
        transforms.append(name)
        predicates.append(name)
        config |= {
            f"transforms.{name}.type": "org.apache.kafka.connect.transforms.ReplaceField$Key",
            f"transforms.{name}.renames": ",".join(renames),
            f"transforms.{name}.predicate": name,
            f"predicates.{name}.type": (
                "org.apache.kafka.connect.transforms.predicates.TopicNameMatches"
            ),
            f"predicates.{name}.pattern": re.escape(topic),
        }
    if transforms:
        config |= {"transforms": ",".join(transforms), "predicates": ",".join(predicates)}
    return config


# -- sinks: the hub's write-back topics into the channels' own databases


class SinkDefinition(BaseModel):
    """A sink connector (``connectors/sinks/*.yaml``): one write-back topic of the registry
    upserted into a table of a declared system's database, as its own login (write rights on that
    table only), never captured back: the table is in no source definition's ``tables``, so in
    none of their publications or include lists (``loop_free`` checks it)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field(description="The connector's name in Kafka Connect.")
    description: str = ""
    topic: str = Field(description="The write-back topic's id in the registry.")
    system: str = Field(description="The system whose database it writes into.")
    table: str = Field(description="<schema>.<table> it upserts into.")
    user: str = Field(description="The database login it writes as.")
    password_secret: str = Field(description="Its password's key in the Connect secrets file.")
    connector: dict[str, str] = Field(default_factory=dict,
                                      description="More connector settings, as they are.")  # fmt: skip

    @field_validator("connector", mode="before")
    @classmethod
    def _stringify(cls, value: object) -> object:
        return _as_settings(value)

    @field_validator("connector")
    @classmethod
    def _no_inline_secrets(cls, value: dict[str, str]) -> dict[str, str]:
        return _no_inline_passwords(value)


JDBC_SINK = "io.debezium.connector.jdbc.JdbcSinkConnector"
CONNECT_JSON = "org.apache.kafka.connect.json.JsonConverter"


def load_sinks(directory: Path | None = None) -> dict[str, SinkDefinition]:
    """Every sink definition in ``<connectors dir>/sinks``, by name (none: no sinks)."""
    folder = (directory or get_settings().connectors_dir) / "sinks"
    sinks: dict[str, SinkDefinition] = {}
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else ():
        sink = _read(path, SinkDefinition)
        if sink.name in sinks:
            raise RegistryError(f"{path}: sink {sink.name!r} is defined twice")
        sinks[sink.name] = sink
    return sinks


def loop_free(sink: SinkDefinition, definitions: Mapping[str, ConnectorDefinition]) -> None:
    """``RegistryError`` when a source would capture what ``sink`` writes (its changes would come
    back into the pipeline as the system's own)."""
    for definition in definitions.values():
        if definition.system == sink.system and sink.table in definition.tables:
            raise RegistryError(f"sink {sink.name} writes {sink.table}, which the {sink.system} "
                                "connector captures: its writes would come back as changes")  # fmt: skip


def render_sink_config(
    sink: SinkDefinition, definitions: Mapping[str, ConnectorDefinition], endpoint: Endpoint,
    registry: TopicRegistry,
) -> dict[str, str]:  # fmt: skip
    """The Kafka Connect config of ``sink`` (Debezium's JDBC sink): upserts by the record key,
    deletes on tombstones, the table as declared (never created or altered by the connector)."""
    target = definitions.get(sink.system)
    if target is None:
        raise RegistryError(f"sink {sink.name}: no system {sink.system!r} in the definitions")
    if target.connection.kind != "postgres":
        raise RegistryError(f"sink {sink.name}: only PostgreSQL targets are supported")
    loop_free(sink, definitions)
    config = {
        "connector.class": JDBC_SINK,
        "tasks.max": "1",
        "topics": registry[sink.topic].name,
        "connection.url": f"jdbc:postgresql://{endpoint.hostname}:{endpoint.port}/"
                          f"{target.connection.database}",
        "connection.username": sink.user,
        "connection.password": f"${{file:{endpoint.secrets_file}:{sink.password_secret}}}",
        "insert.mode": "upsert",
        "delete.enabled": "true",
        "primary.key.mode": "record_key",
        "schema.evolution": "none",
        "collection.name.format": sink.table,
        "key.converter": CONNECT_JSON,
        "key.converter.schemas.enable": "true",
        "value.converter": CONNECT_JSON,
        "value.converter.schemas.enable": "true",
    }  # fmt: skip
    config.update(sink.connector)
    return config
