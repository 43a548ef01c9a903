"""Which stored runs are baselines: a complete run of the default suite, from a clean checkout.

    python -m mmdet_opt.suite.baseline RUN.json|FOLDER...

A bare ``--benchmark-compare``, the gate (``compare --latest-in``) and the history take only such a
run as the reference: against a partial run (one variant, the stream alone, the gate's stages) most
benchmarks have nothing to compare with, and a run of uncommitted code measured no commit.

A run is a baseline when:

- it names a commit and ``commit_info.dirty`` is false, as pytest-benchmark recorded them;
- it holds everything the default suite runs on its kind of device (``defaults.py``): each default
  variant's stages at each default case, throughput at each protocol case and batch (or the suite's
  record that a batch did not fit in memory, ``not_run``), the stream at its default length, each
  default variant's accuracy over the default number of scenes, and a parity record per variant,
  case and image (the held-out scenes for ``--checkpoint trained``);
- its timed benchmarks keep their rounds (the gate's U test needs them);
- it was not run with ``--inject-delay-ms`` or ``--mutation``.

The command prints one line per run and exits 0 when every run given is a baseline, 1 when one is
not, 2 for a file that cannot be read.
"""
from __future__ import annotations

import argparse
import functools
import re
import sys
from dataclasses import dataclass, fields
from pathlib import Path

from . import defaults
from .runs import ReportError, device_of, injected_delay, load_run, newest_usable, stored_runs


@dataclass(frozen=True)
class Coverage:
    stages: frozenset  # (variant, case, stage)
    throughput: frozenset  # (variant, case, batch)
    stream: frozenset  # variant
    accuracy: frozenset  # variant
    parity: frozenset  # (variant, case, image)


COMMIT = re.compile(r"[0-9a-f]{7,40}")  # what git describe gave pytest-benchmark; not 'unversioned'
LABELS = {"stages": "stage benchmarks", "throughput": "throughput benchmarks", "stream": "stream benchmarks",
          "accuracy": "accuracy benchmarks", "parity": "parity cases"}


@functools.cache
def expected(on_gpu: bool, trained: bool = False) -> Coverage:
    """What the default suite records on a GPU (or a CPU): variants by the name they run under there."""
    from ..variants import VARIANTS, VariantUnavailable, variant_for_device

    names = {}
    for name in VARIANTS:
        try:
            names[name] = variant_for_device(name, "cuda" if on_gpu else "cpu").name
        except VariantUnavailable:  # fp16 alone on a CPU
            continue
    cases = defaults.sizes(on_gpu)
    protocol = [c for c in cases if not c.natural]
    return Coverage(
        stages=frozenset((names[v], c.id, s) for v in names for c in cases for s in defaults.stages(v, c)),
        throughput=frozenset((names[v], c.id, b) for v in defaults.THROUGHPUT_VARIANTS if v in names
                             for c in protocol for b in defaults.batches(on_gpu)),
        stream=frozenset(names[v] for v in defaults.STREAM_VARIANTS if v in names),
        accuracy=frozenset(names.values()),
        parity=frozenset((names[v], c.id, image) for v in names for c in cases
                         for image in defaults.parity_images(trained)),
    )


def on_gpu(run: dict) -> bool:
    return device_of(run) not in (None, "cpu")


def trained(run: dict) -> bool:
    return str(run.get("weights") or "").startswith("checkpoint trained")


def found(run: dict) -> Coverage:
    """What ``run`` holds, in the terms of ``expected``."""
    stages, throughput, stream, accuracy = set(), set(), set(), set()
    length, scenes = defaults.stream_images(on_gpu(run)), defaults.accuracy_scenes(on_gpu(run))
    for bench in run["benchmarks"]:
        info = bench.get("extra_info") or {}
        if {"variant", "size", "stage"} <= info.keys():
            stages.add((info["variant"], info["size"], info["stage"]))
        elif {"variant", "size", "batch"} <= info.keys():
            throughput.add((info["variant"], info["size"], info["batch"]))
        elif (info.get("stream_summary") or {}).get("images") == length:
            stream.add(info.get("variant"))
        elif (info.get("accuracy") or {}).get("scenes") == scenes:
            accuracy.add(info.get("variant"))
    for record in _records(run, "not_run"):  # batches the suite found too large for the GPU's memory
        throughput.add((record.get("variant"), record.get("size"), record.get("batch")))
    parity = {(r.get("variant"), r.get("size"), r.get("image")) for r in _records(run, "parity")}
    return Coverage(frozenset(stages), frozenset(throughput), frozenset(stream), frozenset(accuracy),
                    frozenset(parity))


