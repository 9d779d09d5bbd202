"""The benchmark's arithmetic and reports: percentiles, latency windows, lag growth, ratios,
targets, the Markdown table and the plot."""

from __future__ import annotations

import json

from hub.bench.baselines import scratch
from hub.bench.probe import Sample
from hub.bench.report import (
    growth,
    latency_by_system,
    markdown,
    percentiles,
    summarize,
    trough,
    write,
)
from hub.topics import registry


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


def test_lag_growth_follows_the_troughs_of_the_commit_saw_tooth():
    assert growth([(0, 100), (1, 300), (2, 500), (3, 700), (4, 900), (5, 1100)]) == 200
    # Commits every 3 s at 100 records/s: the lag climbs to 300 and falls back, growing nowhere.
    saw = [(t, 100 * (t % 3)) for t in range(12)]
    assert growth(saw) == 0
    assert growth([(0, 7)]) == 0
    assert trough(saw) == 0 and trough([(t, 4000 + 100 * (t % 3)) for t in range(12)]) == 4000


def _step(rate, p50, p99, handled, *, consumer=None, cpu=0.5, rss=200.0, sustainable=True):
    step = {"rate": rate, "changes_in_per_s": float(rate), "raw_per_s": float(rate),
            "records_out_per_s": handled * 0.8, "sustainable": sustainable,
            "latency_ms": {"all": {"p50": p50, "p90": p50, "p99": p99, "p99.9": p99, "max": p99}},
            "processes": {"kafka": {"cpu_s_per_1000_changes": 0.1, "peak_rss_mb": 400.0},
                          "connect": {"cpu_s_per_1000_changes": 0.3, "peak_rss_mb": 500.0}}}  # fmt: skip
    if consumer:
        step |= {"consumer": consumer, "consumed_per_s": float(handled), "lag": {"max": 10}}
        step["processes"][consumer] = {"cpu_s_per_1000_changes": cpu, "peak_rss_mb": rss}
    else:
        step["raw_per_s"] = float(handled)
    return step


def _result():
    return {
        "when": "2026-11-23T16:00:00+00:00", "seed": 1, "timing": {"warmup_s": 10, "measure_s": 30},
        "machine": {"cpus": 2, "cpu": "Xeon", "memory": "8 GB"},
        "series": {
            "SUT": [_step(2000, 15.0, 90.0, 2000, consumer="hub worker", cpu=0.6, rss=250.0),
                    _step(5000, 900.0, 4000.0, 3500, consumer="hub worker", cpu=0.5, rss=310.0,
                          sustainable=False),
                    {"rate": 8000, "skipped": "above this series' sustainable rate"}],
            "BL4": [_step(2000, 12.0, 60.0, 2000, consumer="BL4 loop", cpu=0.2)],
            "BL2b": [_step(2000, 8.0, 75.0, 2000), _step(5000, 9.0, 80.0, 5000)],
            "BL2a": [_step(2000, 260.0, 520.0, 2000)],
        },
        "ramp": {"sustainable_rate": 3100, "unsustainable_rate": 3400, "probes": []},
        "replay": {"changes": 1000, "ratio": 1.5, "runs": [
            {"workers": 1, "records": 3200, "seconds": 0.2, "events_per_s": 16000.0,
             "cpu_s": 0.3, "peak_rss_mb": 120.0},
            {"workers": 2, "records": 3200, "seconds": 0.13, "events_per_s": 24000.0,
             "cpu_s": 0.4, "peak_rss_mb": 110.0}]},
    }  # fmt: skip


def test_ratios_compare_the_series_at_each_offered_rate():
    ratios = {row["rate"]: row for row in summarize(_result())["ratios"]}
    assert ratios[2000] == {"rate": 2000, "sut_over_bl2b_throughput": 1.0, "sut_minus_bl2b_p99_ms": 15.0,
                            "bl2a_minus_bl2b_p50_ms": 252.0, "bl2a_minus_bl2b_p99_ms": 445.0,
                            "sut_over_bl4_cpu_per_change": 3.0}  # fmt: skip
    assert ratios[5000]["sut_over_bl2b_throughput"] == 0.7
    assert ratios[8000]["sut_minus_bl2b_p99_ms"] is None


def test_targets_say_where_the_hub_stands():
    targets = {t["target"]: (t["value"], t["met"]) for t in summarize(_result())["targets"]}
    assert targets == {
        "SUT ≥ 0.9 x BL4 throughput (highest sustained: 3100/s vs 2000/s)": (1.55, True),
        "SUT ≥ 0.8 x BL2b throughput (highest sustained: 3100/s vs 5000/s)": (0.62, False),
        "p99 ≤ 100 ms at 2000/s": (90.0, True),
        "hub adds ≤ 20 ms at p99 over BL2b at 2000/s": (15.0, True),
        "replay ≥ 15,000 events/s with one worker": (16000.0, True),
        "replay with two workers ≥ 1.6 x one": (1.5, False),
        "worker RSS ≤ 300 MB": (310.0, False),
    }


