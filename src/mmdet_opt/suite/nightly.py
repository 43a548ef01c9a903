"""The nightly GPU job in one command: every step runs, even after one fails, and a summary says which failed.

    python -m mmdet_opt.suite.nightly [--out out] [--nights DIR] [--quick] [--inject-delay-ms MS]
                                      [--mutation NAME] [--python PY] [-- PYTEST ARGS]

Each step runs in a process of its own, with ``--python`` (default: this interpreter), so a prepared
environment works where tox cannot build one (a GPU box without network):

0. ``baselines folder``: this GPU's ``baselines/<device>/<machine id>`` and its newest baseline
   (``baseline --latest``); without one the step says what to record, and the gate fails on that
   without timing anything.
1. ``benchmarks``: ``pytest benchmarks`` against the latest baseline of this GPU (a bare
   ``--benchmark-compare``), with histograms and ``out/run.json``; a parity failure fails it.
2. ``gate`` (gate.py): ``inference_graph``'s stages at both sizes (``gate.GATE``) timed in a process of their own
   (``out/gate.json``) and judged by ``compare`` against the baseline step 0 found; what it flags is
   timed again in a fresh process and judged with ``--confirm`` (``out/gate.md``). Only a regression
   the rerun repeats fails it, and the summary names the stages. When the baseline's commit is in this
   checkout, the stages the rerun repeated are also timed with that commit's own code, on this machine
   (``out/gate_baseline_here.json``; ``out/gate_machine.md`` judges it against the stored baseline,
   ``out/gate_here.md`` the rerun against it). Only when the
   baseline's code REGRESSED here as well, every stage, and tonight's rerun is within the rule of it,
   did the machine move rather than the code (a new host, driver or clock): the gate then passes and
   says to record a baseline on this machine.
3. ``trained parity``: the parity tests on the project's trained checkpoint (``out/trained_parity.json``).
4. ``report``: ``out/report.md`` and ``out/stages.svg`` from tonight's run.
5. ``night``: tonight's run with the gate's verdict and the trained parity (``out/night.json``), also
   stored as the next ``NNNN_night.json`` in ``--nights DIR/<device>/`` (a real run only: not one
   with ``--inject-delay-ms`` or ``--mutation``).
6. ``history``: ``report --history`` over the stored nights (the baselines, without ``--nights``) and
   tonight's (``out/history.md``, ``out/history.svg``).

``--quick``, ``--mutation`` and arguments after ``--`` go to the benchmarks step (the first two to the
trained parity too); ``--inject-delay-ms`` to every timed step. Exit status: 1 when a step failed,
0 otherwise; ``out/summary.md`` holds the summary.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .gate import FAILED, PASSED, step_gate
from .runs import ReportError, load_run, stored_runs

SKIPPED = "skipped"


@dataclass
class Night:
    python: str
    out: Path
    nights: Path | None
    quick: bool = False
    delay_ms: float = 0.0
    mutation: str | None = None
    pytest_args: list = field(default_factory=list)
    baselines: str | None = None  # this GPU's folder of baselines, once known
    baseline: str | None = None  # its newest baseline when the night began: what the gate judges against
    stored: Path | None = None  # tonight's night, once stored with the others
    gate: dict = field(default_factory=lambda: {"status": "not run"})  # stored with the night
    results: list = field(default_factory=list)  # (step, status, note)

    @property
    def real(self) -> bool:
        """A night to remember: not slowed or broken on purpose."""
        return not self.delay_ms and not self.mutation

    def delay(self) -> list:
        return [f"--inject-delay-ms={self.delay_ms:g}"] if self.delay_ms else []

    def options(self) -> list:
        """What the benchmarks and trained-parity steps pass on to pytest."""
        return (["--quick"] if self.quick else []) + ([f"--mutation={self.mutation}"] if self.mutation else [])

    def device(self) -> str | None:
        """This GPU's folder name, from ``baselines/<device>/<machine id>``."""
        return Path(self.baselines).parent.name if self.baselines else None

    def run(self, *args, to: Path | None = None, cwd: Path | None = None, env: dict | None = None) -> tuple:
        """(exit status, last stderr line) of ``python ARGS``: output live, or stdout into ``to`` and echoed."""
        command = [self.python, *map(str, args)]
        where = f"(in {cwd}) " if cwd else ""
        print(f"\n{where}$ {shlex.join(command)}" + (f" > {shlex.quote(str(to))}" if to else ""), flush=True)
        if to is None:
            return subprocess.run(command, check=False, cwd=cwd, env=env).returncode, ""
        done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=cwd, env=env)
        Path(to).write_text(done.stdout)
        print(done.stdout, end="")
        print(done.stderr, end="", file=sys.stderr, flush=True)
        return done.returncode, (done.stderr.strip().splitlines() or [""])[-1]


