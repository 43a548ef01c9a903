"""How often the regression gate raises a false alarm, and how often it catches a real slowdown.

    python tools/gate_rates.py RUN.json... [-k EXPR] [--threshold 10] [--floor-ms 0.1] [--alpha 0.01]

The runs are ``--benchmark-json`` files of one GPU, some unchanged, some timed with
``--inject-delay-ms D`` (each benchmark's extra_info records D). For every benchmark:

- false alarms: every ordered pair of unchanged runs (baseline, new), judged as the nightly judges
  one run against the stored one; the share of pairs where it REGRESSED;
- detection at each delay D: every run slowed by D against every unchanged run, the share where it
  REGRESSED.

Each rate is given three ways, from the same runs: the gate with a rerun (``compare --confirm``: a
move counts only when another run of the same kind, standing in for the rerun, moved too; over
every ordered triple), the gate on one run (median, floor and U test), and the median rule alone
(the old ``--benchmark-compare-fail=median:10%``). Pairs share runs, so they are not independent: a
rate over U unchanged runs rests on U runs, not on U x (U - 1) pairs.
"""
import argparse
import sys
from collections import defaultdict

from mmdet_opt.suite.compare import REGRESSED, Rule, compare_runs, confirmed, injected_delay
from mmdet_opt.suite.runs import ReportError, load_run


def without_rounds(run: dict) -> dict:
    """The run as if stored without its rounds: the gate then decides by the median rule alone."""
    benchmarks = [{**b, "stats": {k: v for k, v in b["stats"].items() if k != "data"}} for b in run["benchmarks"]]
    return {**run, "benchmarks": benchmarks}


def regressed(result) -> set:
    return {c.name for c in result.comparisons if c.verdict == REGRESSED}


def rates(baselines: list, news: list, rule: Rule, expression: str | None) -> dict:
    """{benchmark: [with a rerun, triples, gate, median alone, pairs]}: every baseline against every
    other run of ``news``, and each such pair confirmed (``compare.confirmed``) by every third one."""
    cache = {}

    def judged(b, n):  # (the gate's Result, the median rule's Result)
        if (b, n) not in cache:
            cache[b, n] = (compare_runs(baselines[b], news[n], rule, expression),
                           compare_runs(without_rounds(baselines[b]), without_rounds(news[n]), rule, expression))
        return cache[b, n]

    same = baselines is news
    counts = defaultdict(lambda: [0, 0, 0, 0, 0])
    for b in range(len(baselines)):
        candidates = [n for n in range(len(news)) if not (same and n == b)]
        for n in candidates:
            gate, median = judged(b, n)
            for c in gate.comparisons:
                counts[c.name][4] += 1
                counts[c.name][2] += c.name in regressed(gate)
                counts[c.name][3] += c.name in regressed(median)
            for r in candidates:
                if r != n:
                    kept = regressed(confirmed(gate, judged(b, r)[0]))
                    for c in gate.comparisons:
                        counts[c.name][1] += 1
                        counts[c.name][0] += c.name in kept
    return counts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/gate_rates.py",
                                     description="False-alarm and detection rates of the regression gate.")
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

    columns = {"false alarms": rates(unchanged, unchanged, rule, args.expression)}
    for delay in sorted(slowed):
        columns[f"detected at +{delay:g} ms"] = rates(unchanged, slowed[delay], rule, args.expression)
    names = list(next(iter(columns.values())))
    print(f"{len(unchanged)} unchanged runs, slowed runs: "
          + (", ".join(f"{len(v)} at +{d:g} ms" for d, v in sorted(slowed.items())) or "none")
          + ". Each cell: the gate with a rerun (out of the triples) / the gate on one run / the median rule "
            "alone (out of the pairs).\n")
    print("| benchmark | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for name in names:
        cells = []
        for counts in columns.values():
            confirmed, triples, gate, median, pairs = counts.get(name, [0] * 5)
            cells.append(f"{confirmed}/{triples} / {gate}/{pairs} / {median}/{pairs}" if pairs else "")
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
