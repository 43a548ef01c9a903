"""How often the regression gate raises a false alarm, and how often it catches a real slowdown.

    python tools/gate_rates.py RUN.json... [-k EXPR] [--threshold 10] [--floor-ms 0.1] [--alpha 0.01]

The runs are ``--benchmark-json`` files of one GPU, some unchanged, some timed with
``--inject-delay-ms D`` (each benchmark's extra_info records D). For every benchmark:

- false alarms: every ordered pair of unchanged runs (baseline, new), judged as the nightly judges
  one run against the stored one; the share of pairs where it REGRESSED;
- detection at each delay D: every run slowed by D against every unchanged run, the share where it
  REGRESSED.

Each rate is given twice: the gate (median, floor and U test) and the median rule alone (the old
``--benchmark-compare-fail=median:10%``), from the same runs. Pairs share runs, so they are not
independent: a rate over U unchanged runs rests on U runs, not on U x (U - 1) pairs.
"""
import argparse
import itertools
import sys
from collections import defaultdict

from mmdet_opt.suite.compare import REGRESSED, Rule, compare_runs, injected_delay
from mmdet_opt.suite.report import ReportError, load_run


def without_rounds(run: dict) -> dict:
    """The run as if stored without its rounds: the gate then decides by the median rule alone."""
    benchmarks = [{**b, "stats": {k: v for k, v in b["stats"].items() if k != "data"}} for b in run["benchmarks"]]
    return {**run, "benchmarks": benchmarks}


def regressions(pairs: list, rule: Rule, expression: str | None) -> tuple:
    """({benchmark: times REGRESSED by the gate}, {... by the median alone}, {benchmark: pairs judged})."""
    gate, median, judged = defaultdict(int), defaultdict(int), defaultdict(int)
    for base, new in pairs:
        for counts, (b, n) in ((gate, (base, new)), (median, (without_rounds(base), without_rounds(new)))):
            for c in compare_runs(b, n, rule, expression).comparisons:
                counts[c.name] += c.verdict == REGRESSED
                if counts is gate:
                    judged[c.name] += 1
    return gate, median, judged


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="False-alarm and detection rates of the regression gate.")
    parser.add_argument("runs", nargs="+", help="--benchmark-json files: unchanged runs and --inject-delay-ms runs")
    parser.add_argument("-k", dest="expression", help="only benchmarks matching this pytest -k expression")
    parser.add_argument("--threshold", type=float, default=10.0, help="percent (default 10)")
    parser.add_argument("--floor-ms", type=float, default=Rule.floor_ms)
    parser.add_argument("--alpha", type=float, default=Rule.alpha)
    args = parser.parse_args(argv)
    rule = Rule(threshold=args.threshold / 100, floor_ms=args.floor_ms, alpha=args.alpha)
    try:
        runs = [load_run(path) for path in args.runs]
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    unchanged = [r for r in runs if not injected_delay(r)]
    slowed = defaultdict(list)
    for r in runs:
        if injected_delay(r):
            slowed[injected_delay(r)].append(r)
    if len(unchanged) < 2:
        print("error: need at least two unchanged runs (without --inject-delay-ms)", file=sys.stderr)
        return 2

    columns = {"false alarms": regressions(list(itertools.permutations(unchanged, 2)), rule, args.expression)}
    for delay in sorted(slowed):
        pairs = [(base, new) for base in unchanged for new in slowed[delay]]
        columns[f"detected at +{delay:g} ms"] = regressions(pairs, rule, args.expression)
    names = list(next(iter(columns.values()))[2])
    print(f"{len(unchanged)} unchanged runs, slowed runs: "
          + (", ".join(f"{len(v)} at +{d:g} ms" for d, v in sorted(slowed.items())) or "none")
          + ". Each cell: the gate / the median rule alone, out of the pairs judged.\n")
    print("| benchmark | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for name in names:
        cells = [f"{gate[name]}/{judged[name]} / {median[name]}/{judged[name]}" if judged[name] else ""
                 for gate, median, judged in columns.values()]
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
