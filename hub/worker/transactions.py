"""The worker's transactions, run on its event loop.

Agents write while the **gate** is open: while nothing holds it (``hold(reason)``): an assignment
holds it while the state is read back, and it starts held until the first one. A commit does not
hold the agents: it runs off the loop, and what they write meanwhile waits in the producer, in
order, for the next transaction (librdkafka takes no record while it commits).

Commits happen at the first quiet moment and at least every ``interval`` seconds while something
was written (``run``), and before Faust commits input offsets (the worker wraps Faust's producer
flush): an input offset is committed only once every output of its event is committed and visible.

Whatever cannot go on safely ends the process through ``leave`` (see app.py): fenced by a newer
holder of the raw topics, or a transaction Kafka refused (aborted: the next process redoes it from
the committed offsets).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from hub.worker import metrics
from hub.worker.continuity import EXIT_RESTART
from hub.worker.output import Fenced, OutputProducer, TransactionFailed, transactional_id

log = logging.getLogger("hub.worker")


class Transactions:
    def __init__(
        self,
        producer: OutputProducer,
        worker_id: str,
        interval: float,
        leave: Callable[[int, str], None],
        timeout: float = 30.0,
    ) -> None:
        self.producer, self.worker_id = producer, worker_id
        self.interval, self.timeout, self.leave = interval, timeout, leave
        self.gate = asyncio.Event()  # set while agents may write: nothing holds it
        self.holds: set[str] = {"unassigned"}
        self.holding: tuple[int, ...] = ()  # the raw partition numbers written for
        self._lock = asyncio.Lock()

    def hold(self, reason: str) -> None:
        self.holds.add(reason)
        self.gate.clear()

    def unhold(self, reason: str) -> None:
        self.holds.discard(reason)
        if not self.holds:
            self.gate.set()

    async def take(self, partitions: Iterable[int]) -> None:
        """Write for these raw partition numbers from now on: fences their previous holder and
        aborts what it left open. Call before reading any state back: what the previous holder
        committed is then final. Call with the gate held until the state is read."""
        async with self._lock:
            self.unhold("unassigned")
            self.holding = tuple(sorted(set(partitions)))
            self.producer.use(transactional_id(self.worker_id, self.holding))
            try:
                await self._off_loop(self.producer.fence, self.timeout)
            except Exception as exc:  # fenced already (a zombie), or Kafka did not answer
                self.leave(
                    EXIT_RESTART, f"cannot take the transactional id: {exc}; starting afresh"
                )

    async def release(self) -> None:
        """No raw partition is held any more: commit what is open (``Fenced`` leaves), then stop
        writing."""
        await self.commit()
        async with self._lock:
            self.hold("unassigned")
            self.holding = ()
            self.producer.use(None)

    async def commit(self) -> None:
        """Commit what was written since the last commit, if anything (off the loop; what the agents
        write meanwhile waits for the next transaction). Leaves the process when the transaction
        cannot be committed."""
        async with self._lock:
            if not self.holding or not self.producer.pending:
                return
            self.producer.deferring = True
            started = time.monotonic()
            try:
                await self._off_loop(self.producer.commit, self.timeout)
                metrics.TRANSACTION_SECONDS.observe(time.monotonic() - started)
            except Fenced as exc:
                self.leave(EXIT_RESTART, f"{exc}; this worker was replaced, starting afresh")
                return
            except TransactionFailed as exc:
                self.leave(EXIT_RESTART, f"transaction aborted, nothing of it is visible: {exc}; "
                                         "starting afresh from the committed offsets")  # fmt: skip
                return
            except Exception as exc:  # whatever else: never go on without commits
                self.leave(EXIT_RESTART, f"cannot commit the output transaction: {exc!r}; "
                                         "starting afresh from the committed offsets")  # fmt: skip
                return
            finally:
                self.producer.deferring = False
            self.producer.send_deferred()  # into the next transaction, in the order written

    async def run(self, idle: float = 0.003) -> None:
        """Commit as soon as the agents have written nothing for ``idle`` seconds (a quiet
        moment: the outputs become visible at once), and at least every ``interval`` seconds under
        a steady stream (each commit costs broker round trips). A Faust task: runs until
        cancelled."""
        last_commit = time.monotonic()
        while True:
            await asyncio.sleep(idle)
            if not self.producer.pending:
                last_commit = time.monotonic()
                continue
            now = time.monotonic()
            if now - self.producer.last_send >= idle or now - last_commit >= self.interval:
                await self.commit()
                last_commit = time.monotonic()

    async def _off_loop(self, call: Callable[[float], None], timeout: float) -> None:
        await asyncio.get_running_loop().run_in_executor(None, call, timeout)
