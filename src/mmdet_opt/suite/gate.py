"""The nightly's gate step (``nightly.py``, step 2): ``inference_graph``'s stages judged against the
baseline, a flagged move timed again, and a repeated one timed with the baseline's own commit on this
machine to tell a slower machine from slower code (docs/nightly.md, step 2)."""
from __future__ import annotations

import os
import re
import subprocess
import tarfile
import tempfile
from pathlib import Path

from .defaults import QUICK_GPU_SIZES
from .runs import load_run

GATE = "test_stage and inference_graph and not roi_head and not masks and not rle"
GATE_SELECTION = ("--variants", "inference_graph", "--sizes", QUICK_GPU_SIZES)  # the study's two sizes
PASSED, FAILED = "passed", "failed"  # a step's status, and the gate's verdict stored with the night


def step_gate(night) -> tuple:
    """The step, on ``night`` (a ``nightly.Night``): (status, note); ``night.gate`` gets the verdict."""
    if night.baseline is None or night.gate["status"] == "error":  # the first step said why
        return FAILED, night.gate.get("note", "no baselines folder")
    gate_json, flagged = night.out / "gate.json", night.out / "flagged.txt"
    code, _ = night.run("-m", "pytest", "benchmarks/test_stages.py", "-k", GATE, *GATE_SELECTION,
                        f"--benchmark-json={gate_json}", *night.delay())
    if code or not gate_json.is_file():
        night.gate = {"status": "error", "note": f"the gate's benchmarks failed (pytest exit {code})"}
        return FAILED, night.gate["note"]
    # The baseline the night began with: one the benchmarks step saved tonight (--benchmark-save) is
    # tonight's own code, not what to judge it against.
    judge = ("-m", "mmdet_opt.suite.compare", night.baseline, gate_json, "-k", GATE, "--flagged-out", flagged)
    code, error = night.run(*judge, to=night.out / "gate.md")
    if code == 1:  # a fresh process times what was flagged again; only a repeated move counts
        rerun = night.out / "gate_rerun.json"
        night.run("-m", "pytest", *flagged.read_text().splitlines(), *GATE_SELECTION,
                  f"--benchmark-json={rerun}", *night.delay())
        code, error = night.run(*judge, "--confirm", rerun, to=night.out / "gate.md")
    night.gate = gate_verdict(code, flagged, error)
    if night.gate.get("flagged"):
        night.gate = judged_on_this_machine(night, night.gate, flagged, night.out / "gate_rerun.json")
    if night.gate["status"] == PASSED:
        return PASSED, night.gate.get("note", f"no confirmed regression ({night.out / 'gate.md'})")
    if night.gate.get("flagged"):
        return FAILED, "REGRESSED: " + ", ".join(night.gate["flagged"]) + f" ({night.gate['here']})"
    return FAILED, night.gate["note"]


def judged_on_this_machine(night, verdict: dict, flagged: Path, rerun: Path) -> dict:
    """The verdict once the rerun repeated a regression: the flagged stages timed with the baseline's own
    commit here (no injected delay: it stands for the baseline's code). The gate passes only when the
    machine moved, not the code (``machine_moved``); otherwise ``verdict`` stands, with what was found."""
    names, stored = flagged.read_text().split(), load_run(night.baseline)
    commit = str((stored.get("commit_info") or {}).get("id") or "")
    if not names or not re.fullmatch(r"[0-9a-f]{7,40}", commit):
        return {**verdict, "here": "the baseline records no commit, so it was not timed on this machine"}
    here = night.out / "gate_baseline_here.json"
    here.unlink(missing_ok=True)
    # Outside the checkout: there, pytest-benchmark would record tonight's commit as the run's.
    with tempfile.TemporaryDirectory(prefix="mmdet-opt-baseline-") as tmp:
        tree = Path(tmp)
        if not extract_commit(commit, tree):
            return {**verdict, "here": f"the baseline's commit {commit[:7]} is not in this checkout, so it was "
                                       "not timed on this machine"}
        paths = [str(tree / "src"), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        code, _ = night.run("-m", "pytest", *names, *GATE_SELECTION, f"--benchmark-json={here.resolve()}",
                            cwd=tree, env={**os.environ, "PYTHONPATH": os.pathsep.join(paths)})
    if code or not here.is_file():
        return {**verdict, "here": f"timing the baseline's commit {commit[:7]} here failed (pytest exit {code})"}
    # Each move in a file of its own: the machine's (the baseline's code, stored and here), the code's.
    night.run("-m", "mmdet_opt.suite.compare", night.baseline, here, "-k", GATE, to=night.out / "gate_machine.md")
    night.run("-m", "mmdet_opt.suite.compare", here, rerun, "-k", GATE, to=night.out / "gate_here.md")
    if machine_moved(stored, load_run(here), load_run(rerun), names):
        return {"status": PASSED, "machine_moved": verdict["flagged"],
                "note": f"moved with the machine, not the code: the baseline's commit {commit[:7]}, timed here, "
                        f"is as slow in {', '.join(verdict['flagged'])}; record a baseline on this machine"}
    return {**verdict, "here": f"also against the baseline's commit {commit[:7]} timed on this machine "
                               f"({night.out / 'gate_here.md'}; the machine's own move: "
                               f"{night.out / 'gate_machine.md'})"}


def machine_moved(stored: dict, here: dict, rerun: dict, fullnames: list) -> bool:
    """Whether every flagged stage moved with the machine: the baseline's own code timed here REGRESSED
    against the stored baseline, and tonight's rerun is within the rule of it (unchanged, or below the
    floor; not merely unconfirmed). A stage missing from either run is not shown to be the machine's."""
    from .compare import BELOW_FLOOR, REGRESSED, UNCHANGED, compare_runs

    slower_here = {c.fullname: c.verdict for c in compare_runs(stored, here).comparisons}
    tonight = {c.fullname: c.verdict for c in compare_runs(here, rerun).comparisons}
    return all(slower_here.get(name) == REGRESSED and tonight.get(name) in (UNCHANGED, BELOW_FLOOR)
               for name in fullnames)


def extract_commit(commit: str, tree: Path) -> bool:
    """``commit``'s files, less docs and baselines, into ``tree`` from the git checkout the night runs in;
    False without git, outside a checkout, or when it lacks the commit (a shallow clone: check out with
    fetch-depth 0)."""
    try:
        archive = subprocess.Popen(["git", "archive", "--format=tar", commit, "--", ".", ":(exclude)docs",
                                    ":(exclude)baselines"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    except OSError:
        return False
    try:
        with tarfile.open(fileobj=archive.stdout, mode="r|") as files:
            # The "data" filter (Python 3.12, and 3.10.12 / 3.11.4 on) where this Python has it.
            files.extractall(tree, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    except tarfile.TarError:  # nothing came: git refused
        pass
    finally:
        archive.stdout.close()
    return archive.wait() == 0


def gate_verdict(code: int, flagged: Path, error: str = "") -> dict:
    """What a night stores of its gate, from ``compare``'s exit status and ``--flagged-out`` file."""
    if code == 0:
        return {"status": PASSED}
    if code == 1:
        return {"status": FAILED, "flagged": [name.split("::")[-1] for name in flagged.read_text().splitlines()]}
    return {"status": "error", "note": error or f"compare exit {code}"}
