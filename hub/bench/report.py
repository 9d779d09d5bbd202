"""What ``hub bench`` makes of its measurements: percentiles, the ratios between the series, the
targets the hub is held to, and the JSON, Markdown and PNG files in ``bench/results/``."""

from __future__ import annotations

import json
import platform
import shutil
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hub.bench.probe import Sample

PERCENTILES = (50, 90, 99, 99.9)
TARGET_RATE = 2000  # the rate the latency targets are set at
CONSUMERS = ("SUT", "BL4", "BL3")


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50, p90, p99, p99.9 and max (nearest rank), in the unit of ``values``."""
    if not values:
        return {}
    ordered = sorted(values)
    out = {
        f"p{p:g}": ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] for p in PERCENTILES
    }
    out["max"] = ordered[-1]
    out["mean"] = statistics.fmean(ordered)
    return {k: round(v, 2) for k, v in out.items()}


def latency_by_system(
    samples: Sequence[Sample], start_ms: float, end_ms: float, coarse: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Percentiles of the records committed in [start_ms, end_ms), per system and over ``all``
    systems but the ``coarse`` ones, whose commit times are whole seconds (MariaDB's binary log):
    their latency carries up to a second of that, so it is reported on its own only."""
    window = [s for s in samples if start_ms <= s.committed_ms < end_ms]
    exact = [s.latency_ms for s in window if s.system not in coarse]
    result: dict[str, Any] = {"all": {"count": len(exact), **percentiles(exact)}}
    for system in sorted({s.system for s in window}):
        mine = [s.latency_ms for s in window if s.system == system]
        result[system] = {"count": len(mine), **percentiles(mine)}
    return result


def trough(points: Sequence[tuple[float, float]]) -> float:
    """The lowest lag of the last third of the samples: the queue a consumer keeps standing."""
    third = max(1, len(points) // 3)
    return min((lag for _, lag in points[-third:]), default=0.0)


def growth(points: Sequence[tuple[float, float]]) -> float:
    """How fast a consumer's lag grows, from (time s, lag) samples: between the lowest sample of
    the first third and that of the last. Committed offsets move in steps (every few seconds), so
    the lag saw-tooths; its troughs, right after a commit, show the real trend."""
    if len(points) < 2:
        return 0.0
    third = max(1, len(points) // 3)
    (t0, lag0) = min(points[:third], key=lambda p: p[1])
    (t1, lag1) = min(points[-third:], key=lambda p: p[1])
    return (lag1 - lag0) / (t1 - t0) if t1 > t0 else 0.0


def machine() -> dict[str, Any]:
    info = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines()
                  if line.startswith("model name")), platform.processor())  # fmt: skip
    memory = next(line.split(":", 1)[1].strip() for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))  # fmt: skip
    return {"cpus": info.count("processor\t:"), "cpu": model, "memory": memory,
            "python": platform.python_version()}  # fmt: skip


# ---- ratios and targets ------------------------------------------------------------------------


def _measured(result: dict[str, Any], series: str) -> dict[int, dict[str, Any]]:
    steps = result["series"].get(series, [])
    return {s["rate"]: s for s in steps if "skipped" not in s}


def throughput(step: dict[str, Any]) -> float:
    """Raw records handled per second: consumed (a consumer's series) or appended (BL2)."""
    return float(step.get("consumed_per_s", step["raw_per_s"]))


def own_process(step: dict[str, Any]) -> dict[str, Any]:
    """The CPU and memory of what the series adds: its consumer, or Kafka Connect (BL2)."""
    return dict(step["processes"].get(step.get("consumer", "connect"), {}))


def _p(step: dict[str, Any] | None, key: str) -> float | None:
    if step is None:
        return None
    value = step["latency_ms"]["all"].get(key)
    return float(value) if value is not None else None


