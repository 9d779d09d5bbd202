"""What `hub bench --api` reads of wrk's report, and what its stream probe counts."""

from __future__ import annotations

from hub.bench.api import StreamProbe, wrk_report
from hub.client import StreamEvent

WRK = """Running 30s test @ http://127.0.0.1:18080
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    10.12ms    4.01ms  95.30ms   80.12%
    Req/Sec     1.60k   120.44     1.90k    70.00%
  Latency Distribution
     50%    9.40ms
     75%   11.80ms
     90%   14.90ms
     99%   23.10ms
  95704 requests in 30.01s, 120.33MB read
  Non-2xx or 3xx responses: 12
Requests/sec:   3189.04
Transfer/sec:      4.01MB
"""


def test_wrk_report_gives_rate_percentiles_and_errors():
    report = wrk_report(WRK)
    assert report["requests_per_s"] == 3189.04 and report["requests"] == 95704
    assert report["latency_ms"] == {"p50": 9.4, "p75": 11.8, "p90": 14.9, "p99": 23.1}
    assert report["non_2xx"] == 12
    assert (
        wrk_report(WRK.replace("     99%   23.10ms", "     99%    1.20s"))["latency_ms"]["p99"]
        == 1200.0
    )


def test_the_stream_probe_counts_till_records_only_while_measuring():
    probe = StreamProbe(api=None)  # type: ignore[arg-type]
    event = StreamEvent("change", "unified.inventory", "k", {"source_system": "pos",
                        "source_committed_at": "2026-12-07T10:00:00Z"}, "0.0.1")  # fmt: skip
    probe.note(event, 1796637600.05)
    assert probe.delays == []
    probe.measuring = True
    probe.note(event, 1796637600.05)  # 2026-12-07T10:00:00.05Z
    probe.note(StreamEvent("change", "unified.inventory", "k", {"source_system": "shop"}, None),
               1796637600.05)  # fmt: skip
    assert [round(d) for d in probe.delays] == [50]
