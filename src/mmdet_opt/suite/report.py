"""The study's tables from a pytest-benchmark JSON: one per size, a row per variant, medians in ms.

    python -m mmdet_opt.suite.report RUN.json [--chart stages.svg]
    python -m mmdet_opt.suite.report --history baselines/<device>/<machine-id>/ [--chart history.svg]

The first prints the run's tables, with the GPU state stored with the run and a warning when the GPU
was throttled; the second charts ``total`` across stored runs (``history.py``).
"""
from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

from ..machine import gpu_state_line, throttle_warning
from ..pipeline import BACKBONE, MASK_FORWARD, MASK_POST, PRE, ROI, RPN, TOTAL, TOTAL_MASKS, TOTAL_RLE
from .accuracy import accuracy_markdown
from .runs import ReportError, load_run, make_chart_folder, medians, size_key

COLUMNS = (PRE, BACKBONE, RPN, MASK_FORWARD, MASK_POST, ROI, TOTAL, TOTAL_MASKS, TOTAL_RLE)
# Speed-up over stock both ways: what the pipeline returns, and full-image masks as stock returns them.
SPEEDUPS = ((TOTAL, "speed-up"), (TOTAL_MASKS, "speed-up (masks)"))
BASELINE_VARIANT = "inference"


def markdown(data: dict) -> str:
    machine = data.get("machine_info", {})
    device = machine.get("device") or machine.get("cpu", {}).get("brand_raw", "unknown device")
    weights = f" Weights: {data['weights']}." if data.get("weights") else ""
    lines = [f"Device: {device}; torch {machine.get('torch', '?')}, mmcv {machine.get('mmcv', '?')}, "
             f"mmdet {machine.get('mmdet', '?')}.{weights} Medians in ms.", ""]
    for line in (gpu_state_line(data), throttle_warning(data)):
        if line:
            lines += [line, ""]
    streams, serving, accuracy = stream_markdown(data), serving_markdown(data), accuracy_markdown(data)
    try:
        stage_tables = medians(data)
    except ReportError:
        if not streams and not serving and not accuracy and not data.get("parity"):
            raise
        stage_tables = {}  # a stream-, serving- or parity-only run
    for size, rows in sorted(stage_tables.items(), key=lambda kv: size_key(kv[0])):
        base = rows.get(BASELINE_VARIANT, {})
        columns = [c for c in COLUMNS if any(c in stages for stages in rows.values())]
        speedups = [(stage, title) for stage, title in SPEEDUPS if stage in columns]
        lines.append(f"### {size}")
        lines.append("")
        lines.append("| variant | " + " | ".join(columns + [title for _, title in speedups]) + " |")
        lines.append("|---" * (len(columns) + len(speedups) + 1) + "|")
        for variant, stages in rows.items():
            cells = [f"{stages[c]:.2f}" if c in stages else "" for c in columns]
            cells += [f"{base[s] / stages[s]:.2f}x" if base.get(s) and stages.get(s) else "" for s, _ in speedups]
            lines.append(f"| {variant} | " + " | ".join(cells) + " |")
        lines.append("")
    lines.extend(throughput_markdown(data))
    lines.extend(serving)
    lines.extend(streams)
    lines.extend(accuracy)
    lines.extend(parity_markdown(data))
    return "\n".join(lines)


STREAM_COLUMNS = (
    ("images/s", "images_per_second", "{:.3g}"),
    ("start-up s / images/s with it", ("startup_s", "images_per_second_with_startup"), "{:.3g}"),
    ("p50 / p95 / p99 ms", ("p50_ms", "p95_ms", "p99_ms"), "{:.1f}"),
    ("first call / cached, median ms", ("first_call_median_ms", "cached_call_median_ms"), "{:.1f}"),
    ("first over cached, median / max", ("first_over_cached_median", "first_over_cached_max"), "{:.1f}x"),
    ("new plans", "new_plans", "{}"),
    ("peak GPU MiB alloc / reserved", ("peak_allocated_mib", "peak_reserved_mib"), "{:.0f}"),
    ("peak / one shape (reserved)", "peak_over_single_shape", "{:.2f}x"),
)


def stream_markdown(data: dict) -> list:
    """The stream benchmark: throughput with first calls, latency percentiles, memory (if the run has it)."""
    rows = [(b["extra_info"], b["extra_info"]["stream_summary"]) for b in data["benchmarks"]
            if isinstance(b.get("extra_info", {}).get("stream_summary"), dict)]
    if not rows:
        return []
    info, summary = rows[0]
    lines = [f"### Stream: {summary['images']} photos, {summary['distinct_sizes']} distinct sizes, "
             f"@ {info.get('scale', '?')} (first calls included)", "",
             "| variant | " + " | ".join(title for title, _, _ in STREAM_COLUMNS) + " | speed-up |",
             "|---" * (len(STREAM_COLUMNS) + 2) + "|"]
    base = next((s["images_per_second"] for i, s in rows if i["variant"] == BASELINE_VARIANT), None)
    for info, summary in rows:
        cells = []
        for _, keys, fmt in STREAM_COLUMNS:
            values = [summary.get(k) for k in ((keys,) if isinstance(keys, str) else keys)]
            cells.append(" / ".join(fmt.format(v) for v in values) if all(v is not None for v in values) else "")
        speedup = f"{summary['images_per_second'] / base:.2f}x" if base else ""
        lines.append(f"| {info['variant']} | " + " | ".join(cells) + f" | {speedup} |")
    return lines + [""]


