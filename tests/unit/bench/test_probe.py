"""Reading source commit times from raw envelopes and unified records; /proc accounting."""

from __future__ import annotations

import os

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
    use = process_use(os.getpid())
    assert use.cpu_s > 0 and use.rss_mb > 10 and use.peak_rss_mb >= use.rss_mb