def _records(run: dict, key: str) -> list:
    records = run.get(key)
    return [r for r in records if isinstance(r, dict)] if isinstance(records, list) else []


def missing(run: dict) -> list:
    """One phrase per kind of benchmark the run lacks, with an example."""
    want, have = expected(on_gpu(run), trained(run)), found(run)
    out = []
    for field in fields(Coverage):
        lacking = sorted(getattr(want, field.name) - getattr(have, field.name), key=str)
        if lacking:
            example = lacking[0] if isinstance(lacking[0], str) else " ".join(map(str, lacking[0]))
            out.append(f"{len(lacking)} of {len(getattr(want, field.name))} {LABELS[field.name]} missing "
                       f"(e.g. {example})")
    return out


def problems(run: dict) -> list:
    """Why ``run`` is not a baseline; empty when it is one."""
    out = []
    if device_of(run) is None:
        out.append("no device recorded")
    commit = run.get("commit_info") or {}
    if not COMMIT.fullmatch(str(commit.get("id") or "")):
        out.append("no commit recorded")
    elif commit.get("dirty") is not False:
        out.append("from a dirty working tree")
    if injected_delay(run):
        out.append(f"timed with --inject-delay-ms {injected_delay(run):g}")
    if run.get("mutation"):
        out.append(f"parity broken on purpose (--mutation {run['mutation']})")
    without = sum(not isinstance(b["stats"].get("data"), list) for b in run["benchmarks"])
    if without:
        out.append(f"{without} benchmarks stored without their rounds (save with --benchmark-save-data)")
    return out + missing(run)


def is_baseline(run: dict) -> bool:
    return not problems(run)


def why_not(run: dict) -> str:
    return "; ".join(problems(run))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mmdet_opt.suite.baseline",
                                     description="Say which runs are baselines: complete runs of the default "
                                                 "suite from a clean checkout.")
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run files, or folders of stored runs (NNNN_*.json)")
    parser.add_argument("--latest", action="store_true",
                        help="print only the newest baseline of the folders given (what compare reads); exit 1 "
                             "when they hold none")
    args = parser.parse_args(argv)
    if args.latest:
        return print_latest(map(Path, args.runs))
    status = 0
    try:
        for path in [p for arg in map(Path, args.runs) for p in (stored_runs(arg) if arg.is_dir() else [arg])]:
            reasons = problems(load_run(path))
            print(f"{path}: " + (f"not a baseline: {'; '.join(reasons)}" if reasons else "a baseline"))
            status = status or (1 if reasons else 0)
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return status


def latest(folder: Path) -> tuple:
    """The newest baseline stored in ``folder`` (or None) and the newer runs passed over: not
    baselines, or not readable (which the gate and a bare --benchmark-compare refuse)."""
    runs = stored_runs(folder) if folder.is_dir() else []
    return newest_usable(runs, lambda run: run is not None and is_baseline(run), load=_readable)


def _readable(path: Path) -> dict | None:
    try:
        return load_run(path)
    except ReportError:
        return None


def print_latest(folders) -> int:
    status = 0
    for folder in folders:
        found, passed_over = latest(folder)
        print(found if found else f"no baseline in {folder}")
        if found and passed_over:
            print(f"{folder}: passed over the later {', '.join(passed_over)} (not baselines, or not readable)",
                  file=sys.stderr)
        status = status or (0 if found else 1)
    return status


if __name__ == "__main__":
    sys.exit(main())
