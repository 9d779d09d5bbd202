"""``hub demo`` (what ``make run`` runs): stack up, worker, sales simulator, the unified topics live
(inventory, availability, alerts, customers, order lines), and the API with its live dashboard."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from rich.console import Console

from hub.errors import StackError
from hub.settings import HubSettings
from hub.stack.manager import Stack
from hub.stack.procs import wait_for
from hub.tail import tail
from hub.topics import registry


def _spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "hub", *args], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_demo(settings: HubSettings, rate: float, keep_stack: bool) -> int:
    """Blocks until Ctrl-C; stops what it started. Returns an exit code."""
    console = Console(stderr=True)
    stack = Stack(settings, console)
    try:
        stack.up()
    except StackError as exc:
        console.print(f"[bold red]✗ {exc}[/]")
        return 1
    logs = stack.state_dir / "logs"
    worker = _spawn(["worker", "--loglevel", "warning"], logs / "worker.log")
    simulator = _spawn(["simulate", "--rate", str(rate)], logs / "simulator.log")
    api = _spawn(["api"], logs / "api.log")
    url = f"http://{settings.host}:{settings.api_port}"
    console.print(f"[green]✓[/] worker (log {logs / 'worker.log'}), sales simulator "
                  f"(log {logs / 'simulator.log'}) and API (log {logs / 'api.log'}) started — "
                  "Ctrl-C to stop")  # fmt: skip
    console.print(f"[bold]Dashboard:[/] {url}/dashboard   [bold]API:[/] {url}/docs")
    code = 0
    try:
        if wait_for(lambda: worker.poll() is not None or api.poll() is not None, 3.0):
            which = "worker" if worker.poll() is not None else "api"
            raise StackError(f"the {which} exited at start-up; see {logs / f'{which}.log'}"
                             + (f" (is port {settings.api_port} taken? set HUB_API_PORT)"
                                if which == "api" else ""))  # fmt: skip
        unified = [spec.id for spec in registry().topics.values() if spec.kind == "unified"]
        tail(settings, unified, from_beginning=False, limit=0, as_json=False)
    except StackError as exc:
        console.print(f"[bold red]✗ {exc}[/]")
        code = 1
    finally:
        with console.status("Stopping simulator and worker…"):
            _stop(simulator)
            _stop(api)
            _stop(worker)
        if not keep_stack:
            stack.down()
            console.print(
                "Data kept: 'make run' again resumes; 'hub stack down --purge' deletes it."
            )
    return code