def _diff(a: float | None, b: float | None) -> float | None:
    return round(a - b, 1) if a is not None and b is not None else None


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    """The ratios the issue asks for, per offered rate, and where the hub stands on its targets."""
    sut, bl2a, bl2b, bl4 = (_measured(result, s) for s in ("SUT", "BL2a", "BL2b", "BL4"))
    rates = sorted(
        {rate for series in result["series"].values() for rate in (s["rate"] for s in series)}
    )
    ratios = []
    for rate in rates:
        row: dict[str, Any] = {"rate": rate}
        if rate in sut and rate in bl2b and throughput(bl2b[rate]):
            row["sut_over_bl2b_throughput"] = round(
                throughput(sut[rate]) / throughput(bl2b[rate]), 3
            )
        row["sut_minus_bl2b_p99_ms"] = _diff(_p(sut.get(rate), "p99"), _p(bl2b.get(rate), "p99"))
        row["bl2a_minus_bl2b_p50_ms"] = _diff(_p(bl2a.get(rate), "p50"), _p(bl2b.get(rate), "p50"))
        row["bl2a_minus_bl2b_p99_ms"] = _diff(_p(bl2a.get(rate), "p99"), _p(bl2b.get(rate), "p99"))
        if rate in sut and rate in bl4:
            cpu_sut = own_process(sut[rate]).get("cpu_s_per_1000_changes", 0.0)
            cpu_bl4 = own_process(bl4[rate]).get("cpu_s_per_1000_changes", 0.0)
            row["sut_over_bl4_cpu_per_change"] = round(cpu_sut / cpu_bl4, 2) if cpu_bl4 else None
        ratios.append(row)
    return {"ratios": ratios, "targets": targets(result, sut, bl2b)}


