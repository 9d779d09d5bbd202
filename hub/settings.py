"""The hub's one settings class.

Every environment variable the hub reads is read here, with the prefix ``HUB_`` (for example
``HUB_STATE_DIR``, ``HUB_KAFKA_PORT``). Nothing else in the package touches ``os.environ`` for
configuration.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


def _default_jar_cache() -> Path:
    return Path.home() / ".cache" / "unified-commerce-hub" / "runtime"


class HubSettings(BaseSettings):
    """Typed, frozen settings. Ports are the local stack's defaults; tests override them."""

    # An empty variable (``HUB_CONNECT_URL=``) means "not set": the default applies.
    model_config = SettingsConfigDict(
        env_prefix="HUB_", frozen=True, extra="ignore", env_ignore_empty=True
    )

    state_dir: Path = Field(
        default=REPO_ROOT / ".hub",
        description="Data, logs, pid files and generated secrets of the local stack.",
    )
    jar_cache: Path = Field(
        default_factory=_default_jar_cache,
        description="Where mvn copies Kafka, Connect and Debezium jars; shared by all state dirs.",
    )
    repo_root: Path = Field(default=REPO_ROOT, description="Holds connectors/, schemas/, deploy/.")
    connectors_dir: Path = Field(
        default=REPO_ROOT / "connectors",
        description="The source definitions (one YAML file per system). Point it elsewhere to keep "
        "a deployment's own systems outside the checkout.",
    )
    network_file: Path | None = Field(
        default=None,
        description="The stock network: locations, groups per channel, safety rules, alerts "
        "(by default network.yaml beside the definitions, in connectors_dir).",
    )
    identity_file: Path | None = Field(
        default=None,
        description="The identity rules: match and apart rules, nicknames, merge-storm limit, "
        "survivorship (by default identity.yaml beside the definitions, in connectors_dir).",
    )
    topics_file: Path = Field(
        default=REPO_ROOT / "schemas" / "topics.yaml",
        description="The topic registry: every topic the hub reads or writes, declared once.",
    )

    host: str = Field(default="127.0.0.1", description="Every local service binds here.")
    kafka_port: int = 19092
    kafka_controller_port: int = 19093
    connect_port: int = 18083
    pos_pg_port: int = 15433
    shop_pg_port: int = 15434
    erp_mariadb_port: int = 13306
    worker_web_port: int = 16066

    # Point the hub at an existing cluster instead of the local stack (production).
    kafka_bootstrap: str | None = None
    connect_url: str | None = None
    source_hosts: dict[str, str] = Field(
        default_factory=dict,
        description='Production: where Connect reaches each source, JSON {"pos": "db.internal:5432"}.',
    )
    connect_secrets_file: Path | None = Field(
        default=None,
        description="Production: the secrets file on the Connect workers (FileConfigProvider).",
    )

    kafka_heap: str = "384m"
    connect_heap: str = "512m"

    worker_id: str = "unified-commerce-hub"
    worker_session_timeout: float = Field(
        default=15.0,
        description="Seconds the consumer group waits for a silent worker before a standby takes over.",
    )
    worker_stall_timeout: float = Field(
        default=30.0,
        description="Seconds a held raw partition may have records waiting without the worker "
        "moving on before it leaves for a fresh start (the liveness guard).",
    )
    worker_stop_timeout: float = Field(
        default=30.0,
        description="Seconds a stopping worker (SIGTERM, SIGINT) gets to stop cleanly before it "
        "exits hard, committing nothing more.",
    )
    worker_commit_interval: float = Field(
        default=0.1,
        gt=0,
        le=5.0,
        description="Seconds between two commits of the worker's output transactions while records "
        "keep coming (outputs go out at once; read_committed consumers see them at the commit). "
        "Each commit costs the broker: committing after every small batch loaded it at live rates.",
    )
    worker_fetch_max_wait_ms: int = Field(
        default=20,
        description="Longest time the broker holds the worker's fetch of raw records when there is "
        "nothing new (a long wait on quiet partitions holds busy ones back).",
    )
    worker_max_position_leap: int = Field(
        default=4 << 30,
        description="Bytes of source log a change may be ahead of the newest position seen from "
        "its system (plus worker_max_log_rate per second between their commits) before it is "
        "dead-lettered as implausible_position instead of becoming its key's mark.",
    )
    worker_max_log_rate: int = Field(
        default=256 << 20,
        description="Bytes per second of log a source may write (see worker_max_position_leap).",
    )
    worker_store: Literal["rocksdb", "memory"] = Field(
        default="rocksdb",
        description="Where a worker keeps the engine's state of each partition number it holds: "
        "a RocksDB copy on local disk under HUB_STATE_DIR/worker with the most used entries in "
        "memory (memory bounded whatever the history), or all in memory. Either way the "
        "changelog topic holds it, and a takeover reads it back from there.",
    )
    worker_store_cache: int = Field(
        default=5_000,
        ge=0,
        description="Entries of each partition number's state kept in memory (rocksdb store).",
    )
    connector_watch_interval: float = Field(
        default=15.0,
        description="Seconds between the worker's checks for FAILED connectors and tasks to restart "
        "(0: never).",
    )
    dlq_max_consecutive: int = Field(
        default=100,
        description="The worker stops when this many events in a row go to the dead-letter topic.",
    )
    dlq_max_ratio: float = Field(
        default=0.5,
        description="... or when more than this share of the last dlq_window events was invalid.",
    )
    dlq_window: int = 1000
    webhooks: dict[str, str] = Field(
        default={},
        description="Where stock alerts are delivered: name → URL, as JSON, e.g. "
        '{"ops": "https://ops.example.com/hub-alerts"}. Every transition is POSTed to each, at least '
        "once, signed with webhook_secret (README, 'Stock alerts').",
    )
    webhook_secret: SecretStr | None = Field(
        default=None, description="The HMAC-SHA256 key that signs every webhook body (required "
        "when webhooks are declared; never logged)."
    )  # fmt: skip
    webhook_timeout: float = Field(default=5.0, gt=0, description="Seconds per delivery attempt.")
    erasure_salt: SecretStr | None = Field(
        default=None, description="The key of the salted hashes kept of erased customer records "
        "(hub.customer.erased): the same for every worker of a deployment, and kept secret (with "
        "it, a record ref can be tested against the list). By default the local stack's own, "
        "generated once under state_dir/secrets.",
    )  # fmt: skip
    webhook_max_backoff: float = Field(
        default=30.0, gt=0, description="Longest wait between two attempts of one delivery."
    )

    api_port: int = Field(default=18080, description="Where `hub api` listens (on host).")
    api_keys: SecretStr | None = Field(
        default=None, description="API keys `hub api` accepts, comma-separated: a request "
        "carries one as `Authorization: Bearer <key>` or `X-API-Key: <key>`. Unset: no key asked "
        "(the API binds to 127.0.0.1). Never logged.",
    )  # fmt: skip
    api_cors_origins: list[str] = Field(
        default=[], description='Origins a browser may call the API from, as JSON, e.g. '
        '["https://shop.example.com"] (none by default; "*" for any).',
    )  # fmt: skip
    api_log_size: int = Field(
        default=100_000, gt=0, description="Changes `hub api` keeps for streams to resume from; "
        "a client further behind gets the current state of what it follows instead.",
    )  # fmt: skip

    @model_validator(mode="after")
    def _webhooks_are_signed(self) -> HubSettings:
        if self.webhooks and self.webhook_secret is None:
            raise ValueError("HUB_WEBHOOKS is set but HUB_WEBHOOK_SECRET is not: webhook bodies "
                             "are always signed; set a secret and give it to each receiver")  # fmt: skip
        return self

    @property
    def stock_network(self) -> Path:
        return self.network_file or self.connectors_dir / "network.yaml"

    @property
    def identity_rules(self) -> Path:
        return self.identity_file or self.connectors_dir / "identity.yaml"

    @property
    def bootstrap(self) -> str:
        return self.kafka_bootstrap or f"{self.host}:{self.kafka_port}"

    @property
    def connect(self) -> str:
        return self.connect_url or f"http://{self.host}:{self.connect_port}"


@lru_cache(maxsize=1)
def get_settings() -> HubSettings:
    """The process-wide settings, read once from the environment."""
    return HubSettings()
