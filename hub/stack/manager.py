"""``hub stack up | down | status | env``: the local stack as one unit.

The ports a state dir was created with are saved in ``<state>/stack.json``; later commands on that
state dir read them from there, so ``hub stack env`` tells the truth whatever the environment says.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import requests
from rich.console import Console
from rich.table import Table

from hub.connect_client import ConnectClient, ConnectError
from hub.connectors import (
    ConnectorDefinition,
    Endpoint,
    SinkDefinition,
    load_definitions,
    load_sinks,
    render_config,
)
from hub.errors import StackError
from hub.settings import HubSettings
from hub.stack import demo, prereqs
from hub.stack.kafka import ConnectWorker, KafkaNode, ensure_topics
from hub.stack.mariadb import MariaDbSource
from hub.stack.mariadb import connect as mariadb_connect
from hub.stack.postgres import SourceDatabase, schema_sql, sink_secret
from hub.stack.procs import Proc, wait_for
from hub.stack.runtime import ensure_runtime
from hub.stack.secrets import StackSecrets
from hub.topics import registry

Source = SourceDatabase | MariaDbSource


@dataclass(frozen=True)
class LocalSource:
    """How the local stack runs one source system: server kind, the application's login, demo data."""

    kind: Literal["postgres", "mariadb"]
    app_role: str
    load_demo: Callable[[Any], dict[str, int]]


LOCAL_SOURCES: dict[str, LocalSource] = {
    "pos": LocalSource("postgres", "pos_app", demo.load_pos),
    "shop": LocalSource("postgres", "shop_app", demo.load_shop),
    "erp": LocalSource("mariadb", "erp_app", demo.load_erp),
}


@dataclass(frozen=True)
class Ports:
    kafka: int
    kafka_controller: int
    connect: int
    sources: dict[str, int]


