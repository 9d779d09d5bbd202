"""What every source database server of the local stack has in common."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from hub.stack.procs import Proc
from hub.stack.secrets import StackSecrets


@dataclass(frozen=True)
class SourceServer:
    """One database server for one source ``system``; its process and data live in the state dir."""

    KIND: ClassVar[str] = ""  # postgres, mariadb: names the process and the data directory

    system: str
    database: str
    app_role: str  # the source application's own login (owns the schema)
    host: str
    port: int
    state_dir: Path
    secrets: StackSecrets

    @property
    def proc(self) -> Proc:
        return Proc(f"{self.KIND}-{self.system}", self.state_dir)

    @property
    def data_dir(self) -> Path:
        return self.state_dir / self.KIND / self.system
