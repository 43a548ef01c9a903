"""A noise-aware regression gate over two pytest-benchmark runs.

    python -m mmdet_opt.suite.compare BASELINE.json NEW.json [-k EXPR] [options]
    python -m mmdet_opt.suite.compare --latest-in baselines/<device>/<machine-id> NEW.json [-k EXPR]

Benchmarks are matched by fullname. One REGRESSED when both hold:

- its median slowed by more than ``--threshold`` (default 10%) AND by more than ``--floor-ms``
  (default 0.1 ms);
- a one-sided Mann-Whitney U test on the two runs' rounds (``stats.data``) says the new rounds are
  slower, at p below the per-test alpha.

The same rule the other way round marks a benchmark FASTER (suspicious): a stale baseline, or a stage
that stopped doing its work. It fails the gate only with ``--fail-on-faster``.

Why each part, in short (docs/nightly.md, "Why the gate's rule is what it is", has the measurements):

- the threshold keeps unchanged runs of ``total`` and ``backbone`` quiet while a 1 ms delay is caught;
- the floor binds only below 1 ms, where host-bound stages jitter by a few hundredths of a millisecond;
- the U test asks whether the rounds moved, not only the median, and weighs an outlier round as any other;
- alpha is a family-wise false-alarm rate: Bonferroni over every benchmark compared, both ways.
  Benchmarks with few rounds (3 to 5: throughput at batch 4 and 16) can never reach the per-test alpha,
  and the table says so rather than pretending to test them;
- the test takes one run's rounds as independent draws, so a whole slower run (a busy host, a throttled
  GPU) looks like a change: ``--confirm RERUN.json`` (the flagged benchmarks timed again in a fresh
  process) counts a move only when the rerun moved the same way against the same baseline. The GPU state
  stored with each run (``gpu_state``: clocks, power limit, throttle reasons) is printed below the table.

Runs saved without per-round data (``--benchmark-save`` without ``--benchmark-save-data``) cannot be
tested: for those the median rule alone decides, and each row says so. ``--benchmark-json`` always
writes the rounds.

The U test is the normal approximation with tie and continuity correction, in numpy (what
``scipy.stats.mannwhitneyu(method="asymptotic")`` computes; the tests check the two agree), so the
gate gives the same verdict wherever it runs and the project needs no scipy for it.

``--latest-in`` takes only a baseline (``baseline.py``: a complete run of the default suite from a
clean checkout), so a partial run stored later cannot leave most benchmarks with nothing to compare,
nor one slice of the suite stand in for another. A baseline named as a file is used as given, with a
line saying what it lacks.

Exit status: 1 when a benchmark REGRESSED (or, with ``--fail-on-faster``, got suspiciously faster),
0 otherwise, 2 for usage errors, unreadable files, runs of two different devices or weights, or nothing to
compare.
"""
from __future__ import annotations

import argparse
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .baseline import is_baseline, why_not
from .runs import (
    ReportError,
    device_of,
    injected_delay,
    load_run,
    newest_usable,
    same_weights,
    short_commit,
    stored_runs,
)

UNCHANGED = "unchanged"
BELOW_FLOOR = "below floor"
NOT_CONFIRMED = "not confirmed"
REGRESSED = "REGRESSED"
FASTER = "FASTER (suspicious)"
NOT_REPRODUCED = "not reproduced"