def step_baselines_folder(night: Night) -> tuple:
    code, error = night.run("-m", "mmdet_opt.machine", to=night.out / "baselines_folder.txt")
    if code:
        return FAILED, f"cannot tell this GPU's baselines folder: {error}"
    folder = (night.out / "baselines_folder.txt").read_text().strip()
    night.baselines = folder  # the history and the night's name need it even without a baseline
    code, _ = night.run("-m", "mmdet_opt.suite.baseline", "--latest", folder, to=night.out / "baseline.txt")
    if code:
        night.gate = {"status": "error", "note": f"no baseline in {folder}"}
        return FAILED, (f"no baseline in {folder}: record one from a clean checkout of main "
                        "(pytest benchmarks --benchmark-save=NAME --benchmark-save-data) and commit it")
    night.baseline = (night.out / "baseline.txt").read_text().strip()
    return PASSED, f"{folder}, newest baseline {Path(night.baseline).name}"


def step_benchmarks(night: Night) -> tuple:
    code, _ = night.run("-m", "pytest", "benchmarks", "--benchmark-compare",
                        f"--benchmark-histogram={night.out / 'histogram'}",
                        f"--benchmark-json={night.out / 'run.json'}", *night.delay(), *night.options(),
                        *night.pytest_args)
    return (PASSED, "") if code == 0 else (FAILED, f"pytest exit {code}: a benchmark or parity test failed (above)")


def step_trained_parity(night: Night) -> tuple:
    from ..checkpoint import TRAINED

    if not TRAINED.is_file():
        return SKIPPED, f"no trained checkpoint committed ({TRAINED})"
    code, _ = night.run("-m", "pytest", "benchmarks/test_parity.py", "--checkpoint", "trained",
                        f"--benchmark-json={night.out / 'trained_parity.json'}", *night.options())
    return (PASSED, "") if code == 0 else (FAILED, f"pytest exit {code}: a parity case failed (above)")


def step_report(night: Night) -> tuple:
    if not (night.out / "run.json").is_file():
        return FAILED, f"no {night.out / 'run.json'}: the benchmarks step wrote none"
    code, error = night.run("-m", "mmdet_opt.suite.report", night.out / "run.json", "--chart",
                            night.out / "stages.svg", to=night.out / "report.md")
    return (PASSED, str(night.out / "report.md")) if code == 0 else (FAILED, error)


def step_night(night: Night) -> tuple:
    """out/night.json: tonight's run, the gate's verdict and the trained parity; stored with the nights."""
    try:
        run = load_run(night.out / "run.json")
        record = {**run, "gate": night.gate}
        trained = night.out / "trained_parity.json"
        if trained.is_file():
            parity_run = load_run(trained)
            record["trained_parity"] = {"weights": parity_run.get("weights"), "parity": parity_run.get("parity", [])}
    except ReportError as exc:
        return FAILED, str(exc)
    text = json.dumps(record, indent=1)
    (night.out / "night.json").write_text(text)
    if night.nights is None or night.baselines is None:
        return PASSED, f"{night.out / 'night.json'} (no --nights folder to store it in)"
    if not night.real:
        return SKIPPED, f"{night.out / 'night.json'}, not stored: a run with --inject-delay-ms or --mutation"
    folder = night.nights / night.device()
    folder.mkdir(parents=True, exist_ok=True)
    stored = stored_runs(folder)
    night.stored = folder / f"{int(stored[-1].name[:4]) + 1 if stored else 1:04d}_night.json"
    night.stored.write_text(text)
    (night.out / "night-stored.txt").write_text(f"{night.stored}\n")  # the workflow pushes it to gh-pages
    return PASSED, str(night.stored)