def parity_markdown(data: dict) -> list:
    """Matched fraction / mean mask IoU per variant, case and image, beside stock's own rounding spread."""
    records = data.get("parity") or []
    if not records:
        return []
    cases = sorted({(r["size"], r["image"]) for r in records}, key=lambda c: (size_key(c[0]), c[1]))
    spread = {(r["size"], r["image"]): r["spread"] for r in records if r.get("spread")}
    cells = {(r["variant"], r["size"], r["image"]): f"{r['matched_fraction']:.2f} / {r['mask_iou_mean']:.4f}"
             for r in records}
    lines = ["### Parity (matched / mean mask IoU against stock)", "",
             "| variant | " + " | ".join(f"{size} {image}" for size, image in cases) + " |",
             "|---" * (len(cases) + 1) + "|"]
    spreads = [spread.get(c) for c in cases]
    if any(spreads):
        lines.append("| *stock vs strict-fp32 stock* | " + " | ".join(
            f"{s['matched_fraction']:.2f} / {s['mask_iou_mean']:.4f}" if s else "" for s in spreads) + " |")
    for variant in dict.fromkeys(r["variant"] for r in records):
        lines.append(f"| {variant} | " + " | ".join(cells.get((variant, *c), "") for c in cases) + " |")
    return lines + [""]


def throughput_markdown(data: dict) -> list:
    """Images per second per variant and batch, one table per size (if the run has them)."""
    table = defaultdict(lambda: defaultdict(dict))
    for bench in data["benchmarks"]:
        info = bench.get("extra_info", {})
        if "batch" in info and "variant" in info:
            table[info["size"]][info["variant"]][info["batch"]] = info["batch"] / bench["stats"]["median"]
    return _tables_by_size(table, "throughput (images/s)", lambda b: f"batch {b}", lambda ips: f"{ips:.1f}")


def serving_markdown(data: dict) -> list:
    """Images/s and p50 / p99 latency per variant and number of clients (if the run has them)."""
    table = defaultdict(lambda: defaultdict(dict))
    for bench in data["benchmarks"]:
        info = bench.get("extra_info", {})
        if isinstance(info.get("serving"), dict) and "clients" in info:
            table[info.get("size", "?")][info["variant"]][info["clients"]] = info["serving"]
    return _tables_by_size(table, "serving (images/s, p50 / p99 ms)", lambda c: f"{c} clients",
                           lambda f: f"{f['images_per_second']:.1f}, {f['p50_ms']:.1f} / {f['p99_ms']:.1f}")


def _tables_by_size(table: dict, title: str, column, cell) -> list:
    """One table per size of ``table[size][variant][key]``: a row per variant, a column per key
    (``column(key)`` its heading), ``cell(value)`` in each (empty where a variant lacks the key)."""
    lines = []
    for size, rows in sorted(table.items(), key=lambda kv: size_key(kv[0])):
        keys = sorted({k for per_key in rows.values() for k in per_key})
        lines += [f"### {size} {title}", "",
                  "| variant | " + " | ".join(column(k) for k in keys) + " |",
                  "|---" * (len(keys) + 1) + "|"]
        for variant, per_key in rows.items():
            lines.append(f"| {variant} | " + " | ".join(cell(per_key[k]) if per_key.get(k) else "" for k in keys)
                         + " |")
        lines.append("")
    return lines


def stage_chart(data: dict, out: str | Path) -> None:
    """A stacked bar per variant and size: where the time goes (pre, backbone, rpn, roi_head)."""
    import pygal

    parts = (PRE, BACKBONE, RPN, ROI)
    table = medians(data)
    labels, series = [], {p: [] for p in parts}
    for size, rows in sorted(table.items(), key=lambda kv: size_key(kv[0])):
        for variant, stages in rows.items():
            labels.append(f"{variant} {size}")
            for p in parts:
                series[p].append(round(stages.get(p, 0.0), 2))
    chart = pygal.HorizontalStackedBar(title="Median time per stage (ms)", legend_at_bottom=True,
                                       width=1000, height=120 + 40 * len(labels))
    chart.x_labels = labels
    for p in parts:
        chart.add(p, series[p])
    chart.render_to_file(str(out))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mmdet_opt.suite.report",
                                     description="Print the study's stage tables from a benchmark JSON.")
    parser.add_argument("run", help="pytest-benchmark JSON (--benchmark-json or a stored run)")
    parser.add_argument("--chart", help="also write a stacked-bar SVG of the stages here")
    parser.epilog = "With --history FOLDER|RUN.json... instead: total across stored runs (see history.py)."
    args = parser.parse_args(argv)
    try:
        if args.chart:
            make_chart_folder(args.chart)
        data = load_run(args.run)
        print(markdown(data))
        warning = throttle_warning(data.get("machine_info") or {})
        if warning and not sys.stdout.isatty():  # the tables went to a file: say it where it is seen
            print(warning, file=sys.stderr)
        if args.chart:
            stage_chart(data, args.chart)
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the chart could not be written
        print(f"error: cannot write {args.chart}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0


def cli(argv=None) -> int:
    """``--history`` charts stored runs (its own options, in history.py); anything else reports one run."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--history" in argv:
        from .history import main as history_main

        return history_main(argv)
    return main(argv)


if __name__ == "__main__":
    sys.exit(cli())
