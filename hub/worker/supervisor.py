"""``hub worker`` runs the Faust worker in a child process and starts it afresh when it asks to.

A worker exits with ``EXIT_RESTART`` when it found records skipped after a rebalance (see
continuity.py): a new process reads again from the committed offsets. Any other exit ends the
supervisor with the same status (a flood of dead letters, a refused output, a signal). Too many
fresh starts in a short time is a failure too: it stops loudly rather than looping.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from collections import deque
from collections.abc import Sequence
from types import FrameType

from hub.worker.continuity import EXIT_RESTART

log = logging.getLogger("hub.worker.supervisor")


def supervise(
    argv: Sequence[str], max_restarts: int = 10, window: float = 600.0, pause: float = 1.0
) -> int:
    """Run ``argv`` until it exits with something other than ``EXIT_RESTART``; returns its status.

    SIGTERM and SIGINT are passed on to the child, and stop the supervisor once the child exits.
    """
    child: subprocess.Popen[bytes] | None = None
    stopping = False
    restarts: deque[float] = deque()

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while True:
        child = subprocess.Popen(list(argv))
        code = child.wait()
        if code != EXIT_RESTART or stopping:
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
