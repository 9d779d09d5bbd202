"""What `hub bench --api` reads of vegeta's report, and what its stream probe counts."""

from __future__ import annotations

from hub.bench.api import StreamProbe, vegeta_report
from hub.client import StreamEvent

REPORT = {
    "latencies": {"total": 1, "mean": 865679, "50th": 594767, "90th": 1508000, "95th": 2234000,
                  "99th": 4887000, "max": 17337000, "min": 254339},
    "requests": 20000, "rate": 2000.26, "throughput": 1999.70, "success": 1,
    "status_codes": {"200": 20000}, "errors": [],
}  # fmt: skip


def test_vegeta_report_gives_rates_percentiles_in_ms_and_status_codes():
    report = vegeta_report(REPORT)
    assert (report["offered_per_s"], report["answered_per_s"]) == (2000.3, 1999.7)
    assert report["latency_ms"] == {"p50": 0.59, "p90": 1.51, "p95": 2.23, "p99": 4.89,
                                    "max": 17.34}  # fmt: skip
    assert report["status_codes"] == {"200": 20000} and report["success"] == 1


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
