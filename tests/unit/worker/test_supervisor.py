"""The supervisor starts the worker afresh when, and only when, it asks to."""

from __future__ import annotations

import sys
from pathlib import Path

from hub.worker.continuity import EXIT_RESTART
from hub.worker.supervisor import supervise


def child(tmp_path: Path, codes: list[int]) -> list[str]:
    """A child that exits with the next of ``codes`` each time it is started (a counter file)."""
    script = tmp_path / "child.py"
    script.write_text(
        "import pathlib, sys\n"
        f"runs = pathlib.Path({str(tmp_path / 'runs')!r})\n"
        "n = int(runs.read_text()) if runs.exists() else 0\n"
        "runs.write_text(str(n + 1))\n"
        f"sys.exit({codes!r}[n])\n"
    )
    return [sys.executable, str(script)]


def runs(tmp_path: Path) -> int:
    return int((tmp_path / "runs").read_text())


def test_a_worker_asking_for_a_fresh_start_is_started_again(tmp_path):
    assert supervise(child(tmp_path, [EXIT_RESTART, EXIT_RESTART, 0]), pause=0) == 0
    assert runs(tmp_path) == 3


def test_any_other_exit_status_ends_the_supervisor_with_it(tmp_path):
    assert supervise(child(tmp_path, [3, 0])) == 3
    assert runs(tmp_path) == 1


def test_too_many_fresh_starts_in_the_window_is_a_failure(tmp_path):
    assert supervise(child(tmp_path, [EXIT_RESTART] * 5), max_restarts=2, pause=0) == 1
    assert runs(tmp_path) == 3


SUPERVISOR = """
import sys
from hub.worker.supervisor import supervise
sys.exit(supervise([sys.executable, {script!r}], stop_timeout={stop_timeout}))
"""


def start_supervisor(tmp_path: Path, child_code: str, stop_timeout: float = 30.0):
    """A supervisor in a process of its own, whose child writes its pid, then runs ``child_code``."""
    import subprocess

    script = tmp_path / "child.py"
    script.write_text(
        f"import os, pathlib, signal, time\npathlib.Path({str(tmp_path / 'pid')!r}).write_text("
        f"str(os.getpid()))\n{child_code}\n"
    )
    code = SUPERVISOR.format(script=str(script), stop_timeout=stop_timeout)
    proc = subprocess.Popen([sys.executable, "-c", code])
    child = wait_for(lambda: (tmp_path / "pid").exists() and int((tmp_path / "pid").read_text()))
    return proc, child


def wait_for(check, timeout: float = 20.0):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.05)
    raise AssertionError("not within the deadline")


def gone(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie (exited, not yet reaped by its parent) is gone too
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")


def test_the_worker_dies_with_its_supervisor_whatever_kills_it(tmp_path):
    import os
    import signal

    proc, child = start_supervisor(tmp_path, "time.sleep(600)")
    os.kill(proc.pid, signal.SIGKILL)  # no chance to pass anything on
    proc.wait(10)
    wait_for(lambda: gone(child))  # the parent-death signal took it down: no orphan


def test_a_worker_that_ignores_the_stop_signal_is_killed_after_the_stop_timeout(tmp_path):
    import os
    import signal
    import time

    proc, child = start_supervisor(
        tmp_path, "signal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(600)", stop_timeout=1
    )
    started = time.monotonic()
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(20) == 128 + signal.SIGKILL
    assert time.monotonic() - started < 15  # not the child's 600 s
    assert gone(child)