def step_history(night: Night) -> tuple:
    """The earlier nights of this GPU (its baselines when there are none) and tonight's."""
    folders = ([night.nights / night.device()] if night.nights and night.device() else []) + (
        [Path(night.baselines)] if night.baselines else [])
    earlier = next((f for f in folders if f.is_dir() and stored_runs(f)), None)
    runs = [earlier] if earlier else []
    if (night.out / "night.json").is_file() and night.stored is None:  # a stored night is in its folder
        runs.append(night.out / "night.json")
    if not runs:
        return FAILED, "no stored night, baseline or tonight's run to show"
    code, error = night.run("-m", "mmdet_opt.suite.report", "--history", *runs, "--chart", night.out / "history.svg",
                            to=night.out / "history.md")
    return (PASSED, str(night.out / "history.md")) if code == 0 else (FAILED, error)


STEPS = (("baselines folder", step_baselines_folder), ("benchmarks", step_benchmarks), ("gate", step_gate),
         ("trained parity", step_trained_parity), ("report", step_report), ("night", step_night),
         ("history", step_history))


def summary(results: list) -> str:
    lines = ["| step | status | note |", "|---|---|---|"]
    lines += [f"| {step} | {status} | {note} |" for step, status, note in results]
    failed = [step for step, status, _ in results if status == FAILED]
    return "\n".join(lines + ["", f"Failed: {', '.join(failed)}." if failed else "Every step passed."])


def main(argv=None) -> int:
    args, pytest_args = parse(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # Steps may run in another folder (the gate's baseline commit): a python given as a path is made absolute.
    python = os.path.abspath(args.python) if os.sep in args.python else args.python
    night = Night(python=python, out=out, nights=Path(args.nights) if args.nights else None, quick=args.quick,
                  delay_ms=args.inject_delay_ms, mutation=args.mutation, pytest_args=pytest_args)
    for name, step in STEPS:
        try:
            status, note = step(night)
        except Exception as exc:  # a broken step must not stop the others; the summary names it
            status, note = FAILED, f"{type(exc).__name__}: {exc}"
        night.results.append((name, status, note))
    text = summary(night.results)
    (out / "summary.md").write_text(text + "\n")
    if os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(os.environ["GITHUB_STEP_SUMMARY"], "a") as f:
            f.write("## Nightly\n\n" + text + "\n")
    print("\nNightly summary\n\n" + text)
    return 1 if any(status == FAILED for _, status, _ in night.results) else 0


def parse(argv) -> tuple:
    parser = argparse.ArgumentParser(prog="python -m mmdet_opt.suite.nightly",
                                     description="The nightly GPU job: benchmarks, gate, trained parity, report, "
                                                 "the night stored, history. Arguments after -- go to the "
                                                 "benchmarks step's pytest.")
    parser.add_argument("--out", default="out", help="folder for every artifact (default out)")
    parser.add_argument("--nights", help="folder of earlier nights (<device>/NNNN_night.json), e.g. from gh-pages; "
                                         "tonight's is added to it")
    parser.add_argument("--python", default=sys.executable, help="the interpreter every step runs with "
                                                                 "(default: this one)")
    parser.add_argument("--quick", action="store_true", help="the benchmarks' quick mode (pytest --quick)")
    parser.add_argument("--inject-delay-ms", type=float, default=0.0, metavar="MS",
                        help="slow every timed call by MS: the gate must fail and name the stages")
    parser.add_argument("--mutation", help="break the parity tests' results with this mutation "
                                           "(mmdet_opt.suite.mutations): the parity steps must fail")
    argv = sys.argv[1:] if argv is None else list(argv)
    split = argv.index("--") if "--" in argv else len(argv)
    return parser.parse_args(argv[:split]), argv[split + 1:]


if __name__ == "__main__":
    sys.exit(main())
