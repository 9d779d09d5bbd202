"""One PostgreSQL 15 instance per source system, run as local processes (as ``postgres`` when root)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import ClassVar

import psycopg
from psycopg import sql

from hub.connectors import ConnectorDefinition, SinkDefinition
from hub.errors import StackError
from hub.stack.prereqs import PG_BIN
from hub.stack.procs import port_open, require_started
from hub.stack.source import SourceServer

SUPERUSER = "postgres"


def _os_user() -> str | None:
    """initdb refuses root: run the server as the ``postgres`` OS user then."""
    return "postgres" if os.geteuid() == 0 else None


@dataclass(frozen=True)
class SourceDatabase(SourceServer):
    """A PostgreSQL source: ``system`` names it in DSNs, processes and the state dir."""

    KIND: ClassVar[str] = "postgres"

    def dsn(self, role: str | None = None, database: str | None = None) -> str:
        """A libpq URI; the password comes from the pgpass file, never from the URI."""
        return (
            f"postgresql://{role or self.app_role}@{self.host}:{self.port}/{database or self.database}"
            f"?passfile={self.secrets.pgpass}&connect_timeout=5"
        )

    def _init(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        user = _os_user()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        password = self.secrets.password(f"{self.system}.{SUPERUSER}").get_secret_value()
        with tempfile.NamedTemporaryFile("w", dir=self.data_dir.parent, delete=False) as pwfile:
            pwfile.write(password + "\n")
        try:
            if user:
                entry = pwd.getpwnam(user)
                for path in (self.data_dir, Path(pwfile.name)):
                    os.chown(path, entry.pw_uid, entry.pw_gid)
            self.data_dir.chmod(0o700)
            result = subprocess.run(
                [str(PG_BIN / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER,
                 f"--pwfile={pwfile.name}", "--auth=scram-sha-256", "-E", "UTF8", "--no-locale"],
                user=user, group=user, extra_groups=[] if user else None,
                capture_output=True, text=True, check=False,
            )  # fmt: skip
        finally:
            Path(pwfile.name).unlink(missing_ok=True)
        if result.returncode != 0:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            raise StackError(
                f"initdb for {self.system} failed:\n{result.stdout[-1500:]}{result.stderr[-1500:]}\n"
                f"The state dir's parents must be readable by the '{user or 'current'}' user."
            )

    def start(self) -> bool:
        """Init on first use, then start. Returns False when it was already running."""
        if self.proc.pid() is not None:
            return False
        self._init()
        user = _os_user()
        argv = [
            str(PG_BIN / "postgres"), "-D", str(self.data_dir),
            "-c", f"listen_addresses={self.host}", "-c", f"port={self.port}",
            "-c", "unix_socket_directories=", "-c", "wal_level=logical",
            "-c", "max_replication_slots=10", "-c", "max_wal_senders=10",
            "-c", "shared_buffers=64MB", "-c", "max_connections=60",
            "-c", "logging_collector=off", "-c", "log_min_messages=warning",
            # Logical decoding only sees flushed WAL: flush asynchronous commits within ~10 ms,
            # not the default 200 ms (an application committing with synchronous_commit=off,
            # like the benchmark's load, would otherwise wait that long to be captured).
            "-c", "wal_writer_delay=10ms",
        ]  # fmt: skip
        self.proc.start(argv, user=user)
        require_started(
            self.proc,
            lambda: port_open(self.host, self.port) and self._accepts(),
            60,
            f"Is port {self.port} free? Change it with HUB_{self.system.upper()}_PG_PORT.",
        )
        return True

    def _accepts(self) -> bool:
        try:
            with psycopg.connect(self.dsn(SUPERUSER, "postgres")):
                return True
        except psycopg.OperationalError:
            return False

    def stop(self) -> bool:
        # SIGINT is PostgreSQL's "fast" shutdown: roll back sessions, checkpoint, exit.
        import signal

        return self.proc.stop(signal.SIGINT, timeout=30)

    def provision(self, definition: ConnectorDefinition, schema_sql: str,
                  sinks: Sequence[SinkDefinition] = ()) -> None:  # fmt: skip
        """Database, roles, schema, grants and publication; every step idempotent. ``sinks``
        writing into this database get a login with write rights on their table only."""
        cdc_role = definition.connection.user
        with psycopg.connect(self.dsn(SUPERUSER, "postgres"), autocommit=True) as admin:
            for role, secret, attributes in (
                (self.app_role, f"{self.system}.app", sql.SQL("LOGIN")),
                (cdc_role, f"{self.system}.cdc", sql.SQL("LOGIN REPLICATION")),
                *((sink.user, sink_secret(sink), sql.SQL("LOGIN")) for sink in sinks),
            ):
                exists = admin.execute(
                    "SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)
                ).fetchone()
                verb = sql.SQL("ALTER" if exists else "CREATE")
                password = self.secrets.password(secret).get_secret_value()
                admin.execute(
                    sql.SQL("{} ROLE {} WITH {} PASSWORD {}").format(
                        verb, sql.Identifier(role), attributes, sql.Literal(password)
                    )
                )
            if not admin.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
            ).fetchone():
                admin.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(self.database), sql.Identifier(self.app_role)
                    )
                )
        with psycopg.connect(self.dsn(self.app_role)) as app:
            app.execute(sql.SQL(schema_sql))  # trusted DDL shipped with the hub
            schemas = sorted({table.split(".", 1)[0] for table in definition.tables})
            for schema in schemas:
                app.execute(
                    sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
                        sql.Identifier(schema), sql.Identifier(cdc_role)
                    )
                )
                app.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(
                    sql.Identifier(schema), sql.Identifier(cdc_role)))  # fmt: skip
            for sink in sinks:
                schema, _, table = sink.table.partition(".")
                app.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
                    sql.Identifier(schema), sql.Identifier(sink.user)))  # fmt: skip
                app.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {}").format(
                    sql.Identifier(schema, table), sql.Identifier(sink.user)))  # fmt: skip
            tables = sql.SQL(", ").join(
                sql.Identifier(*table.split(".", 1)) for table in definition.tables
            )
            exists = app.execute(
                "SELECT 1 FROM pg_publication WHERE pubname = %s", (definition.publication,)
            ).fetchone()
            statement = sql.SQL(
                "ALTER PUBLICATION {} SET TABLE {}"
                if exists
                else "CREATE PUBLICATION {} FOR TABLE {}"
            )
            app.execute(statement.format(sql.Identifier(definition.publication), tables))
            app.commit()


def sink_secret(sink: SinkDefinition) -> str:
    """The local stack's name of a sink login's password."""
    return f"{sink.system}.sink.{sink.user}"


def schema_sql(system: str) -> str:
    """The DDL of a source system's database, shipped in hub/sql/."""
    return resources.files("hub.sql").joinpath(f"{system}_schema.sql").read_text()
