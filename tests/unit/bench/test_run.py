"""The benchmark's arithmetic: percentiles, latency windows, the Markdown table."""

from __future__ import annotations

from hub.bench.probe import Sample
from hub.bench.run import latency_by_system, markdown, percentiles


def test_percentiles_are_nearest_rank_with_max_and_mean():
    values = [float(v) for v in range(1, 1001)]  # 1 … 1000 ms
    got = percentiles(values)
    assert (got["p50"], got["p90"], got["p99"], got["p99.9"], got["max"]) == (
        501,
        901,
        991,
        1000,
        1000,
    )
    assert got["mean"] == 500.5
    assert percentiles([]) == {}


def test_latency_counts_the_records_committed_in_the_window_per_system():
    samples = [Sample("pos", 1000, 10), Sample("pos", 1500, 30), Sample("erp", 1999, 700),
               Sample("pos", 999, 5000), Sample("shop", 2000, 5000)]  # fmt: skip
    got = latency_by_system(samples, 1000, 2000)
    assert got["all"]["count"] == 3
    assert got["pos"] == {"count": 2, "p50": 30, "p90": 30, "p99": 30, "p99.9": 30, "max": 30,
                          "mean": 20}  # fmt: skip
    assert set(got) == {"all", "pos", "erp"}


def test_the_markdown_table_has_a_row_per_series_and_rate():
    step = {"rate": 500, "changes_in_per_s": 499.5, "records_out_per_s": 380.0,
            "latency_ms": {"all": {"p50": 21.0, "p90": 30.0, "p99": 80.0, "p99.9": 120.0,
                                   "max": 150.0}},
            "lag": {"max": 12}, "processes": {"hub worker": {"cpu_s_per_1000_changes": 0.4,
                                                             "peak_rss_mb": 180.0}}}  # fmt: skip
    result = {"when": "2026-11-23T16:00:00+00:00", "seed": 1,
              "machine": {"cpus": 2, "cpu": "Xeon", "memory": "8 GB"}, "series": {"SUT": [step]}}  # fmt: skip
    table = markdown(result)
    assert (
        "| SUT | 500 | 499.5 | 380.0 | 21.0 | 30.0 | 80.0 | 120.0 | 150.0 | 12 | 0.4 | 180.0 |"
        in table
    )
