"""One MariaDB server per source system (the ERP), binary log in ROW format for Debezium.

Run as the ``mysql`` OS user when we are root. Administration goes through the server's unix socket
with the ``mariadb`` client (socket authentication: no admin password exists); the application and
Debezium log in over TCP with generated passwords.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

import pymysql

from hub.connectors import ConnectorDefinition, SinkDefinition
from hub.errors import StackError
from hub.stack.procs import port_open, require_started
from hub.stack.source import SourceServer

MARIADBD = Path("/usr/sbin/mariadbd")


def _os_user() -> str:
    return "mysql" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name


def connect(dsn: str) -> pymysql.connections.Connection[pymysql.cursors.Cursor]:
    """Open a ``mariadb://user@host:port/db?option_file=…`` DSN; the password is in the file."""
    url = urlsplit(dsn)
    if url.scheme != "mariadb" or not url.hostname or not url.port:
        raise ValueError(f"not a mariadb:// DSN: {dsn}")
    options = parse_qs(url.query)
    return pymysql.connect(
        host=url.hostname,
        port=url.port,
        user=url.username,
        database=url.path.lstrip("/"),
        read_default_file=options["option_file"][0],
        read_default_group=url.username,
        autocommit=False,
        connect_timeout=5,
    )


@dataclass(frozen=True)
class MariaDbSource(SourceServer):
    """A MariaDB source: ``system`` names it in DSNs, processes and the state dir."""

    KIND: ClassVar[str] = "mariadb"

    @property
    def socket(self) -> Path:
        return self.state_dir / "mariadb" / f"{self.system}.sock"

    @property
    def option_file(self) -> Path:
        return self.secrets.dir / f"{self.system}.my.cnf"

    def dsn(self, role: str | None = None) -> str:
        """The application's DSN; the password stays in the option file."""
        return (
            f"mariadb://{role or self.app_role}@{self.host}:{self.port}/{self.database}"
            f"?option_file={self.option_file}"
        )

    def write_option_file(self, logins: dict[str, str]) -> None:
        """One ``[role]`` group per login (read with ``read_default_group``)."""
        self.secrets.write_file(
            self.option_file,
            "".join(
                f"[{role}]\npassword={self.secrets.password(key).get_secret_value()}\n"
                for role, key in logins.items()
            ),
        )

    def _init(self) -> None:
        if (self.data_dir / "mysql").exists():
            return
        user = _os_user()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        entry = pwd.getpwnam(user)
        for path in (self.data_dir, self.data_dir.parent):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        install = shutil.which("mariadb-install-db") or "mariadb-install-db"
        result = subprocess.run(
            [install, "--no-defaults", f"--datadir={self.data_dir}", f"--user={user}",
             "--skip-test-db", "--auth-root-authentication-method=socket"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            raise StackError(
                f"mariadb-install-db for {self.system} failed:\n{result.stdout[-1500:]}"
                f"{result.stderr[-1500:]}"
            )

    def start(self) -> bool:
        if self.proc.pid() is not None:
            return False
        self._init()
        argv = [
            str(MARIADBD), "--no-defaults", f"--datadir={self.data_dir}", f"--user={_os_user()}",
            f"--bind-address={self.host}", f"--port={self.port}", f"--socket={self.socket}",
            f"--pid-file={self.data_dir / 'mariadbd.pid'}", "--skip-name-resolve",
            "--server-id=1", f"--log-bin={self.data_dir / 'binlog'}", "--binlog-format=ROW",
            "--binlog-row-image=FULL", "--expire-logs-days=7", "--innodb-buffer-pool-size=64M",
            "--max-connections=60", "--character-set-server=utf8mb4", "--log-warnings=1",
            # A local development and benchmark server: the redo log is flushed once a second,
            # not at every commit (as the load's PostgreSQL sessions commit with
            # synchronous_commit=off); the binary log Debezium reads is written at each commit.
            "--innodb-flush-log-at-trx-commit=2",
        ]  # fmt: skip
        self.proc.start(argv)
        require_started(
            self.proc,
            lambda: port_open(self.host, self.port) and self.socket.exists(),
            90,
            f"Is port {self.port} free? Change it with HUB_{self.system.upper()}_MARIADB_PORT.",
        )
        return True

    def stop(self) -> bool:
        return self.proc.stop(signal.SIGTERM, timeout=60)

    def admin(self, statements: str) -> None:
        """Run SQL as the server's administrator through the unix socket."""
        result = subprocess.run(
            ["mariadb", "--no-defaults", f"--socket={self.socket}", "-u", _os_user_admin()],
            input=statements, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise StackError(f"MariaDB {self.system}: {result.stderr.strip()}")

    def provision(self, definition: ConnectorDefinition, schema_sql: str,
                  sinks: Sequence[SinkDefinition] = ()) -> None:  # fmt: skip
        """Database, logins, grants, schema; every step idempotent."""
        cdc = definition.connection.user
        app_password = self.secrets.password(f"{self.system}.app").get_secret_value()
        cdc_password = self.secrets.password(f"{self.system}.cdc").get_secret_value()
        db = self.database
        self.admin(
            f"CREATE DATABASE IF NOT EXISTS `{db}` CHARACTER SET utf8mb4;\n"
            f"CREATE USER IF NOT EXISTS '{self.app_role}'@'%' IDENTIFIED BY '{app_password}';\n"
            f"ALTER USER '{self.app_role}'@'%' IDENTIFIED BY '{app_password}';\n"
            f"GRANT ALL PRIVILEGES ON `{db}`.* TO '{self.app_role}'@'%';\n"
            f"CREATE USER IF NOT EXISTS '{cdc}'@'%' IDENTIFIED BY '{cdc_password}';\n"
            f"ALTER USER '{cdc}'@'%' IDENTIFIED BY '{cdc_password}';\n"
            f"GRANT SELECT, RELOAD, SHOW DATABASES, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO '{cdc}'@'%';\n"
            f"USE `{db}`;\n{schema_sql}\n"
        )


def _os_user_admin() -> str:
    # mariadb-install-db gives the OS user who ran it (root, or the invoking user) socket access.
    return "root" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
