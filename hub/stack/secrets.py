"""Passwords of the local stack: generated once, kept 0600 under ``<state>/secrets``.

They reach their users by reference only: libpq reads ``pgpass`` (DSNs carry ``passfile=``) and
Kafka Connect reads ``connect.properties`` through its FileConfigProvider (``${file:...}``), so no
password appears in a DSN, a log, a connector config or a Connect REST answer.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from pydantic import SecretStr


class StackSecrets:
    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "secrets"
        self._store = self.dir / "passwords.json"

    @property
    def pgpass(self) -> Path:
        return self.dir / "pgpass"

    @property
    def connect_properties(self) -> Path:
        return self.dir / "connect.properties"

    def write_file(self, path: Path, text: str) -> None:
        """Write ``text`` to a 0600 file."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(text)

    def password(self, name: str) -> SecretStr:
        """The password called ``name``, created on first use."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o700)
        known: dict[str, str] = json.loads(self._store.read_text()) if self._store.exists() else {}
        if name not in known:
            known[name] = secrets.token_urlsafe(24)
            self.write_file(self._store, json.dumps(known, indent=2))
        return SecretStr(known[name])

    def write_pgpass(self, host: str, logins: list[tuple[int, str, str]]) -> None:
        """``logins``: (port, database role, password name)."""
        lines = [
            f"{host}:{port}:*:{role}:{self.password(key).get_secret_value()}"
            for port, role, key in logins
        ]
        self.write_file(self.pgpass, "\n".join(lines) + "\n")

    def write_connect_properties(self, entries: dict[str, str]) -> None:
        """``entries``: property key (as named in connectors/*.yaml) → password name."""
        lines = [f"{prop}={self.password(key).get_secret_value()}" for prop, key in entries.items()]
        self.write_file(self.connect_properties, "\n".join(lines) + "\n")
