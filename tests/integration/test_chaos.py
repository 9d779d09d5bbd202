"""`make chaos`: one long seeded write load with many faults at random points, then the same two
checks as the fault tests: nothing lost (`hub reconcile` agrees) and nothing applied twice.

Two workers of one group run throughout, both active on their share of the partitioned raw
topics, so killing one is also a takeover of its partitions by the other. The faults are drawn
from: kill -9 of a worker (restarted a moment later), SIGSTOP of a worker for 5-25 s then SIGCONT
(past the 15 s session timeout the other takes its partitions over, and the paused one must find
itself fenced), kill -9 of Kafka Connect, a restart of one source database, and a restart of the
Kafka broker. Besides nothing lost and nothing applied twice, no key may go back in source order.
``HUB_CHAOS_FAULTS`` (default 20) and ``HUB_CHAOS_SEED`` (default
2026) choose how many and which; the figures are printed at the end.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
from collections import Counter

import pytest

from tests.integration.harness import (
    Load,
    Worker,
    drained,
    duplicate_effects,
    kill9_connect,
    out_of_order_effects,
    reconcile_report,
    restart_kafka,
    restart_source,
    shared_out,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

FAULTS = int(os.environ.get("HUB_CHAOS_FAULTS", "20"))
SEED = int(os.environ.get("HUB_CHAOS_SEED", "2026"))


def test_random_faults_under_load_lose_nothing_and_apply_nothing_twice(stack, worker):
    worker.terminate()  # the session's worker: this test runs two of its own, same group
    worker.wait(60)
    workers = [Worker(stack, "chaos-a"), Worker(stack, "chaos-b")]
    for each in workers:
        each.start()
    rng = random.Random(SEED)
    injected: Counter[str] = Counter()
    wait_until(
        lambda: shared_out(stack, workers), "two workers sharing the raw partitions out", 180
    )
    load = Load(stack, actions=None, rate=40, seed=SEED)
    load.start()
    started = time.monotonic()
    try:
        for n in range(1, FAULTS + 1):
            time.sleep(rng.uniform(2, 8))
            kind = rng.choice(["worker", "worker", "pause", "connect", "source", "kafka"])
            if kind in ("worker", "pause"):
                alive = [w for w in workers if w.alive()]
                victim = rng.choice(alive)
                held = sorted(victim.partitions())
                role = f"worker holding raw partitions {held}" if held else "idle worker"
                if kind == "worker":
                    kind = f"kill -9 {role}"
                    victim.kill9()
                    time.sleep(rng.uniform(0, 3))
                    victim.start()
                else:
                    kind = f"SIGSTOP {role}"
                    victim.signal_all(signal.SIGSTOP)
                    time.sleep(rng.uniform(5, 25))
                    victim.signal_all(signal.SIGCONT)
            elif kind == "kafka":
                restart_kafka(stack, rng.uniform(0, 3))
            elif kind == "connect":
                kill9_connect(stack, rng.uniform(0, 3))
            else:
                system = rng.choice(["pos", "shop", "erp"])
                kind = f"source {system}"
                restart_source(stack, system, rng.uniform(0, 3))
            injected[kind] += 1
            sys.stderr.write(f"[chaos] fault {n}/{FAULTS}: {kind} "
                             f"({time.monotonic() - started:.0f} s, {load.done} actions)\n")  # fmt: skip
        load.finish()
        assert not load.is_alive(), "the load did not stop"
        drained(stack)
        report = reconcile_report(stack)
        records, twice = duplicate_effects(stack)
        disorder = out_of_order_effects(stack)
        figures = {
            "faults": dict(injected),
            "seed": SEED,
            "actions": load.done,
            "load_errors": dict(load.errors),
            "keys_compared": {t: r["source_keys"] for t, r in report["topics"].items()},
            "lost": sum(len(r["missing"]) + len(r["wrong"]) for r in report["topics"].values()),
            "extra": sum(len(r["extra"]) for r in report["topics"].values()),
            "duplicate_effects": len(twice),
            "out_of_order_keys": len(disorder),
            "unified_records": records,
            # Workers that started afresh: records skipped after a rebalance, fenced after a
            # pause, or stalled.
            "fresh_starts": sum(
                w.log.read_text(errors="replace").count("asked for a fresh start") for w in workers
            ),
        }
        sys.stderr.write(f"[chaos] {json.dumps(figures)}\n")
        assert report["agree"], json.dumps(report)[:3000]
        assert not twice, f"same source position twice: {list(twice.items())[:5]}"
        assert not disorder, f"keys back in source order: {list(disorder.items())[:5]}"
    finally:
        load.finish()
        for each in workers:
            each.stop()
