"""Each variant's ``total`` per size across stored runs: a markdown table and a line chart (SVG).

    python -m mmdet_opt.suite.report --history baselines/<device>/<machine-id>/ [more runs] [--chart history.svg]

A folder stands for its stored runs (``NNNN_*.json``) in number order; files are taken as given, so a
new run can follow the stored ones. Each run shows what it holds: a parity-only run adds a row of
parity and an empty one of totals, a partial run the totals it has; a run with neither (the stream
alone) is left out with one line on stderr. Each run is labelled by its number (or file name) and
the short commit id that pytest-benchmark recorded; ``*`` marks a dirty working tree, whose measured
code is not that commit. A night stored by the nightly (``nightly.py``) carries its gate's verdict:
the table says which benchmarks the gate flagged, and the chart marks the night REGRESSED.

Parity figures are drawn too where a run stores them: each reader in ``PARITY_READERS`` takes a run
and returns ``{(variant, size): (matched fraction, mean mask IoU)}`` (the worst image); a night's
trained-model parity (``trained_parity``) is drawn apart, by its own weights.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..pipeline import TOTAL
from .baseline import missing
from .runs import STORED_RUN, ReportError, load_run, make_chart_folder, medians, short_commit, size_key, stored_runs


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
    return f"{m.group(1) if m else path.stem} {short_commit(run)}"


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
    figures = {(*key, run.get("weights")): f for key, f in found.items()}
    trained = run.get("trained_parity")
    if isinstance(trained, dict) and isinstance(trained.get("parity"), list):
        figures.update({(*key, trained.get("weights")): f for key, f in _worst(trained["parity"]).items()})
    return figures


def series_name(variant: str, size: str, weights: str | None = None) -> str:
    return f"{variant} {size}" + (f" ({weights})" if weights else "")


@dataclass
class History:
    labels: list  # per run shown: '0004 536fd90*'
    dates: list
    notes: list  # per run: 'complete' or 'partial', and the gate's verdict where the night stored one
    flagged: list  # per run: whether its gate failed
    totals: dict  # {(variant, size): [total ms or None per run]}
    parities: dict  # {(variant, size, weights): [figures or None per run]}
    skipped: list  # one line per run left out


def gate_note(run: dict) -> tuple:
    """(text, failed) from the verdict a night stored (``nightly.py``); ('', False) without one."""
    gate = run.get("gate")
    if not isinstance(gate, dict):
        return "", False
    flagged = [str(name) for name in gate.get("flagged") or []]
    failed = gate.get("status") == "failed"
    if flagged:
        return f"gate: REGRESSED {', '.join(flagged)}", failed
    return f"gate: {gate.get('status', '?')}" + (f" ({gate['note']})" if gate.get("note") else ""), failed


def collect(files: list) -> History:
    """Each run's totals and parity, in the order given; runs with neither are skipped, each named."""
    shown = []
    skipped = []
    for path in files:
        run = load_run(path)
        figures = parity(run)
        try:
            table = medians(run)
        except ReportError:
            table = {}
        if not table and not figures:
            skipped.append(f"skipped {path}: no stage totals and no parity figures")
            continue
        shown.append((path, run, table, figures))
    if not shown:
        raise ReportError(f"none of the {len(files)} runs holds stage totals or parity figures")
    history = History([], [], [], [], {}, {}, skipped)
    for i, (path, run, table, figures) in enumerate(shown):
        history.labels.append(label(path, run))
        history.dates.append(str(run.get("datetime", ""))[:16].replace("T", " "))
        note, failed = gate_note(run)
        history.notes.append("; ".join(filter(None, ["partial" if missing(run) else "complete", note])))
        history.flagged.append(failed)
        for size, rows in table.items():
            for variant, stages in rows.items():
                if TOTAL in stages:
                    history.totals.setdefault((variant, size), [None] * len(shown))[i] = stages[TOTAL]
        for key, value in figures.items():
            history.parities.setdefault(key, [None] * len(shown))[i] = value
    order = {k: j for j, k in enumerate(history.totals)}  # variants in the order runs list them
    history.totals = dict(sorted(history.totals.items(), key=lambda kv: (size_key(kv[0][1]), order[kv[0]])))
    return history


def markdown(history: History) -> str:
    names = [series_name(*key) for key in history.totals]
    lines = ["`total` per run, median ms (* a dirty working tree: the commit is not the measured code).", "",
             "| run | date | " + " | ".join(names) + " | run holds |", "|---" * (len(names) + 3) + "|"]
    for i, (run, date) in enumerate(zip(history.labels, history.dates)):
        cells = ["" if v[i] is None else f"{v[i]:.2f}" for v in history.totals.values()]
        lines.append(f"| {run} | {date} | " + " | ".join(cells) + f" | {history.notes[i]} |")
    if not history.totals:
        lines = ["No run holds stage benchmarks: no `total` to show."]
    if history.parities:
        names = [series_name(*key) for key in history.parities]
        lines += ["", "Parity per run, worst image: matched fraction / mean mask IoU.", "",
                  "| run | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        for i, run in enumerate(history.labels):
            cells = ["" if v[i] is None else f"{v[i][0]:.2f}/{v[i][1]:.4f}" for v in history.parities.values()]
            lines.append(f"| {run} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def chart_labels(history: History) -> list:
    """The x labels: a night whose gate failed says so."""
    return [f"{name} REGRESSED" if failed else name for name, failed in zip(history.labels, history.flagged)]


def chart(history: History, out: str | Path) -> None:
    """One line per variant and size, log scale: the sizes' totals lie 10x apart."""
    import pygal

    line = pygal.Line(title="total per run (median ms, log scale)", logarithmic=True, legend_at_bottom=True,
                      x_label_rotation=30, truncate_legend=-1, width=1000, height=600)
    line.x_labels = chart_labels(history)
    for key, values in history.totals.items():
        line.add(series_name(*key), [None if v is None else round(v, 2) for v in values])
    line.render_to_file(str(out))


def parity_chart(history: History, out: str | Path) -> None:
    import pygal

    line = pygal.Line(title="parity per run: mean mask IoU, worst image", legend_at_bottom=True,
                      x_label_rotation=30, truncate_legend=-1, width=1000, height=600)
    line.x_labels = chart_labels(history)
    for key, values in history.parities.items():
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
        history = collect(run_files(args.history))
        for line in history.skipped:
            print(line, file=sys.stderr)
        print(markdown(history))
        if args.chart:
            chart(history, args.chart)
            if history.parities:
                out = Path(args.chart)
                parity_chart(history, out.with_name(f"{out.stem}-parity{out.suffix}"))
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a folder that cannot be listed, a chart that cannot be written
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0