def mann_whitney_greater(x, y) -> float:
    """One-sided p-value that the values of ``x`` tend to be larger than those of ``y``.

    Mann-Whitney U, normal approximation with tie correction and continuity correction.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n1, n2 = len(x), len(y)
    n = n1 + n2
    _, inverse, counts = np.unique(np.concatenate([x, y]), return_inverse=True, return_counts=True)
    average_rank = np.cumsum(counts) - (counts - 1) / 2  # 1-based; tied values share the mean rank
    u = average_rank[inverse][:n1].sum() - n1 * (n1 + 1) / 2
    ties = float((counts**3 - counts).sum())
    variance = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))
    if variance <= 0:  # every value equal: no evidence either way
        return 1.0
    z = (u - n1 * n2 / 2 - 0.5) / math.sqrt(variance)
    return min(1.0, 0.5 * math.erfc(z / math.sqrt(2)))


def smallest_p(n1: int, n2: int) -> float:
    """The smallest p the test can give for these sample sizes: every x above every y."""
    return mann_whitney_greater(np.arange(n1) + n2, np.arange(n2))


@dataclass(frozen=True)
class Rule:
    threshold: float = 0.10  # relative change of the median
    floor_ms: float = 0.1  # and absolute change of the median, ms
    alpha: float = 0.01  # family-wise, over 2 x the benchmarks tested (Bonferroni)


@dataclass(frozen=True)
class Comparison:
    name: str
    fullname: str  # the pytest node id, to rerun it
    base_ms: float
    new_ms: float
    p_value: float | None  # one-sided, in the direction the median moved; None without rounds
    verdict: str
    note: str = ""

    @property
    def change(self) -> float:
        return self.new_ms / self.base_ms - 1 if self.base_ms > 0 else math.inf


def rounds(bench: dict):
    """The run's per-round times (s) as an array, or None when it was saved without them."""
    data = bench["stats"].get("data")
    if not isinstance(data, list) or not data or not all(isinstance(v, (int, float)) for v in data):
        return None
    return np.asarray(data, dtype=float)


def judge(base: dict, new: dict, rule: Rule, alpha_per_test: float) -> Comparison:
    """The verdict on one benchmark of two runs (pytest-benchmark JSON entries)."""
    base_ms, new_ms = base["stats"]["median"] * 1000, new["stats"]["median"] * 1000
    diff = new_ms - base_ms
    slower = diff > 0
    x, y = rounds(base), rounds(new)
    p = None
    if x is not None and y is not None:
        p = mann_whitney_greater(y, x) if slower else mann_whitney_greater(x, y)
    missing = [which for which, r in (("baseline", x), ("new run", y)) if r is None]
    fallback = f"median alone: no rounds in the {' and '.join(missing)}" if missing else ""
    name, fullname = new.get("name") or new["fullname"], new["fullname"]
    relative = abs(diff) / base_ms if base_ms > 0 else math.inf
    if relative <= rule.threshold:
        return Comparison(name, fullname, base_ms, new_ms, p, UNCHANGED, fallback)
    if abs(diff) <= rule.floor_ms:
        return Comparison(name, fullname, base_ms, new_ms, p, BELOW_FLOOR,
                          _join(f"{diff:+.3f} ms is within the {rule.floor_ms:g} ms floor", fallback))
    moved = REGRESSED if slower else FASTER
    if p is None:
        return Comparison(name, fullname, base_ms, new_ms, p, moved, fallback)
    if p < alpha_per_test:
        return Comparison(name, fullname, base_ms, new_ms, p, moved, f"{len(x)}/{len(y)} rounds")
    note = f"p >= {alpha_per_test:.2g}"
    reachable = smallest_p(len(y), len(x)) if slower else smallest_p(len(x), len(y))
    if reachable >= alpha_per_test:
        note = f"{len(x)}/{len(y)} rounds cannot reach p < {alpha_per_test:.2g} (smallest p {reachable:.2g})"
    return Comparison(name, fullname, base_ms, new_ms, p, NOT_CONFIRMED, note)


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def keywords(bench: dict) -> list:
    """What ``-k`` matches: the parts of the fullname and the extra_info values, as pytest's -k does
    with a test's name, its file and its parametrization."""
    words = re.split(r"::|/", bench["fullname"])
    return words + [str(v) for v in (bench.get("extra_info") or {}).values()]


