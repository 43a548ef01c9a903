"""--benchmark-compare: a usage error naming the file, before pytest-benchmark loads it.

Left to itself, pytest-benchmark crashes on a path that does not exist, and only warns (then
compares against nothing, so --benchmark-compare-fail passes) on a name that matches no run,
an empty or corrupt file, or a run of another device (whose timings say nothing about this one).
A bare --benchmark-compare with no stored run yet keeps pytest-benchmark's warning: a first run;
with stored runs it takes the latest baseline (``latest_baseline``).
"""
from __future__ import annotations

from pathlib import Path

import pytest
from pytest_benchmark.storage.file import FileStorage
from pytest_benchmark.utils import get_machine_id

from ..machine import device_name
from .baseline import is_baseline
from .runs import ReportError, load_run, newest_usable, same_weights
from .settings import Settings, run_weights


def check_compare_baselines(config, settings: Settings) -> None:
    """Each run --benchmark-compare names must load, and be of this run's device and weights."""
    compare = config.getoption("benchmark_compare", None)
    storage = config.getoption("benchmark_storage", None) or ""
    if not compare or ("://" in storage and not storage.startswith("file://")):
        return
    root = Path(storage.removeprefix("file://"))
    stored = FileStorage(root, logger=None, default_machine_id=get_machine_id())
    weights = run_weights(settings)  # once: it reads the whole checkpoint file for its hash
    if compare is True:
        files = latest_baseline(config, stored.query("[0-9][0-9][0-9][0-9]_"), weights, root)
    else:
        files = _named_runs(stored, compare, root)
    here = device_name(settings.device)
    for path in files:
        _check_run(path, _load(path), here, weights)


def latest_baseline(config, stored: list, weights: str, root: Path) -> list:
    """A bare --benchmark-compare: the latest stored run that is a baseline (a complete run of the
    default suite from a clean checkout, ``mmdet_opt.suite.baseline``) of the same weights. Later
    runs are passed over, in one header line; with none, nothing is compared, and the header says so.
    A broken file is still a usage error."""
    path, passed_over = newest_usable(
        stored, lambda run: is_baseline(run) and same_weights(run, {"weights": weights}), load=_load)
    if path is not None:
        config.option.benchmark_compare = str(path)
        note = f"--benchmark-compare: {path.name}, the latest baseline"
        if passed_over:
            note += f"; passed over the later {', '.join(passed_over)} (not complete and clean, or other weights)"
        config._mmdet_opt_compare_note = note
        return [path]
    if stored:  # only partial, dirty or other-weights runs: comparing with one would mislead
        config.option.benchmark_compare = False
        config._mmdet_opt_compare_note = (f"--benchmark-compare: no baseline in {root} (passed over "
                                          f"{', '.join(passed_over)}: not complete and clean, or other weights); "
                                          "nothing is compared")
    return []


def _named_runs(stored: FileStorage, compare: str, root: Path) -> list:
    """The stored runs --benchmark-compare=NAME matches: at least one, or a usage error that names
    the runs of other devices it would match."""
    try:
        files = stored.query(compare)
    except ValueError:  # pytest-benchmark's reaction to a path that is not a file
        raise pytest.UsageError(f"--benchmark-compare: no such file: {compare}") from None
    if not files:
        elsewhere = sorted(p for p in root.parent.glob(f"*/*/{compare.rstrip('*')}*.json") if root not in p.parents)
        hint = "" if not elsewhere else (
            f"; runs of other devices match: {', '.join(map(str, elsewhere))} (timings compare only "
            "on one device; `pytest-benchmark compare` shows runs side by side)")
        raise pytest.UsageError(f"--benchmark-compare: no stored run matches {compare!r} under {root}" + hint)
    return files


def _load(path: Path) -> dict:
    try:
        return load_run(path)
    except ReportError as exc:
        raise pytest.UsageError(f"--benchmark-compare: {exc}") from None


def _check_run(path: Path, run: dict, here: str, weights: str) -> None:
    info = run.get("machine_info")
    recorded = info.get("device") if isinstance(info, dict) else None
    if recorded and recorded != here:
        raise pytest.UsageError(f"--benchmark-compare: {path} was recorded on {recorded}, this run is on "
                                f"{here}; compare against a run of this device (baselines/<device>/)")
    if not same_weights(run, {"weights": weights}):
        raise pytest.UsageError(f"--benchmark-compare: {path} measured {run['weights']}, this run {weights}; "
                                "the detections, and so the timings, differ with the weights")
