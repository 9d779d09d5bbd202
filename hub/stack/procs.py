"""Start, find and stop the stack's processes. Each has a pid file and a log under the state dir."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from hub.errors import StackError


@dataclass(frozen=True)
class Proc:
    """A component process. ``marker`` must appear in its command line (guards against pid reuse)."""

    name: str
    state_dir: Path

    @property
    def pidfile(self) -> Path:
        return self.state_dir / "run" / f"{self.name}.pid"

    @property
    def logfile(self) -> Path:
        return self.state_dir / "logs" / f"{self.name}.log"

    def pid(self) -> int | None:
        """The live pid of this component, or None."""
        try:
            pid = int(self.pidfile.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (FileNotFoundError, ProcessLookupError):
            return None
        if str(self.state_dir).encode() not in cmdline:
            return None
        # A zombie still has a cmdline entry on some kernels but is not running.
        stat = Path(f"/proc/{pid}/stat").read_text()
        return None if stat.rsplit(")", 1)[1].split()[0] == "Z" else pid

    def runs(self, needle: str) -> bool:
        """Whether the live process's command line contains ``needle`` (e.g. a jar directory)."""
        pid = self.pid()
        if pid is None:
            return False
        try:
            return needle.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            return False

    def start(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        user: str | None = None,
    ) -> int:
        """Start detached (own session), output appended to the log; returns the pid."""
        self.pidfile.parent.mkdir(parents=True, exist_ok=True)
        self.logfile.parent.mkdir(parents=True, exist_ok=True)
        with self.logfile.open("ab") as log:
            log.write(
                f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {' '.join(argv)}\n".encode()
            )
            log.flush()
            process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                start_new_session=True,
                user=user,
                group=user,
                extra_groups=[] if user else None,
            )
        self.pidfile.write_text(f"{process.pid}\n")
        # Until exec() the child still shows our own command line; wait for the real one.
        wait_for(lambda: self.pid() is not None or process.poll() is not None, 10.0, 0.02)
        return process.pid

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> bool:
        """Stop the process group gracefully, then kill it. Returns True if something was running."""
        pid = self.pid()
        if pid is None:
            self.pidfile.unlink(missing_ok=True)
            return False
        _signal_group(pid, sig)
        if not wait_for(lambda: self.pid() is None, timeout):
            _signal_group(pid, signal.SIGKILL)
            wait_for(lambda: self.pid() is None, 10.0)
        self.pidfile.unlink(missing_ok=True)
        return True

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log yet)"


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return
    except PermissionError:
        os.kill(pid, sig)


def wait_for(check: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    """Poll ``check`` until it is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (for tests and ad-hoc stacks)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def require_started(proc: Proc, ready: Callable[[], bool], timeout: float, what_to_do: str) -> None:
    """Wait until ``ready``; if the process dies or the time runs out, raise a ``StackError``."""

    def check() -> bool:
        if proc.pid() is None:
            raise StackError(
                f"{proc.name} exited during start-up. Log: {proc.logfile}\n"
                f"--- last lines ---\n{proc.tail()}\n--- {what_to_do}"
            )
        return ready()

    if not wait_for(check, timeout, 0.3):
        raise StackError(
            f"{proc.name} did not become ready within {timeout:.0f}s. Log: {proc.logfile}\n"
            f"--- last lines ---\n{proc.tail()}\n--- {what_to_do}"
        )