class Stack:
    def __init__(self, settings: HubSettings, console: Console | None = None) -> None:
        self.settings = settings
        self.console = console or Console(stderr=True)
        self.state_dir = settings.state_dir.resolve()
        self.secrets = StackSecrets(self.state_dir)
        self.ports = self._ports()
        host = settings.host
        self.kafka = KafkaNode(host, self.ports.kafka, self.ports.kafka_controller,
                               settings.kafka_heap, self.state_dir)  # fmt: skip
        self.connect = ConnectWorker(
            host, self.ports.connect, settings.connect_heap, self.state_dir
        )
        self.sources: dict[str, Source] = {}
        for system, port in self.ports.sources.items():
            local = LOCAL_SOURCES[system]
            kind = SourceDatabase if local.kind == "postgres" else MariaDbSource
            self.sources[system] = kind(
                system, system, local.app_role, host, port, self.state_dir, self.secrets
            )

    @property
    def _state_file(self) -> Path:
        return self.state_dir / "stack.json"

    def _ports(self) -> Ports:
        wanted = Ports(
            self.settings.kafka_port,
            self.settings.kafka_controller_port,
            self.settings.connect_port,
            {
                "pos": self.settings.pos_pg_port,
                "shop": self.settings.shop_pg_port,
                "erp": self.settings.erp_mariadb_port,
            },
        )
        if self._state_file.exists():
            saved = json.loads(self._state_file.read_text())["ports"]
            # A source added to the hub after this state dir was made gets the configured port.
            return Ports(**{**saved, "sources": {**wanted.sources, **saved["sources"]}})
        return wanted

    # ---- up ----------------------------------------------------------------------------------

    def up(self) -> None:
        """Start whatever is not running, provision, register connectors, wait for RUNNING."""
        started = time.monotonic()
        prereqs.ensure(self.console)
        runtime = ensure_runtime(self.settings, self.console)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.chmod(0o755)  # the postgres OS user must reach its data dir
        self._state_file.write_text(json.dumps({"ports": asdict(self.ports)}, indent=2))
        definitions = load_definitions()
        sinks = [sink for sink in load_sinks().values() if sink.system in self.sources]

        self._write_logins(definitions)
        for system, db in self.sources.items():
            label = f"{'PostgreSQL' if isinstance(db, SourceDatabase) else 'MariaDB'} {system}"
            with self._step(f"{label} on {db.host}:{db.port}", db.proc):
                was = db.start()
                into = [sink for sink in sinks if sink.system == system]
                db.provision(definitions[system], schema_sql(system), into)
                with self.open(system) as conn:
                    loaded = LOCAL_SOURCES[system].load_demo(conn)
                note = "started" if was else "already running"
                if loaded:
                    note += ", demo data " + ", ".join(f"{n} {t}" for t, n in loaded.items())
            self._done(label, note)

        with self._step(f"Kafka (KRaft) on {self.kafka.bootstrap}", self.kafka.proc):
            was = self.kafka.start(runtime)
            created = ensure_topics(self.kafka.bootstrap, registry().topics.values())
        self._done(
            "Kafka", ("started" if was else "already running") + f", {len(created)} topics created"
        )

        with self._step(f"Kafka Connect on {self.connect.url}", self.connect.proc):
            was = self.connect.start(runtime, self.kafka.bootstrap)
        self._done("Kafka Connect", "started" if was else "already running")

        self.secrets.write_connect_properties({
            d.connection.password_secret: f"{s}.cdc" for s, d in definitions.items() if s in self.sources
        } | {sink.password_secret: sink_secret(sink) for sink in sinks})  # fmt: skip
        client = ConnectClient(self.connect.url)
        for system, definition in definitions.items():
            if system not in self.sources:
                continue
            with self._step(f"connector {definition.connector.name}", self.connect.proc):
                verdict = self.register(client, definition)
                wait_running(client, definition.connector.name, timeout=120)
            self._done(f"connector {definition.connector.name}", f"{verdict}, RUNNING")
        for sink in sinks:
            with self._step(f"sink connector {sink.name}", self.connect.proc):
                verdict = self.register_sink(client, sink, definitions)
                wait_running(client, sink.name, timeout=120)
            self._done(f"sink connector {sink.name}", f"{verdict}, RUNNING")
        self.console.print(f"[bold green]Stack up[/] in {time.monotonic() - started:.1f}s — "
                           f"state in {self.state_dir}")  # fmt: skip

    def _write_logins(self, definitions: dict[str, ConnectorDefinition]) -> None:
        """pgpass lines (per port) for the PostgreSQL sources, an option file per MariaDB source."""
        pg_logins: list[tuple[int, str, str]] = []
        for system, db in self.sources.items():
            cdc = definitions[system].connection.user
            if isinstance(db, SourceDatabase):
                pg_logins += [
                    (db.port, "postgres", f"{system}.postgres"),
                    (db.port, db.app_role, f"{system}.app"),
                    (db.port, cdc, f"{system}.cdc"),
                ]
            else:
                db.write_option_file({db.app_role: f"{system}.app", cdc: f"{system}.cdc"})
        self.secrets.write_pgpass(self.settings.host, pg_logins)

    def open(self, system: str) -> Any:
        """A DB-API connection to ``system`` as its application (psycopg or pymysql)."""
        db = self.sources[system]
        if isinstance(db, SourceDatabase):
            import psycopg

            return psycopg.connect(db.dsn())
        return mariadb_connect(db.dsn())

    def endpoint(self, system: str) -> Endpoint:
        db = self.sources[system]
        return Endpoint(db.host, db.port, self.secrets.connect_properties, self.kafka.bootstrap)

    def register(self, client: ConnectClient, definition: ConnectorDefinition) -> str:
        """Validate with Connect, then apply idempotently. Returns created/updated/unchanged."""
        from hub.connector_ops import endpoint_for, validate

        config = render_config(definition, endpoint_for(self.settings, definition), registry())
        validate(client, definition, config)
        return client.apply(definition.connector.name, config)

    def register_sink(self, client: ConnectClient, sink: SinkDefinition,
                      definitions: dict[str, ConnectorDefinition]) -> str:  # fmt: skip
        """A sink connector, validated by Connect, applied idempotently."""
        from hub.connector_ops import sink_config, validate_config

        config = sink_config(self.settings, sink, definitions)
        validate_config(client, sink.name, config)
        return client.apply(sink.name, config)

    def _step(self, what: str, proc: Proc) -> _Step:
        return _Step(self.console, what, proc)

    def _done(self, what: str, note: str) -> None:
        self.console.print(f"[green]✓[/] {what}: {note}")

    # ---- down, status, env -------------------------------------------------------------------

    def down(self, purge: bool = False) -> list[str]:
        """Stop in reverse order; ``purge`` deletes the state dir. Returns what was stopped."""
        stopped = []
        for name, stop in (
            ("connect", self.connect.stop),
            ("kafka", self.kafka.stop),
            *((db.proc.name, db.stop) for db in self.sources.values()),
        ):
            with self.console.status(f"Stopping {name}…"):
                if stop():
                    stopped.append(name)
        for name in stopped:
            self._done(name, "stopped")
        if purge and self.state_dir.exists():
            shutil.rmtree(self.state_dir)
            self._done("state", f"{self.state_dir} deleted")
        return stopped

    def status(self) -> dict[str, Any]:
        components: dict[str, Any] = {}
        for proc in (
            self.kafka.proc,
            self.connect.proc,
            *(db.proc for db in self.sources.values()),
        ):
            pid = proc.pid()
            components[proc.name] = {"state": "running" if pid else "stopped", "pid": pid,
                                     "log": str(proc.logfile)}  # fmt: skip
        connectors: dict[str, Any] = {}
        if self.connect.proc.pid():
            client = ConnectClient(self.connect.url, retries=2)
            try:
                for name in client.connectors():
                    status = client.status(name)
                    connectors[name] = {
                        "state": status["connector"]["state"],
                        "tasks": [task["state"] for task in status.get("tasks", [])],
                    }
            except (ConnectError, OSError) as exc:
                connectors["?"] = {"state": f"unreachable: {exc}", "tasks": []}
        worker = worker_health(self.settings.host, self.settings.worker_web_port)
        return {"components": components, "connectors": connectors, "worker": worker}

    def print_status(self) -> None:
        status = self.status()
        table = Table(title=f"Stack in {self.state_dir}")
        for column in ("component", "state", "pid", "log"):
            table.add_column(column)
        for name, info in status["components"].items():
            color = "green" if info["state"] == "running" else "red"
            table.add_row(name, f"[{color}]{info['state']}[/]", str(info["pid"] or ""), info["log"])
        for name, info in status["connectors"].items():
            color = "green" if info["state"] == "RUNNING" else "red"
            table.add_row(f"connector {name}", f"[{color}]{info['state']}[/]",
                          "tasks: " + ",".join(info["tasks"]), "")  # fmt: skip
        worker = status["worker"]
        state = worker["state"]
        color = "yellow" if state == "not running" else "green" if "without" not in state else "red"
        table.add_row("hub worker", f"[{color}]{state}[/]", "", worker["url"])
        Console().print(table)

    def env(self) -> dict[str, Any]:
        return {
            "kafka_bootstrap": self.kafka.bootstrap,
            "connect_url": self.connect.url,
            "sources": {system: db.dsn() for system, db in self.sources.items()},
            "state_dir": str(self.state_dir),
        }


