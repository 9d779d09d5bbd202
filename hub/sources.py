"""Reading a source database directly, for ``hub reconcile`` and ``hub repair``.

Any declared system is read the same way: at the host and port Kafka Connect reaches it
(``hub.connector_ops.endpoint_for``), as the login its connector uses (``connection.user``), with
the password from the Connect secrets file (``hub secrets set``). That login can already read
every captured table (Debezium snapshots them) and the source's log position.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from hub.connectors import ConnectorDefinition
from hub.errors import StackError
from hub.settings import HubSettings


@dataclass(frozen=True)
class SourceLogin:
    system: str
    kind: str  # postgres, mariadb
    host: str
    port: int
    database: str
    user: str
    password: SecretStr


def login_for(settings: HubSettings, definition: ConnectorDefinition) -> SourceLogin:
    """How to read ``definition``'s database; ``StackError`` saying what is missing."""
    from hub.connector_ops import endpoint_for
    from hub.stack.secrets import read_properties

    endpoint = endpoint_for(settings, definition)
    conn = definition.connection
    if not endpoint.secrets_file.exists():
        raise StackError(f"no Connect secrets file at {endpoint.secrets_file}")
    password = read_properties(endpoint.secrets_file).get(conn.password_secret)
    if password is None:
        raise StackError(
            f"{conn.password_secret} is not in {endpoint.secrets_file}: hub secrets set "
            f"{conn.password_secret}"
        )
    return SourceLogin(definition.system, conn.kind, endpoint.hostname, endpoint.port,
                       conn.database, conn.user, SecretStr(password))  # fmt: skip


def connect(login: SourceLogin) -> Any:
    """A DB-API connection (psycopg or PyMySQL), not in autocommit."""
    secret = login.password.get_secret_value()
    if login.kind == "postgres":
        import psycopg

        return psycopg.connect(host=login.host, port=login.port, dbname=login.database,
                               user=login.user, password=secret, connect_timeout=5)  # fmt: skip
    import pymysql

    return pymysql.connect(host=login.host, port=login.port, database=login.database,
                           user=login.user, password=secret, connect_timeout=5, autocommit=False)  # fmt: skip


def position_then_snapshot(conn: Any, kind: str) -> tuple[str, str | None]:
    """Open a consistent snapshot for the reads that follow on ``conn``; return where it stands
    in the source's log, as the hub writes positions, and (PostgreSQL) the snapshot itself.

    MariaDB names the binlog position its snapshot is consistent with: every change the reads
    miss sorts after it. PostgreSQL positions sort a transaction by the commit before it, so no
    position splits what a snapshot saw from what it did not: there the snapshot
    (``pg_current_snapshot()``) marks the keys, and the position (the WAL location read just
    before, one byte back) only says where it stands."""
    if kind == "postgres":
        import psycopg

        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT pg_current_wal_lsn()::text")
            high, low = str(cur.fetchone()[0]).split("/")
        lsn = (int(high, 16) << 32 | int(low, 16)) - 1
        conn.autocommit = False
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        with conn.cursor() as cur:  # the first statement takes the transaction's snapshot
            cur.execute("SELECT pg_current_snapshot()::text")
            snapshot = str(cur.fetchone()[0])
        return f"pg:{lsn:016x}:{lsn:016x}", snapshot
    with conn.cursor() as cur:
        cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        cur.execute(
            "SHOW STATUS WHERE Variable_name IN ('Binlog_snapshot_file', 'Binlog_snapshot_position')"
        )
        status = {str(name).lower(): str(value) for name, value in cur.fetchall()}
    file, pos = status.get("binlog_snapshot_file"), status.get("binlog_snapshot_position")
    if not file or not pos:
        raise StackError(f"{kind}: the server writes no binary log (log_bin is off)")
    return f"mdb:{file}:{int(pos) - 1:016x}:ffffffff", None
