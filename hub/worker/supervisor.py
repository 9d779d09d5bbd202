"""``hub worker`` runs the Faust worker in a child process and starts it afresh when it asks to.

A worker exits with ``EXIT_RESTART`` when it cannot go on safely but a new process can: records
skipped after a rebalance (continuity.py), no progress while records wait (liveness.py), fenced
by a newer holder of the raw topics (output.py). A new process reads again from the committed
offsets. Any other exit ends the supervisor with the same status (a flood of dead letters, a
refused output, a signal). Too many fresh starts in a short time is a failure too: it stops
loudly rather than looping.

The child never outlives the supervisor: it is started with a parent-death signal (Linux
``PR_SET_PDEATHSIG``), so a ``kill -9`` of the supervisor takes the child down with it, and a
second ``hub worker`` never runs beside an orphan. A stop (SIGTERM, SIGINT) is bounded: the child
gets ``stop_timeout`` seconds to stop cleanly, then it is killed.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from types import FrameType

from hub.worker.continuity import EXIT_RESTART

log = logging.getLogger("hub.worker.supervisor")

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent: int, signum: int = signal.SIGTERM) -> Callable[[], None]:
    """A ``preexec_fn``: the child gets ``signum`` when the process that started it dies.

    The child's own stop deadline then applies (it exits hard if a clean stop takes too long).
    If the parent died already between the fork and this call, the child leaves at once.
    """

    def arm() -> None:
        if sys.platform.startswith("linux"):
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0) != 0:
                os._exit(70)  # cannot promise to die with the supervisor: do not start at all
        if os.getppid() != parent:
            os._exit(70)

    return arm


def supervise(
    argv: Sequence[str],
    max_restarts: int = 10,
    window: float = 600.0,
    pause: float = 1.0,
    stop_timeout: float = 35.0,
) -> int:
    """Run ``argv`` until it exits with something other than ``EXIT_RESTART``; returns its status.

    SIGTERM and SIGINT are passed on to the child, and stop the supervisor once the child exits;
    a child still running ``stop_timeout`` seconds after the signal is killed (SIGKILL).
    """
    child: subprocess.Popen[bytes] | None = None
    stop_by: float | None = None
    restarts: deque[float] = deque()

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal stop_by
        if stop_by is None:
            stop_by = time.monotonic() + stop_timeout
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while True:
        child = subprocess.Popen(list(argv), preexec_fn=die_with_parent(os.getpid()))
        code = _wait(child, lambda: stop_by)
        if code != EXIT_RESTART or stop_by is not None:
            return code if code >= 0 else 128 - code  # killed by a signal: the shell's convention
        now = time.monotonic()
        restarts.append(now)
        while restarts and restarts[0] < now - window:
            restarts.popleft()
        if len(restarts) > max_restarts:
            log.critical("the worker asked for %d fresh starts within %.0f s: giving up",
                         len(restarts), window)  # fmt: skip
            return 1
        log.warning("the worker asked for a fresh start (%d within %.0f s); starting it again",
                    len(restarts), window)  # fmt: skip
        time.sleep(pause)


def _wait(child: subprocess.Popen[bytes], stop_by: Callable[[], float | None]) -> int:
    """The child's exit status; kills it once a stop has lasted past its deadline."""
    while True:
        try:
            return child.wait(0.2)
        except subprocess.TimeoutExpired:
            deadline = stop_by()
            if deadline is not None and time.monotonic() > deadline:
                log.critical("the worker did not stop in time after the signal: killing it")
                child.kill()
                return child.wait()