def test_the_files_hold_the_table_the_targets_and_a_plot(tmp_path):
    result = _result()
    result["summary"] = summarize(result)
    paths = write(result, tmp_path)
    table = markdown(result)
    assert paths["md"].read_text() == table == (tmp_path / "latest.md").read_text()
    assert (
        "| SUT | 2000 | 2000.0 | 2000.0 | 1600.0 | 15.0 | 15.0 | 90.0 | 90.0 | 90.0 | 10 | yes | 0.6 | 250.0 |"
        in table
    )
    assert "| SUT | 8000 | above this series' sustainable rate |" in table
    assert "| BL2a | 2000 | 2000.0 | 2000.0 | 1600.0 | 260.0 |" in table  # Connect's CPU for BL2
    assert "| replay with two workers ≥ 1.6 x one | 1.5 | no |" in table
    assert "| 1 | 3200 | 0.2 | 16000.0 | 0.3 | 120.0 |" in table
    assert (
        "Highest sustainable rate of the hub** (ramp, lag stops growing): 3100 changes/s" in table
    )
    assert "| BL4 | 0.1 (400) | 0.3 (500) | BL4 loop: 0.2 (200) |" in table  # per process at 2000/s
    assert json.loads(paths["json"].read_text())["ramp"]["sustainable_rate"] == 3100
    png = paths["png"].read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_baselines_write_to_scratch_copies_of_the_declared_topics():
    spec = (
        registry().topics["unified.inventory"]
        if "unified.inventory" in registry().topics
        else next(s for s in registry().topics.values() if s.kind == "unified")
    )
    copy = scratch(spec, "BL4")
    assert copy.name == f"bench.bl4.{spec.name}"
    assert (copy.partitions, copy.timestamp_type, copy.key) == (
        spec.partitions,
        "LogAppendTime",
        spec.key,
    )


def test_sources_with_whole_second_commit_times_stay_out_of_the_overall_latency():
    samples = [Sample("pos", 1000, 10), Sample("erp", 1000, 900), Sample("shop", 1001, 20)]
    got = latency_by_system(samples, 0, 2000, coarse=frozenset({"erp"}))
    assert (got["all"]["count"], got["all"]["max"]) == (2, 20)
    assert got["erp"]["max"] == 900


def test_delivery_is_counted_by_source_commit_time_not_by_arrival():
    from hub.bench.probe import LatencyProbe

    # A burst committed at the end of the window arrives after it (a 500 ms poll interval): it
    # still counts as delivered for the window it was committed in.
    probe = LatencyProbe("unused", [], samples=[Sample("pos", 1900, 600), Sample("pos", 1950, 550),
                                                Sample("pos", 2100, 10)])  # fmt: skip
    probe.appended = [2500.0, 2500.0, 2110.0]
    assert probe.count(1000, 2000) == 0
    assert probe.count_committed(1000, 2000) == 2


def test_the_availability_stage_is_reported_beside_the_inventory_it_is_made_from():
    result = _result()
    result["series"]["SUT"][0]["stock"] = {
        "inventory_latency_ms": {"p50": 30.0, "p99": 90.0},
        "availability_latency_ms": {"p50": 41.5, "p99": 118.0},
        "availability_out_per_s": 850.0,
        "inventory_visible_ms": {"p50": 80.0, "p99": 160.0},
        "availability_visible_ms": {"p50": 95.0, "p99": 171.5},
    }
    table = markdown(result)
    assert ("| 2000 | 30.0 / 90.0 | 41.5 / 118.0 | 28.0 | 80.0 / 160.0 | 95.0 / 171.5 | 11.5 "
            "| 850.0 |") in table  # fmt: skip
    del result["series"]["SUT"][0]["stock"]
    assert "**Availability**" not in markdown(result)


def test_golden_customers_are_reported_beside_the_records_they_are_made_from():
    result = _result()
    result["series"]["SUT"][0]["identity"] = {
        "records_latency_ms": {"p50": 20.0, "p99": 70.0},
        "golden_latency_ms": {"p50": 60.0, "p99": 150.0},
        "records_visible_ms": {"p50": 90.0, "p99": 180.0},
        "golden_visible_ms": {"p50": 120.0, "p99": 230.0},
        "records_out_per_s": 120.0,
        "golden_out_per_s": 95.5,
    }
    table = markdown(result)
    assert ("| 2000 | 20.0 / 70.0 | 60.0 / 150.0 | 80.0 | 90.0 / 180.0 | 120.0 / 230.0 | 50.0 "
            "| 120.0 | 95.5 |") in table  # fmt: skip
    del result["series"]["SUT"][0]["identity"]
    assert "**Golden customers**" not in markdown(result)
