"""Each variant's ``total`` per size across stored runs: a markdown table and a line chart (SVG).

    python -m mmdet_opt.suite.report --history baselines/<device>/<machine-id>/ [more runs] [--chart history.svg]

A folder stands for its stored runs (``NNNN_*.json``) in number order; files are taken as given, so a
new run can follow the stored ones; a parity-only run adds a row of parity and an empty one of totals.
Each run is labelled by its number (or file name) and the short commit id that pytest-benchmark
recorded; ``*`` marks a dirty working tree, whose measured code is not that commit (runs 0003 to 0006).

Parity figures are drawn too where a run stores them: each reader in ``PARITY_READERS`` takes a run
and returns ``{(variant, size): (matched fraction, mean mask IoU)}`` (the worst image); runs without
any are skipped.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from ..pipeline import TOTAL
from .report import STORED_RUN, ReportError, _size_key, load_run, make_chart_folder, medians, stored_runs


def run_files(paths: list) -> list:
    """The runs named by ``paths``: a folder's stored runs in number order, files as given."""
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            stored = stored_runs(path)
            if not stored:
                raise ReportError(f"{path}: no stored run (NNNN_*.json) in this folder")
            files += stored
        else:
            files.append(path)
    return files


def label(path: Path, run: dict) -> str:
    """'0004 536fd90*': the run's number (or file name) and commit, * for a dirty tree."""
    m = STORED_RUN.fullmatch(path.name)
    commit = run.get("commit_info") or {}
    sha = str(commit.get("id") or "unknown")[:7]
    return f"{m.group(1) if m else path.stem} {sha}{'*' if commit.get('dirty') else ''}"


def _parity_list(run: dict) -> dict:
    """A top-level ``parity`` list of {variant, size, matched_fraction, mask_iou_mean, ...}, one per image."""
    entries = run.get("parity")
    return _worst(entries if isinstance(entries, list) else [])


def _parity_in_benchmarks(run: dict) -> dict:
    """Parity figures kept in a benchmark's extra_info next to its variant and size."""
    return _worst([b.get("extra_info") for b in run["benchmarks"]])


def _worst(entries: list) -> dict:
    worst = {}
    for e in entries:
        if not isinstance(e, dict) or not {"variant", "size", "matched_fraction", "mask_iou_mean"} <= e.keys():
            continue
        key, figures = (e["variant"], e["size"]), (float(e["matched_fraction"]), float(e["mask_iou_mean"]))
        worst[key] = figures if key not in worst else tuple(map(min, worst[key], figures))
    return worst


PARITY_READERS: list[Callable[[dict], dict]] = [_parity_list, _parity_in_benchmarks]


def parity(run: dict) -> dict:
    """``{(variant, size, weights): figures}``: a run's ``weights`` (recorded since the trained model's
    parity runs; None in older runs) keeps the trained model's figures apart from synthetic ones."""
    found = {}
    for reader in PARITY_READERS:
        found.update(reader(run))
    return {(*key, run.get("weights")): figures for key, figures in found.items()}


def series_name(variant: str, size: str, weights: str | None = None) -> str:
    return f"{variant} {size}" + (f" ({weights})" if weights else "")


def collect(files: list) -> tuple:
    """(labels, dates, {(variant, size): [total ms per run]}, {(variant, size): [parity per run]}).

    A run with parity figures but no stage benchmarks (a parity-only run) has a row without totals;
    one with neither is an error.
    """
    labels, dates, totals, parities = [], [], {}, {}
    for i, path in enumerate(files):
        run = load_run(path)
        figures_of_run = parity(run)
        try:
            table = medians(run)
        except ReportError as exc:
            if not figures_of_run:
                raise ReportError(f"{path}: {exc}, and no parity figures") from None
            table = {}
        labels.append(label(path, run))
        dates.append(str(run.get("datetime", ""))[:16].replace("T", " "))
        for size, rows in table.items():
            for variant, stages in rows.items():
                if TOTAL in stages:
                    totals.setdefault((variant, size), [None] * len(files))[i] = stages[TOTAL]
        for key, figures in figures_of_run.items():
            parities.setdefault(key, [None] * len(files))[i] = figures
    order = {k: j for j, k in enumerate(totals)}  # variants in the order runs list them
    ordered = dict(sorted(totals.items(), key=lambda kv: (_size_key(kv[0][1]), order[kv[0]])))
    return labels, dates, ordered, parities


def markdown(labels: list, dates: list, totals: dict, parities: dict) -> str:
    names = [series_name(*key) for key in totals]
    lines = ["`total` per run, median ms (* a dirty working tree: the commit is not the measured code).", "",
             "| run | date | " + " | ".join(names) + " |", "|---" * (len(names) + 2) + "|"]
    for i, (run, date) in enumerate(zip(labels, dates)):
        cells = ["" if v[i] is None else f"{v[i]:.2f}" for v in totals.values()]
        lines.append(f"| {run} | {date} | " + " | ".join(cells) + " |")
    if not totals:
        lines = ["No run holds stage benchmarks: no `total` to show."]
    if parities:
        names = [series_name(*key) for key in parities]
        lines += ["", "Parity per run, worst image: matched fraction / mean mask IoU.", "",
                  "| run | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        for i, run in enumerate(labels):
            cells = ["" if v[i] is None else f"{v[i][0]:.2f}/{v[i][1]:.4f}" for v in parities.values()]
            lines.append(f"| {run} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def chart(labels: list, totals: dict, out: str | Path) -> None:
    """One line per variant and size, log scale: the sizes' totals lie 10x apart."""
    import pygal

    line = pygal.Line(title="total per run (median ms, log scale)", logarithmic=True, legend_at_bottom=True,
                      x_label_rotation=30, truncate_legend=-1, width=1000, height=600)
    line.x_labels = labels
    for key, values in totals.items():
        line.add(series_name(*key), [None if v is None else round(v, 2) for v in values])
    line.render_to_file(str(out))


def parity_chart(labels: list, parities: dict, out: str | Path) -> None:
    import pygal

    line = pygal.Line(title="parity per run: mean mask IoU, worst image", legend_at_bottom=True,
                      x_label_rotation=30, truncate_legend=-1, width=1000, height=600)
    line.x_labels = labels
    for key, values in parities.items():
        line.add(series_name(*key), [None if v is None else round(v[1], 4) for v in values])
    line.render_to_file(str(out))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mmdet_opt.suite.report --history",
                                     description="Each variant's total per size across stored runs.")
    parser.add_argument("--history", nargs="+", required=True, metavar="RUNS",
                        help="folders of stored runs (NNNN_*.json) and/or run files, oldest first")
    parser.add_argument("--chart", help="write the line chart here (SVG); parity, where stored, next to it "
                                        "as <name>-parity.svg")
    args = parser.parse_args(argv)
    try:
        if args.chart:
            make_chart_folder(args.chart)
        labels, dates, totals, parities = collect(run_files(args.history))
        print(markdown(labels, dates, totals, parities))
        if args.chart:
            chart(labels, totals, args.chart)
            if parities:
                out = Path(args.chart)
                parity_chart(labels, parities, out.with_name(f"{out.stem}-parity{out.suffix}"))
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a folder that cannot be listed, a chart that cannot be written
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0
