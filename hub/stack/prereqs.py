"""Check (and, as root on Debian, install) what the local stack needs.

JDK 17+, Maven, the PostgreSQL 15 server and the MariaDB server, all from Debian's packages.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from hub.errors import StackError

PG_BIN = Path("/usr/lib/postgresql/15/bin")


@dataclass(frozen=True)
class Prerequisite:
    name: str
    debian_package: str

    def missing(self) -> str | None:
        """None when present and usable, else what is wrong."""
        raise NotImplementedError


class Java(Prerequisite):
    def missing(self) -> str | None:
        if shutil.which("java") is None:
            return "java not on PATH"
        out = subprocess.run(
            ["java", "-version"], capture_output=True, text=True, check=False
        ).stderr
        match = re.search(r'version "(\d+)', out)
        if not match or int(match.group(1)) < 17:
            return f"Java 17 or newer is needed, found: {out.splitlines()[0] if out else 'nothing'}"
        return None


class Maven(Prerequisite):
    def missing(self) -> str | None:
        return None if shutil.which("mvn") else "mvn not on PATH"


class Postgres(Prerequisite):
    def missing(self) -> str | None:
        for tool in ("initdb", "postgres"):
            if not (PG_BIN / tool).exists():
                return f"{PG_BIN / tool} not found"
        return None


class MariaDb(Prerequisite):
    def missing(self) -> str | None:
        for tool in ("/usr/sbin/mariadbd", "mariadb-install-db", "mariadb"):
            if not (Path(tool).exists() if tool.startswith("/") else shutil.which(tool)):
                return f"{tool} not found"
        return None


PREREQUISITES: tuple[Prerequisite, ...] = (
    Java("JDK 17", "openjdk-17-jdk-headless"),
    Maven("Maven", "maven"),
    Postgres("PostgreSQL 15 server", "postgresql-15"),
    MariaDb("MariaDB server", "mariadb-server"),
)


def _can_install() -> bool:
    return (
        os.geteuid() == 0 and Path("/etc/debian_version").exists() and bool(shutil.which("apt-get"))
    )


def ensure(console: Console) -> None:
    """Raise ``StackError`` naming what is missing and how to install it; install it as root."""
    missing = [(p, why) for p in PREREQUISITES if (why := p.missing())]
    if not missing:
        return
    packages = " ".join(p.debian_package for p, _ in missing)
    command = f"apt-get update && apt-get install -y --no-install-recommends {packages}"
    if not _can_install():
        lines = "\n".join(f"  - {p.name}: {why}" for p, why in missing)
        raise StackError(f"missing prerequisites:\n{lines}\nInstall them with:\n  sudo {command}")
    with console.status(f"Installing {packages} (apt-get)…"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        result = subprocess.run(
            ["sh", "-c", command], capture_output=True, text=True, env=env, check=False
        )
    if result.returncode != 0:
        raise StackError(f"'{command}' failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    still = [p.name for p in PREREQUISITES if p.missing()]
    if still:
        raise StackError(f"still missing after apt-get: {', '.join(still)}")
    console.print(f"[green]✓[/] installed {packages}")