def selector(expression: str | None):
    """``-k`` as pytest reads it (``test_stage and (total or backbone)``): substrings, case-insensitive."""
    if not expression:
        return lambda bench: True
    from _pytest.mark.expression import Expression  # pytest's own -k parser: the same syntax as the run's -k

    try:
        compiled = Expression.compile(expression)
    except Exception as exc:  # SyntaxError in pytest 9, ParseError before
        raise ReportError(f"-k: cannot parse {expression!r}: {exc}") from None

    def matches(bench: dict) -> bool:
        words = [w.lower() for w in keywords(bench)]
        return compiled.evaluate(lambda ident, **_: any(ident.lower() in w for w in words))

    return matches


@dataclass
class Result:
    comparisons: list
    only_in_baseline: list
    only_in_new: list
    alpha_per_test: float
    tested: int  # benchmarks with rounds in both runs

    def failed(self, fail_on_faster: bool = False) -> bool:
        bad = {REGRESSED, FASTER} if fail_on_faster else {REGRESSED}
        return any(c.verdict in bad for c in self.comparisons)


def compare_runs(baseline: dict, new: dict, rule: Rule = Rule(), expression: str | None = None) -> Result:
    """Every benchmark selected by ``expression`` in both runs, judged by ``rule``."""
    select = selector(expression)
    old = {b["fullname"]: b for b in baseline["benchmarks"] if select(b)}
    now = {b["fullname"]: b for b in new["benchmarks"] if select(b)}
    both = [name for name in now if name in old]
    tested = sum(rounds(old[name]) is not None and rounds(now[name]) is not None for name in both)
    alpha_per_test = rule.alpha / (2 * tested) if tested else rule.alpha
    return Result(
        comparisons=[judge(old[name], now[name], rule, alpha_per_test) for name in both],
        only_in_baseline=[b.get("name") or n for n, b in old.items() if n not in now],
        only_in_new=[b.get("name") or n for n, b in now.items() if n not in old],
        alpha_per_test=alpha_per_test,
        tested=tested,
    )


def confirmed(result: Result, rerun: Result) -> Result:
    """``result`` with each REGRESSED or FASTER verdict kept only where ``rerun`` (the same baseline
    against a rerun of the flagged benchmarks) moved the same way; a benchmark the rerun lacks keeps
    its verdict."""
    again = {c.name: c.verdict for c in rerun.comparisons}
    comparisons = []
    for c in result.comparisons:
        if c.verdict in (REGRESSED, FASTER) and c.name in again and again[c.name] != c.verdict:
            c = Comparison(c.name, c.fullname, c.base_ms, c.new_ms, c.p_value, NOT_REPRODUCED,
                           _join(c.note, f"rerun: {again[c.name]}"))
        comparisons.append(c)
    return Result(comparisons, result.only_in_baseline, result.only_in_new, result.alpha_per_test, result.tested)


def flagged(result: Result, fail_on_faster: bool = False) -> list:
    """The fullnames (pytest node ids) of the benchmarks that fail the gate, for a rerun."""
    bad = {REGRESSED, FASTER} if fail_on_faster else {REGRESSED}
    return [c.fullname for c in result.comparisons if c.verdict in bad]


