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
        write_private(path, text)

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
        """``entries``: property key (as named in connectors/*.yaml) → password name. Keys the
        file already holds for other systems (set with ``hub secrets set``) are kept as they are."""
        ours = {prop: self.password(key).get_secret_value() for prop, key in entries.items()}
        write_properties(self.connect_properties, ours)


def read_property_keys(path: Path) -> list[str]:
    """The keys of a Java properties file, in order (comments and blank lines skipped)."""
    if not path.exists():
        return []
    keys = []
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith(("#", "!")):
            keys.append(_split(stripped)[0])
    return keys


def read_properties(path: Path) -> dict[str, str]:
    """The keys and values of a Java properties file (the subset ``write_properties`` writes:
    one line per entry, backslash escapes)."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        stripped = line.lstrip()
        if stripped and not stripped.startswith(("#", "!")):
            key, raw = _split(stripped)
            values[key] = _unescape(raw)
    return values


def _unescape(text: str) -> str:
    out, chars = [], iter(text)
    for char in chars:
        if char == "\\":
            following = next(chars, "")
            out.append({"n": "\n", "r": "\r", "t": "\t"}.get(following, following))
        else:
            out.append(char)
    return "".join(out)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, readable by its owner only (0600, also when it existed)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def write_properties(path: Path, values: dict[str, str]) -> None:
    """Set ``values`` in the properties file at ``path``: lines of other keys stay as they are."""
    kept = []
    if path.exists():
        for line in path.read_text().splitlines():
            stripped = line.strip()
            key = _split(stripped)[0] if stripped and not stripped.startswith(("#", "!")) else None
            if key not in values:
                kept.append(line)
    lines = kept + [f"{_escape(key)}={_escape(value)}" for key, value in values.items()]
    write_private(path, "\n".join(lines) + "\n")


def _split(line: str) -> tuple[str, str]:
    """Key and raw value of one properties line (the first unescaped ``=``, ``:`` or blank)."""
    escaped = False
    for index, char in enumerate(line):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in "=: \t":
            return line[:index].replace("\\", ""), line[index + 1 :].lstrip()
    return line.replace("\\", ""), ""


def _escape(text: str) -> str:
    """Java properties escaping, enough for any password (FileConfigProvider reads it back)."""
    out = text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
    for special in "=: #!":
        out = out.replace(special, "\\" + special)
    return out
