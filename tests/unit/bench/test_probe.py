"""Reading source commit times from raw envelopes and unified records; /proc accounting."""

from __future__ import annotations

import os
from pathlib import Path

import orjson

from hub.bench.probe import committed_ms, process_tree, process_use
from hub.topics import registry


def test_a_unified_record_gives_its_system_and_source_commit_time():
    spec = registry()["unified.inventory"]
    value = orjson.dumps(
        {"source_system": "pos", "source_committed_at": "2026-11-23T16:00:00.250000+00:00"}
    )
    assert committed_ms(spec, value) == ("pos", 1795449600250.0)


def test_a_raw_envelope_prefers_microseconds_and_falls_back_to_milliseconds():
    spec = registry()["raw.pos.stock"]
    micro = orjson.dumps({"op": "u", "source": {"ts_ms": 1795449600250, "ts_us": 1795449600250123}})
    milli = orjson.dumps({"op": "u", "source": {"ts_ms": 1795449600250}})
    assert committed_ms(spec, micro) == ("pos", 1795449600250.123)
    assert committed_ms(spec, milli) == ("pos", 1795449600250.0)


def test_this_process_is_measured_from_proc():
    assert os.getpid() in process_tree(os.getppid())
    use = process_use(os.getpid())  # this process and whatever it started (summed)
    status = dict(
        line.split(":", 1)
        for line in Path("/proc/self/status").read_text().splitlines()
        if ":" in line
    )
    own_rss_mb = int(status["VmRSS"].split()[0]) / 1024
    assert use.cpu_s > 0
    assert use.rss_mb >= own_rss_mb * 0.9  # the tree holds at least this process
    assert use.peak_rss_mb >= own_rss_mb * 0.9  # no process of it peaked below its current size


def test_a_golden_customer_made_by_a_manual_decision_has_no_source_commit_to_measure():
    import orjson

    from hub.bench.probe import committed_ms

    spec = registry()["unified.customer"]
    made = {"source_system": "shop", "source_committed_at": "2026-12-07T12:00:00Z"}
    assert committed_ms(spec, orjson.dumps(made)) == ("shop", 1796644800000.0)
    manual = {"source_system": None, "source_committed_at": None}
    assert committed_ms(spec, orjson.dumps(manual)) is None