def latest_run(folder: str | Path, exclude: Path, usable, wanted: str) -> tuple:
    """The highest-numbered stored run (``NNNN_*.json``) in ``folder``, ``exclude`` aside, for which
    ``usable(run)`` holds, and the names of the newer runs passed over. A broken file is an error;
    so is finding none usable, saying it looked for ``wanted``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ReportError(f"--latest-in: {folder} is not a directory")
    runs = [p for p in stored_runs(folder) if p.resolve() != exclude.resolve()]
    if not runs:
        raise ReportError(f"--latest-in: no stored run (NNNN_*.json) in {folder}")
    path, passed_over = newest_usable(runs, usable)
    if path is not None:
        return path, passed_over
    raise ReportError(f"--latest-in: none of the {len(runs)} stored runs in {folder} holds {wanted}")


def describe(path: Path, run: dict) -> str:
    sha = short_commit(run)
    sha = f"{sha[:-1]} (dirty)" if sha.endswith("*") else sha
    return f"{path}: commit {sha}, {run.get('datetime', 'no date')}"


def table(result: Result) -> list:
    lines = ["| benchmark | baseline ms | new ms | change | p | verdict | note |", "|---" * 7 + "|"]
    for c in result.comparisons:
        p = "n/a" if c.p_value is None else f"{c.p_value:.1e}"
        lines.append(f"| {c.name} | {c.base_ms:.3f} | {c.new_ms:.3f} | {c.change:+.1%} | {p} | {c.verdict} "
                     f"| {c.note} |")
    return lines


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if len(args.runs) != (1 if args.latest_in else 2):
        parser.error("give BASELINE.json NEW.json, or --latest-in DIR NEW.json")
    if args.threshold <= 0 or args.floor_ms < 0 or not 0 < args.alpha < 1:
        parser.error("--threshold must be > 0, --floor-ms >= 0 and --alpha between 0 and 1")
    rule = Rule(threshold=args.threshold / 100, floor_ms=args.floor_ms, alpha=args.alpha)
    try:
        runs = _load_runs(args, rule)
        result = compare_runs(runs.baseline, runs.new, rule, args.expression)
        if not result.comparisons:
            raise ReportError(f"no benchmark {'matching -k ' + repr(args.expression) + ' ' if args.expression else ''}"
                              f"is in both {runs.base_path} and {runs.new_path}: nothing to compare")
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if runs.rerun is not None:
        result = confirmed(result, compare_runs(runs.baseline, runs.rerun, rule, args.expression))
    print(report(result, rule, (runs.base_path, runs.baseline), (runs.new_path, runs.new)))
    _print_notes(args, runs)
    if args.flagged_out:
        Path(args.flagged_out).write_text("".join(f"{name}\n" for name in flagged(result, args.fail_on_faster)))
    return 1 if result.failed(args.fail_on_faster) else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mmdet_opt.suite.compare",
                                     description="Regression gate over two pytest-benchmark runs: median "
                                                 "threshold, absolute floor and a Mann-Whitney U test on the rounds.")
    parser.add_argument("runs", nargs="+", metavar="RUN.json",
                        help="BASELINE.json NEW.json, or NEW.json with --latest-in")
    parser.add_argument("--latest-in", metavar="DIR",
                        help="baseline: the highest-numbered stored run (NNNN_*.json) in this folder that is a "
                             "baseline (complete and clean: python -m mmdet_opt.suite.baseline), of the same weights, "
                             "holding a benchmark to compare; newer runs are passed over and named")
    parser.add_argument("-k", dest="expression", metavar="EXPR",
                        help="compare only the benchmarks matching this pytest -k expression (substrings of the "
                             "fullname and extra_info values), e.g. 'test_stage and (total or backbone)'")
    parser.add_argument("--threshold", type=float, default=10.0, metavar="PCT",
                        help="relative change of the median to act on, percent (default 10)")
    parser.add_argument("--floor-ms", type=float, default=Rule.floor_ms, metavar="MS",
                        help="absolute change of the median to act on, ms (default 0.1)")
    parser.add_argument("--alpha", type=float, default=Rule.alpha,
                        help="family-wise false-alarm rate of the U tests, split over them (default 0.01)")
    parser.add_argument("--fail-on-faster", action="store_true",
                        help="also fail when a benchmark got confirmed faster beyond the threshold")
    parser.add_argument("--confirm", metavar="RERUN.json",
                        help="a rerun of the flagged benchmarks: a move counts only if the rerun moved the same way")
    parser.add_argument("--flagged-out", metavar="FILE",
                        help="write the node ids of the benchmarks that fail the gate to FILE, one per line")
    return parser


@dataclass
class _Runs:
    """The runs a gate compares: the baseline, the new run, a rerun of the flagged benchmarks (or
    None), and the newer stored runs --latest-in passed over."""

    base_path: Path
    baseline: dict
    new_path: Path
    new: dict
    rerun_path: Path | None
    rerun: dict | None
    passed_over: list


def _load_runs(args, rule: Rule) -> _Runs:
    new_path = Path(args.runs[-1])
    new = load_run(new_path)
    passed_over = []
    if args.latest_in:
        base_path, passed_over = latest_run(
            args.latest_in, exclude=new_path,
            usable=lambda run: (same_weights(run, new) and is_baseline(run)
                                and bool(compare_runs(run, new, rule, args.expression).comparisons)),
            wanted="a baseline (a complete run of the default suite from a clean checkout, "
                   "python -m mmdet_opt.suite.baseline) with the same weights and a benchmark of "
                   f"{new_path}" + (f" matching -k {args.expression!r}" if args.expression else ""))
    else:
        base_path = Path(args.runs[0])
    baseline = load_run(base_path)
    rerun_path = Path(args.confirm) if args.confirm else None
    runs = _Runs(base_path, baseline, new_path, new, rerun_path, load_run(rerun_path) if rerun_path else None,
                 passed_over)
    _check_comparable(runs)
    return runs


def _check_comparable(runs: _Runs) -> None:
    """The new run and the rerun against the baseline: one device, the same weights, and a baseline
    without an injected delay."""
    base_device = device_of(runs.baseline)
    for path, run in ((runs.new_path, runs.new), (runs.rerun_path, runs.rerun)):
        if run is None:
            continue
        if base_device and device_of(run) and device_of(run) != base_device:
            raise ReportError(f"{runs.base_path} was recorded on {base_device}, {path} on {device_of(run)}: "
                              "timings compare only on one device")
        if not same_weights(runs.baseline, run):
            raise ReportError(f"{runs.base_path} measured {runs.baseline['weights']}, {path} {run['weights']}: the "
                              "detections, and so the timings, differ with the weights")
    if injected_delay(runs.baseline):
        raise ReportError(f"{runs.base_path} was run with --inject-delay-ms {injected_delay(runs.baseline):g}: "
                          "not a baseline")


def _print_notes(args, runs: _Runs) -> None:
    if runs.passed_over:
        print(f"\nNewer stored runs passed over (not a baseline, other weights, or none of the compared benchmarks): "
              f"{', '.join(runs.passed_over)}.")
    elif not args.latest_in and not is_baseline(runs.baseline):
        print(f"\nThe baseline is not a complete clean run ({why_not(runs.baseline)}): only what both runs hold is "
              "compared.")
    if args.confirm:
        print(f"\nRerun: {describe(runs.rerun_path, runs.rerun)}; a move it did not repeat is '{NOT_REPRODUCED}'.")


def report(result: Result, rule: Rule, base: tuple, new: tuple) -> str:
    from ..machine import throttle_warning

    lines = [f"Baseline: {describe(*base)}", f"New:      {describe(*new)}", "",
             f"A benchmark moved when its median changed by more than {rule.threshold:.0%} and {rule.floor_ms:g} ms."]
    if result.tested:
        lines.append("A one-sided Mann-Whitney U test on the rounds confirms a move at "
                     f"p < {result.alpha_per_test:.2g} (alpha {rule.alpha:g} over {2 * result.tested} tests, "
                     "Bonferroni).")
    untested = len(result.comparisons) - result.tested
    if untested:
        lines.append(f"{untested} of {len(result.comparisons)} lack per-round data in a run (saved by --benchmark-save "
                     "without --benchmark-save-data): for those the median rule alone decides.")
    lines.append("")
    lines += table(result)
    only = (("Only in the baseline", result.only_in_baseline), ("Only in the new run", result.only_in_new))
    for label, names in only:
        if names:
            lines += ["", f"{label} ({len(names)}): {', '.join(names)}"]
    for label, (_, run) in (("baseline", base), ("new run", new)):
        warning = throttle_warning(run)
        if warning:
            lines += ["", f"{label}: {warning}"]
    counts = {v: sum(c.verdict == v for c in result.comparisons)
              for v in (REGRESSED, FASTER, NOT_REPRODUCED, NOT_CONFIRMED, BELOW_FLOOR, UNCHANGED)}
    lines += ["", f"{len(result.comparisons)} compared: " + ", ".join(f"{n} {v}" for v, n in counts.items() if n)]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