def worker_health(host: str, port: int) -> dict[str, Any]:
    """The hub worker's own view of itself, from its ``/health`` (the local stack does not start
    it: ``hub worker`` or ``make run`` does)."""
    try:
        health = requests.get(f"http://{host}:{port}/health", timeout=2).json()
    except (requests.RequestException, ValueError):
        return {"state": "not running", "url": f"http://{host}:{port}/health"}
    role = "active" if health.get("active") else "standby"
    state = health.get("status", "?")
    if state != "ok":
        role += f", {state}: {health.get('seconds_without_progress', 0):.0f} s without progress"
    return {"state": role, "health": health, "url": f"http://{host}:{port}/health"}


def wait_running(
    client: ConnectClient, name: str, timeout: float, restarts: int = 3
) -> dict[str, Any]:
    """Wait until the connector and all its tasks are RUNNING; ``StackError`` on timeout, or when
    it is still FAILED after ``restarts`` restarts (a task fails when its database went away, and
    Connect never restarts it by itself)."""
    last: dict[str, Any] = {}
    left = restarts

    def check() -> bool:
        nonlocal last, left
        try:
            last = client.status(name)
        except ConnectError as exc:
            if exc.status == 404:
                return False
            raise
        states = [last["connector"]["state"], *(t["state"] for t in last.get("tasks", []))]
        if "FAILED" in states and left > 0:
            left -= 1
            time.sleep(restarts - left)  # 1 s, 2 s, … : a database that just came back may be slow
            client.restart_failed([name])
            return False
        if "FAILED" in states:
            traces = [t.get("trace", "") for t in last.get("tasks", []) if t["state"] == "FAILED"]
            trace = (traces[0] if traces else last["connector"].get("trace", ""))[:3000]
            raise StackError(
                f"connector {name} FAILED:\n{trace}\n"
                f"See the Connect log; fix the source or the definition, then run 'hub stack up' again."
            )
        return bool(last.get("tasks")) and all(s == "RUNNING" for s in states)

    if not wait_for(check, timeout, 0.5):
        raise StackError(f"connector {name} not RUNNING after {timeout:.0f}s: {last}")
    return last


class _Step:
    """Shows a spinner while a step runs; on failure, says which component and where its log is."""

    def __init__(self, console: Console, what: str, proc: Proc) -> None:
        self.console, self.what, self.proc = console, what, proc
        self.status = console.status(f"{what}…")

    def __enter__(self) -> _Step:
        self.status.__enter__()
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.status.__exit__(exc_type, exc, tb)
        if exc is not None and not isinstance(exc, StackError | KeyboardInterrupt):
            raise StackError(f"{self.what} failed: {exc!r}\nLog: {self.proc.logfile}") from exc
