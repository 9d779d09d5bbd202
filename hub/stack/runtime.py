"""Kafka, Kafka Connect and Debezium jars, fetched from Maven Central with ``mvn`` into a cache.

The cache directory is keyed by a hash of the pom, so changing a version fetches a fresh set and a
second run with the same pom needs no network.
"""

from __future__ import annotations

import hashlib
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from hub.errors import StackError
from hub.settings import HubSettings

# Maven profile → directory under the cache. Plugins each get their own directory on plugin.path.
PROFILES: dict[str, str] = {
    "kafka": "kafka/lib",
    "debezium-postgres": "plugins/debezium-postgres",
    "debezium-mariadb": "plugins/debezium-mariadb",
    "debezium-jdbc": "plugins/debezium-jdbc",
}


@dataclass(frozen=True)
class Runtime:
    root: Path

    @property
    def kafka_classpath(self) -> str:
        return str(self.root / "kafka" / "lib" / "*")

    @property
    def plugin_path(self) -> Path:
        return self.root / "plugins"


def pom(settings: HubSettings) -> Path:
    return settings.repo_root / "deploy" / "runtime" / "pom.xml"


def runtime_dir(settings: HubSettings) -> Path:
    digest = hashlib.sha256(pom(settings).read_bytes()).hexdigest()[:12]
    return settings.jar_cache / digest


def ensure_runtime(settings: HubSettings, console: Console) -> Runtime:
    """Fetch whatever profile is not cached yet; raises ``StackError`` with mvn's log on failure."""
    root = runtime_dir(settings)
    for profile, subdir in PROFILES.items():
        target = root / subdir
        marker = target / ".complete"
        if marker.exists():
            continue
        target.mkdir(parents=True, exist_ok=True)
        log = root / f"mvn-{profile}.log"
        started = time.monotonic()
        argv = [
            "mvn", "-B", "-f", str(pom(settings)), f"-P{profile}",
            "dependency:copy-dependencies", f"-DoutputDirectory={target}", "-DincludeScope=runtime",
        ]  # fmt: skip
        with (
            console.status(f"Fetching {profile} jars from Maven Central (mvn, log {log})…"),
            log.open("wb") as out,
        ):
            code = subprocess.run(
                argv, stdout=out, stderr=subprocess.STDOUT, check=False
            ).returncode
        if code != 0:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
            raise StackError(
                f"mvn could not fetch the {profile} jars (exit {code}). Log: {log}\n{tail}\n"
                "Check access to Maven Central (or a mirror in ~/.m2/settings.xml), then run again."
            )
        jars = len(list(target.glob("*.jar")))
        marker.write_text(f"{jars} jars\n")
        console.print(f"[green]✓[/] {profile}: {jars} jars in {time.monotonic() - started:.1f}s")
    return Runtime(root)
