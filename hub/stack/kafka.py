"""One Kafka node (KRaft, broker + controller) and one Kafka Connect distributed worker."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka.admin import AdminClient

from hub.connect_client import ConnectClient
from hub.errors import StackError
from hub.kafka_io import apply_topics
from hub.stack.procs import Proc, port_open, require_started
from hub.stack.runtime import Runtime
from hub.topics import TopicSpec

LOG4J2 = """\
Configuration:
  status: warn
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: org.apache.kafka.clients
        level: WARN
      - name: kafka.coordinator
        level: WARN
      - name: org.apache.kafka.connect.runtime.rest
        level: WARN
"""


def _java(runtime: Runtime, heap: str, conf: Path, main: str, *args: str) -> list[str]:
    return [
        "java", f"-Xms{heap}", f"-Xmx{heap}", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
        "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={conf / 'log4j2.yaml'}",
        "-cp", runtime.kafka_classpath, main, *args,
    ]  # fmt: skip


def _write(path: Path, properties: dict[str, str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{k}={v}\n" for k, v in properties.items()))
    return path


@dataclass(frozen=True)
class KafkaNode:
    host: str
    port: int
    controller_port: int
    heap: str
    state_dir: Path

    @property
    def proc(self) -> Proc:
        return Proc("kafka", self.state_dir)

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def _config(self) -> Path:
        data = self.state_dir / "kafka" / "data"
        conf = self.state_dir / "conf"
        (conf / "log4j2.yaml").parent.mkdir(parents=True, exist_ok=True)
        (conf / "log4j2.yaml").write_text(LOG4J2)
        return _write(conf / "kafka.properties", {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"{self.host}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(data),
            "num.partitions": "1",
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "log.segment.bytes": str(64 * 1024 * 1024),
            "num.io.threads": "2",
            "num.network.threads": "2",
            "log.cleaner.threads": "1",
            "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
        })  # fmt: skip

    def start(self, runtime: Runtime) -> bool:
        if self.proc.pid() is not None:
            if self.proc.runs(str(runtime.root)):
                return False
            self.stop()  # it runs jars of another pom: restart on the current runtime
        config = self._config()
        if not (self.state_dir / "kafka" / "data" / "meta.properties").exists():
            result = subprocess.run(
                _java(runtime, "256m", config.parent, "kafka.tools.StorageTool",
                      "format", "--standalone", "-t", uuid.uuid4().hex[:22], "-c", str(config)),
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if result.returncode != 0:
                raise StackError(
                    f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}"
                )
        self.proc.start(_java(runtime, self.heap, config.parent, "kafka.Kafka", str(config)))
        require_started(
            self.proc,
            lambda: port_open(self.host, self.port) and self._ready(),
            90,
            f"Is port {self.port} or {self.controller_port} taken? Set HUB_KAFKA_PORT / "
            "HUB_KAFKA_CONTROLLER_PORT, or 'hub stack down --purge' to reformat.",
        )
        return True

    def _ready(self) -> bool:
        try:
            AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 3}).list_topics(
                timeout=2
            )
        except Exception:
            return False
        return True

    def stop(self) -> bool:
        return self.proc.stop(timeout=60)


def ensure_topics(bootstrap: str, specs: Iterable[TopicSpec]) -> list[str]:
    """Create every topic of ``specs`` that does not exist; returns the names created.

    Raises ``StackError`` when an existing topic's partition count differs from its declaration.
    """
    try:
        report = apply_topics(bootstrap, specs, check_configs=False)
    except RuntimeError as exc:
        raise StackError(str(exc)) from exc
    if report.partitions:
        name, (actual, declared) = next(iter(report.partitions.items()))
        raise StackError(
            f"topic {name} has {actual} partitions, schemas/topics.yaml declares {declared}. A "
            "local stack made by an earlier version: 'hub stack down --purge' (deletes its "
            "data), then up again"
        )
    return report.created


@dataclass(frozen=True)
class ConnectWorker:
    host: str
    port: int
    heap: str
    state_dir: Path

    @property
    def proc(self) -> Proc:
        return Proc("connect", self.state_dir)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, runtime: Runtime, bootstrap: str) -> bool:
        if self.proc.pid() is not None:
            if self.proc.runs(str(runtime.root)):
                return False
            self.stop()  # it runs jars of another pom: restart on the current runtime
        conf = self.state_dir / "conf"
        config = _write(conf / "connect.properties", {
            "bootstrap.servers": bootstrap,
            "group.id": "hub-connect",
            "key.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "key.converter.schemas.enable": "false",
            "value.converter.schemas.enable": "false",
            "config.storage.topic": "_hub_connect_configs",
            "offset.storage.topic": "_hub_connect_offsets",
            "status.storage.topic": "_hub_connect_status",
            "config.storage.replication.factor": "1",
            "offset.storage.replication.factor": "1",
            "offset.storage.partitions": "5",
            "status.storage.replication.factor": "1",
            "status.storage.partitions": "1",
            # Committed source offsets bound what a restarted connector replays.
            "offset.flush.interval.ms": "1000",
            "listeners": self.url,
            "rest.advertised.host.name": self.host,
            "rest.advertised.port": str(self.port),
            "plugin.path": str(runtime.plugin_path),
            "plugin.discovery": "service_load",
            "config.providers": "file,env",
            "config.providers.file.class": "org.apache.kafka.common.config.provider.FileConfigProvider",
            "config.providers.env.class": "org.apache.kafka.common.config.provider.EnvVarConfigProvider",
            "connector.client.config.override.policy": "All",
            "topic.creation.enable": "true",
        })  # fmt: skip
        self.proc.start(
            _java(
                runtime,
                self.heap,
                conf,
                "org.apache.kafka.connect.cli.ConnectDistributed",
                str(config),
            )
        )
        client = ConnectClient(self.url, timeout=3)
        require_started(
            self.proc,
            lambda: client.alive() and self._plugins_loaded(client),
            120,
            f"Is port {self.port} taken? Set HUB_CONNECT_PORT.",
        )
        return True

    @staticmethod
    def _plugins_loaded(client: ConnectClient) -> bool:
        try:
            return bool(client.request("GET", "/connector-plugins"))
        except Exception:
            return False

    def stop(self) -> bool:
        return self.proc.stop(timeout=60)
