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