def targets(result: dict[str, Any], sut: dict[int, dict[str, Any]],
            bl2b: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:  # fmt: skip
    """Where the hub stands on its targets. Capacities are the highest rate each series
    sustained (the SUT's from its ramp when there is one): a baseline that sustained every step is
    bounded by the steps, the load generator and the databases, so a ratio to it is then an upper
    bound."""
    ramp = result.get("ramp") or {}
    sustained = [s["changes_in_per_s"] for s in sut.values() if s["sustainable"]]
    best = ramp.get("sustainable_rate", max(sustained, default=0.0))
    out: list[dict[str, Any]] = []
    for name, share in (("BL4", 0.9), ("BL2b", 0.8)):
        steps = _measured(result, name).values()
        capacity = max((throughput(s) for s in steps if s["sustainable"]), default=0.0)
        if capacity:
            ratio = round(best / capacity, 3)
            out.append({"target": f"SUT ≥ {share} x {name} throughput (highest sustained: "
                                  f"{best:g}/s vs {capacity:g}/s)", "value": ratio,
                        "met": ratio >= share})  # fmt: skip
    at = sut.get(TARGET_RATE)
    usable = at is not None and at["sustainable"]
    p99 = _p(at, "p99")
    out.append({"target": f"p99 ≤ 100 ms at {TARGET_RATE}/s", "value": p99,
                "met": usable and p99 is not None and p99 <= 100})  # fmt: skip
    added = _diff(p99, _p(bl2b.get(TARGET_RATE), "p99"))
    out.append({"target": f"hub adds ≤ 20 ms at p99 over BL2b at {TARGET_RATE}/s", "value": added,
                "met": usable and added is not None and added <= 20})  # fmt: skip
    replay = result.get("replay") or {}
    runs = {run["workers"]: run for run in replay.get("runs", [])}
    if runs:
        one = runs.get(1, {}).get("events_per_s")
        out.append({"target": "replay ≥ 15,000 events/s with one worker", "value": one,
                    "met": one is not None and one >= 15000})  # fmt: skip
        ratio = replay.get("ratio")
        out.append({"target": "replay with two workers ≥ 1.6 x one", "value": ratio,
                    "met": ratio is not None and ratio >= 1.6})  # fmt: skip
    peaks = [own_process(s).get("peak_rss_mb", 0.0) for s in sut.values()]
    peaks += [run["peak_rss_mb"] for run in runs.values()]
    rss = max(peaks, default=None)
    out.append(
        {"target": "worker RSS ≤ 300 MB", "value": rss, "met": rss is not None and rss <= 300}
    )
    return out


# ---- files -------------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def markdown(result: dict[str, Any]) -> str:
    """The steps, ratios, targets and per-process cost as Markdown."""
    m, timing = result["machine"], result.get("timing", {})
    warm = result.get("stack_warmup")
    warmed = (
        f"the stack warmed up first ({warm['seconds']:g} s at {warm['rate']}/s); " if warm else ""
    )
    lines = [
        f"Run {result['when']} on {m['cpus']} x {m['cpu']}, {m['memory']}, the whole stack local; "
        f"seed {result['seed']}; {warmed}each step {timing.get('warmup_s', '?'):g} s warm-up, "
        f"{timing.get('measure_s', '?'):g} s measured. Latency: source commit → Kafka append "
        "(log-append time) of the series' output record, over the sources with sub-second commit "
        f"times (not {', '.join(result.get('latency_all_leaves_out', [])) or '-'}: whole seconds).",
        "",
        "| series | offered/s | in/s | handled/s | out/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms "
        "| max lag | sustained | CPU s/1k changes | peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]  # fmt: skip
    for series, steps in result["series"].items():
        for step in steps:
            if "skipped" in step:
                lines.append(f"| {series} | {step['rate']} | {step['skipped']} |" + " |" * 11)
                continue
            lat, own = step["latency_ms"]["all"], own_process(step)
            lines.append(
                f"| {series} | {step['rate']} | {step['changes_in_per_s']} | {throughput(step)} "
                f"| {step['records_out_per_s']} | "
                + " | ".join(_cell(lat.get(k)) for k in ("p50", "p90", "p99", "p99.9", "max"))
                + f" | {_cell(step.get('lag', {}).get('max'))} | {'yes' if step['sustainable'] else 'no'} "
                f"| {_cell(own.get('cpu_s_per_1000_changes'))} | {_cell(own.get('peak_rss_mb'))} |"
            )
    lines += ["", "handled/s: raw records consumed per second (SUT, BL4, BL3) or appended by Debezium "
              "(BL2a, BL2b); CPU and RSS: the series' own process (the worker, the loop, or Kafka "
              "Connect for BL2)."]  # fmt: skip
    ramp = result.get("ramp")
    if ramp:
        lines += ["", "**Highest sustainable rate of the hub** (ramp, lag stops growing): "
                  f"{ramp['sustainable_rate']} changes/s; {ramp['unsustainable_rate']} was not."]  # fmt: skip
    lines += _stock_table(result)
    lines += _identity_table(result)
    summary = result.get("summary") or {}
    if summary.get("ratios"):
        lines += ["", "| offered/s | SUT ÷ BL2b throughput | SUT - BL2b p99 ms | BL2a - BL2b p50 ms "
                  "| BL2a - BL2b p99 ms | SUT ÷ BL4 CPU per change |", "|---:" * 6 + "|"]  # fmt: skip
        for row in summary["ratios"]:
            lines.append(f"| {row['rate']} | " + " | ".join(_cell(row.get(k)) for k in (
                "sut_over_bl2b_throughput", "sut_minus_bl2b_p99_ms", "bl2a_minus_bl2b_p50_ms",
                "bl2a_minus_bl2b_p99_ms", "sut_over_bl4_cpu_per_change")) + " |")  # fmt: skip
    replay = result.get("replay")
    if replay:
        lines += ["", f"**Replay**: {replay['changes']:,} changes recorded on the raw topics, then "
                  "drained by a fresh worker group with the sources and Connect idle:", "",
                  "| workers | raw records | seconds | events/s | CPU s | peak RSS MB (one worker) |",
                  "|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
        for run in replay["runs"]:
            lines.append(f"| {run['workers']} | {run['records']} | {run['seconds']} | "
                         f"{run['events_per_s']} | {run['cpu_s']} | {run['peak_rss_mb']} |")  # fmt: skip
        lines += ["", f"Two workers ÷ one: {_cell(replay.get('ratio'))}."]
    if summary.get("targets"):
        lines += ["", "| target | now | met |", "|---|---:|---|"]
        for t in summary["targets"]:
            lines.append(f"| {t['target']} | {_cell(t['value'])} | {'yes' if t['met'] else 'no'} |")
    lines += _process_table(result)
    return "\n".join(lines) + "\n"


def _stock_table(result: dict[str, Any]) -> list[str]:
    """The availability stage in the SUT's steps: its latency beside unified.inventory's."""
    steps = [s for s in result["series"].get("SUT", []) if "stock" in s]
    if not steps:
        return []
    lines = ["", "**Availability** (SUT): source commit → append of the unified.inventory record and "
             "of the unified.availability record it made (made once the level's transaction "
             "commits); and source commit → both visible to a read_committed consumer (at their "
             "transactions' commits: what a channel waits for):", "",
             "| offered/s | inventory p50 / p99 ms | availability p50 / p99 ms | added at p99 ms "
             "| visible: inventory p50 / p99 ms | visible: availability p50 / p99 ms "
             "| visible: added at p99 ms | availability records/s |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for step in steps:
        stock = step["stock"]
        row = [str(step["rate"])]
        row += _added(stock["inventory_latency_ms"], stock["availability_latency_ms"])
        row += _added(
            stock.get("inventory_visible_ms", {}), stock.get("availability_visible_ms", {})
        )
        row.append(str(stock["availability_out_per_s"]))
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _identity_table(result: dict[str, Any]) -> list[str]:
    """The identity stage in the SUT's steps: golden customers' latency beside their records'."""
    steps = [s for s in result["series"].get("SUT", []) if "identity" in s]
    if not steps:
        return []
    lines = ["", "**Golden customers** (SUT): source commit → append of the unified.customer.records "
             "record and of the unified.customer record it changed (made once the record's "
             "transaction commits), and both visible to a read_committed consumer:", "",
             "| offered/s | records p50 / p99 ms | golden p50 / p99 ms | added at p99 ms "
             "| visible: records p50 / p99 ms | visible: golden p50 / p99 ms "
             "| visible: added at p99 ms | customer records/s | golden records/s |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for step in steps:
        identity = step["identity"]
        row = [str(step["rate"])]
        row += _added(identity["records_latency_ms"], identity["golden_latency_ms"])
        row += _added(identity["records_visible_ms"], identity["golden_visible_ms"])
        row += [str(identity["records_out_per_s"]), str(identity["golden_out_per_s"])]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _added(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Cells of a stage's latency beside its input's: p50 / p99 of each, and what it adds at p99."""
    return [f"{_cell(before.get('p50'))} / {_cell(before.get('p99'))}",
            f"{_cell(after.get('p50'))} / {_cell(after.get('p99'))}",
            _cell(_diff(after.get("p99"), before.get("p99")))]  # fmt: skip


def _process_table(result: dict[str, Any]) -> list[str]:
    rates = [s["rate"] for steps in result["series"].values() for s in steps if "skipped" not in s]
    if not rates:
        return []
    rate = TARGET_RATE if TARGET_RATE in rates else min(rates)
    rows = {name: step for name in result["series"] if (step := _measured(result, name).get(rate))}
    stack = list(dict.fromkeys(n for step in rows.values() for n in step["processes"]
                               if n != step.get("consumer")))  # fmt: skip
    lines = ["", f"CPU seconds per 1,000 changes (peak RSS MB) per process at {rate} changes/s:", "",
             f"| series | {' | '.join(stack)} | consumer |", "|---|" + "---:|" * (len(stack) + 1)]  # fmt: skip
    for series, step in rows.items():
        cells = [_use_cell(step["processes"].get(name)) for name in stack]
        consumer = step.get("consumer")
        cells.append(f"{consumer}: {_use_cell(step['processes'][consumer])}" if consumer else "")
        lines.append(f"| {series} | " + " | ".join(cells) + " |")
    return lines


def _use_cell(use: dict[str, Any] | None) -> str:
    return f"{use['cpu_s_per_1000_changes']} ({use['peak_rss_mb']:.0f})" if use else ""


def plot(result: dict[str, Any], path: Path) -> None:
    """Latency percentiles and throughput per step, one line per series (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (lat_ax, tput_ax) = plt.subplots(1, 2, figsize=(12, 4.8))
    for series in result["series"]:
        steps = sorted(_measured(result, series).values(), key=lambda s: s["rate"])
        if not steps:
            continue
        rates = [s["rate"] for s in steps]
        (line,) = lat_ax.plot(
            rates, [_p(s, "p50") for s in steps], marker="o", label=f"{series} p50"
        )
        lat_ax.plot(rates, [_p(s, "p99") for s in steps], marker="^", linestyle="--",
                    color=line.get_color(), label=f"{series} p99")  # fmt: skip
        tput_ax.plot(
            rates, [throughput(s) for s in steps], marker="o", color=line.get_color(), label=series
        )
    top = max((s["rate"] for steps in result["series"].values() for s in steps), default=1)
    tput_ax.plot([0, top], [0, top], color="grey", linestyle=":", label="offered")
    lat_ax.set(xlabel="offered changes/s", ylabel="ms, source commit → Kafka append", yscale="log",
               title="End-to-end latency per step")  # fmt: skip
    tput_ax.set(
        xlabel="offered changes/s", ylabel="raw records handled/s", title="Throughput per step"
    )
    for ax in (lat_ax, tput_ax):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    m = result["machine"]
    fig.suptitle(
        f"hub bench {result['when']} — {m['cpus']} x {m['cpu']}, seed {result['seed']}", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(result: dict[str, Any], directory: Path) -> dict[str, Path]:
    """``bench-<when>.json|md|png`` in ``directory``, and copies as ``latest.*``."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = result["when"].replace(":", "").replace("-", "")
    paths = {suffix: directory / f"bench-{stamp}.{suffix}" for suffix in ("json", "md", "png")}
    paths["json"].write_text(json.dumps(result, indent=2) + "\n")
    paths["md"].write_text(markdown(result))
    plot(result, paths["png"])
    for suffix, path in paths.items():
        shutil.copyfile(path, directory / f"latest.{suffix}")
    return paths
