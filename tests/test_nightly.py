"""The nightly (``python -m mmdet_opt.suite.nightly``): nights replayed from stored files, and every step
run in order with pytest replaced by a stand-in that hands over given runs.

The runs have the suite's own structure (``synthetic_runs``); the gate, the report and the history
are the real ones.
"""
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from mmdet_opt.suite import compare
from mmdet_opt.suite.baseline import expected
from mmdet_opt.suite.compare import selector
from mmdet_opt.suite.gate import GATE, gate_verdict
from mmdet_opt.suite.nightly import Night, step_night
from mmdet_opt.suite.report import cli as report_cli
from synthetic_runs import complete_run, only

REPO = Path(__file__).resolve().parents[1]
SLOWED = "test_stage[inference_graph-1333x800-total]"


def write(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def points_per_series(svg: str) -> dict:
    """{series: drawn points} of a pygal line chart."""
    counts = {}
    for group in ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}g"):
        kind = group.get("class", "")
        dots = list(group.iter("{http://www.w3.org/2000/svg}circle"))
        if kind.startswith("series serie-") and dots:
            counts[kind.split()[1]] = len(dots)
    return counts


def test_four_nights_replayed_the_fourth_flagged(tmp_path, capsys):
    """Three unchanged nights and one 1 ms slower on a gated stage, each judged by the gate against the
    stored baseline and stored as a night; the history then has four points a series and flags the fourth."""
    baselines = tmp_path / "baselines" / "NVIDIA_H200" / "Linux-CPython-3.12-64bit"
    write(baselines / "0001_base.json", complete_run(seed=0))
    nights = tmp_path / "nights"
    for i, slower in enumerate([{}, {}, {}, {SLOWED: 1.0}], start=1):
        out = tmp_path / f"out{i}"
        tonight = complete_run(seed=i, slower_ms=slower, commit=f"c0ffee{i}")
        write(out / "run.json", tonight)
        write(out / "gate.json", only(tonight, selector(GATE)))
        code = compare.main(["--latest-in", str(baselines), str(out / "gate.json"), "-k", GATE,
                             "--flagged-out", str(out / "flagged.txt")])
        assert code == (1 if slower else 0), capsys.readouterr().out
        night = Night(python=sys.executable, out=out, nights=nights, baselines=str(baselines),
                      gate=gate_verdict(code, out / "flagged.txt"))
        assert step_night(night) == ("passed", str(nights / "NVIDIA_H200" / f"000{i}_night.json"))
    capsys.readouterr()
    svg = tmp_path / "history.svg"
    assert report_cli(["--history", str(nights / "NVIDIA_H200"), "--chart", str(svg)]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 000")]
    assert [row.split(" | ")[0] for row in rows[:4]] == [f"| 000{i} c0ffee{i}" for i in range(1, 5)]
    assert all(row.endswith("| complete; gate: passed |") for row in rows[:3])
    assert rows[3].endswith(f"| complete; gate: REGRESSED {SLOWED} |")
    text = svg.read_text()
    counts = points_per_series(text)
    totals = {(variant, size) for variant, size, stage in expected(True).stages if stage == "total"}
    assert len(counts) == len(totals) and set(counts.values()) == {4}
    assert "0004 c0ffee4 REGRESSED" in text and "0003 c0ffee3 REGRESSED" not in text


# --- every step, with a stand-in pytest ------------------------------------------------------------------

STAND_IN = """#!{python}
import os, shutil, sys
from pathlib import Path

args, given = sys.argv[1:], Path(os.environ["GIVEN_RUNS"])
if args[:2] != ["-m", "pytest"]:
    os.execv({python!r}, [{python!r}, *args])
with open(given / "calls.txt", "a") as calls:
    calls.write(" ".join(args) + "\\n")
with open(given / "where.txt", "a") as where:  # each pytest call's folder, first import path, files there
    where.write(" ".join([os.getcwd(), os.environ.get("PYTHONPATH", "").split(os.pathsep)[0],
                          str(os.path.isfile("src/marker.txt")), str(os.path.exists("docs"))]) + "\\n")
out = next((a.split("=", 1)[1] for a in args if a.startswith("--benchmark-json=")), "")
name = Path(out).name
if (given / name).is_file():
    shutil.copy(given / name, out)
save = next((a.split("=", 1)[1] for a in args if a.startswith("--benchmark-save=")), None)
if save and (given / "saved.json").is_file():  # as pytest-benchmark stores a run: the next number
    shutil.copy(given / "saved.json", Path(os.environ["SAVE_TO"]) / f"0002_{{save}}.json")
sys.exit(int((given / f"{{name}}.rc").read_text()) if (given / f"{{name}}.rc").is_file() else 0)
"""


@pytest.fixture
def nightly(tmp_path):
    """``nightly(*args)``: the command in ``tmp_path`` with the stand-in pytest; (exit status, output,
    the pytest calls, the out folder). Runs it hands over: ``tmp_path / 'given' / <json name>``."""
    from mmdet_opt.machine import baselines_folder

    given = tmp_path / "given"
    given.mkdir()
    stand_in = tmp_path / "python"
    stand_in.write_text(STAND_IN.format(python=sys.executable))
    stand_in.chmod(0o755)
    env = {**os.environ, "GIVEN_RUNS": str(given), "PYTHONPATH": str(REPO / "src"),
           "SAVE_TO": str(tmp_path / baselines_folder("cpu"))}
    write(tmp_path / baselines_folder("cpu") / "0001_base.json", complete_run(seed=0, on_gpu=False))

    def run(*args):
        done = subprocess.run([sys.executable, "-m", "mmdet_opt.suite.nightly", "--python", str(stand_in), *args],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        calls = (given / "calls.txt").read_text().splitlines() if (given / "calls.txt").exists() else []
        return done.returncode, done.stdout + done.stderr, calls, tmp_path / "out"

    return given, run


@pytest.mark.slow  # seven processes, four of them importing torch
def test_a_green_night_is_stored_and_charted(nightly):
    given, run = nightly
    tonight = complete_run(seed=1, on_gpu=False)
    write(given / "run.json", tonight)
    write(given / "gate.json", only(tonight, selector(GATE)))
    write(given / "trained_parity.json", {**only(tonight, lambda b: False), "weights": "checkpoint trained",
                                          "parity": tonight["parity"][:3]})
    code, output, calls, out = run("--nights", "nights")
    assert code == 0, output
    assert "Every step passed." in (out / "summary.md").read_text()
    assert [c.split()[2] for c in calls] == ["benchmarks", "benchmarks/test_stages.py", "benchmarks/test_parity.py"]
    assert "--benchmark-compare" in calls[0].split() and "--checkpoint trained" in calls[2]
    stored = json.loads((out.parent / "nights" / "cpu" / "0001_night.json").read_text())
    assert stored["gate"] == {"status": "passed"} and stored["trained_parity"]["weights"] == "checkpoint trained"
    assert "| 0001 c0ffee1 |" in (out / "history.md").read_text()
    for name in ("report.md", "stages.svg", "gate.md", "history.svg", "history-parity.svg", "night-stored.txt"):
        assert (out / name).is_file(), name


@pytest.mark.slow  # seven processes, four of them importing torch
def test_every_step_runs_after_a_failure_and_the_summary_names_each(nightly):
    """The benchmarks fail without a run file, the gate's stages are 1 ms slower in both its run and its
    rerun, parity is broken on purpose: every step still runs, and the job fails naming them."""
    given, run = nightly
    slow = complete_run(seed=2, on_gpu=False, slower_ms={"test_stage[inference_graph_eager_fp32-640x384-total]": 1.0})
    (given / "run.json.rc").write_text("1")
    write(given / "gate.json", only(slow, selector(GATE)))
    write(given / "gate_rerun.json", only(slow, lambda b: b["name"].endswith("-640x384-total]")))
    (given / "trained_parity.json.rc").write_text("1")
    code, output, calls, out = run("--inject-delay-ms", "1", "--mutation", "shift_8px")
    assert code == 1, output
    summary = (out / "summary.md").read_text()
    assert "Failed: benchmarks, gate, trained parity, report, night." in summary
    assert ("| gate | failed | REGRESSED: test_stage[inference_graph_eager_fp32-640x384-total] (the baseline's "
            "commit c0ffee1 is not in this checkout, so it was not timed on this machine) |") in summary
    assert "| history | passed |" in summary  # the stored baseline, charted
    benchmarks, gate, rerun, trained = (c.split() for c in calls)
    assert {"--inject-delay-ms=1", "--mutation=shift_8px"} <= set(benchmarks)
    assert "--inject-delay-ms=1" in gate and "--inject-delay-ms=1" in rerun and "--mutation=shift_8px" in trained
    assert rerun[2] == "benchmarks/test_stages.py::test_stage[inference_graph_eager_fp32-640x384-total]"
    assert not (out / "night-stored.txt").exists()


@pytest.mark.slow  # five processes, three of them importing torch
def test_a_folder_without_a_baseline_is_named_and_the_gate_not_timed(nightly, tmp_path):
    """A new GPU's first night, or a folder of partial runs only: the first step says what to record,
    the gate fails on that without timing anything, and the other steps still run."""
    from mmdet_opt.machine import baselines_folder

    given, run = nightly
    folder = tmp_path / baselines_folder("cpu")
    stream_only = only(complete_run(seed=0, on_gpu=False), lambda b: "test_stream" in b["name"])
    write(folder / "0001_base.json", stream_only)
    write(given / "run.json", complete_run(seed=1, on_gpu=False))
    code, output, calls, out = run()
    assert code == 1, output
    summary = (out / "summary.md").read_text()
    assert f"| baselines folder | failed | no baseline in {baselines_folder('cpu')}: record one" in summary
    assert f"| gate | failed | no baseline in {baselines_folder('cpu')} |" in summary
    assert [c.split()[2] for c in calls] == ["benchmarks", "benchmarks/test_parity.py"]  # no gate timing
    assert "| report | passed |" in summary
    assert json.loads((out / "night.json").read_text())["gate"] == {
        "status": "error", "note": f"no baseline in {baselines_folder('cpu')}"}


@pytest.mark.slow  # seven processes, four of them importing torch
def test_a_night_that_saves_a_baseline_is_judged_against_the_one_it_began_with(nightly, tmp_path):
    """``-- --benchmark-save=NAME``: the benchmarks step stores tonight's run as the newest baseline. The
    gate still judges tonight against the baseline the night began with, so a slower night is caught."""
    from mmdet_opt.machine import baselines_folder

    given, run = nightly
    stage = "test_stage[inference_graph_eager_fp32-640x384-total]"
    slow = complete_run(seed=3, on_gpu=False, slower_ms={stage: 1.0})
    write(given / "run.json", slow)
    write(given / "saved.json", slow)
    write(given / "gate.json", only(slow, selector(GATE)))
    write(given / "gate_rerun.json", only(slow, lambda b: b["name"] == stage))
    code, output, calls, out = run("--", "--benchmark-save=h200")
    assert (tmp_path / baselines_folder("cpu") / "0002_h200.json").is_file()  # saved by the benchmarks step
    assert code == 1, output
    assert f"| gate | failed | REGRESSED: {stage} (the baseline's commit" in (out / "summary.md").read_text()
    assert "0001_base.json" in (out / "gate.md").read_text()


@pytest.mark.slow  # eight processes, four of them importing torch
@pytest.mark.parametrize("baseline_code_here", ["as slow", "as fast as stored", "slower, but not as slow",
                                                "missing a stage", "failed"])
def test_a_repeated_move_is_judged_against_the_baselines_commit_timed_on_this_machine(nightly, tmp_path,
                                                                                     baseline_code_here):
    """The gate and its rerun are 1 ms slower on two stages. The baseline's commit is in the checkout, so
    the stages are timed with that commit's own files and code on this machine, outside the checkout.
    Only when that code is as slow in both stages did the machine move, and the gate passes saying so;
    when it is as fast as stored, half as slow, lacks a stage or fails, the gate fails."""
    from mmdet_opt.machine import baselines_folder

    given, run = nightly
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "marker.txt").write_text("the baseline's code\n")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "left_out.txt").write_text("not needed to time the code\n")
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "src/marker.txt", "docs/left_out.txt"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "base"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    base = complete_run(seed=0, on_gpu=False)
    base["commit_info"]["id"] = commit
    write(tmp_path / baselines_folder("cpu") / "0001_base.json", base)

    stages = ["test_stage[inference_graph_eager_fp32-640x384-backbone]",  # in the runs' (and so the gate's) order
              "test_stage[inference_graph_eager_fp32-640x384-total]"]
    slow = complete_run(seed=4, on_gpu=False, slower_ms=dict.fromkeys(stages, 1.0))
    write(given / "run.json", slow)
    write(given / "gate.json", only(slow, selector(GATE)))
    write(given / "gate_rerun.json", only(slow, lambda b: b["name"] in stages))
    here = {"as slow": slow, "as fast as stored": complete_run(seed=5, on_gpu=False),
            "slower, but not as slow": complete_run(seed=6, on_gpu=False, slower_ms=dict.fromkeys(stages, 0.5)),
            "missing a stage": slow, "failed": slow}[baseline_code_here]
    kept = stages[:1] if baseline_code_here == "missing a stage" else stages
    write(given / "gate_baseline_here.json", only(here, lambda b: b["name"] in kept))
    if baseline_code_here == "failed":
        (given / "gate_baseline_here.json.rc").write_text("1")
    code, output, calls, out = run("--inject-delay-ms", "1")

    benchmarks, gate, rerun, at_base = (c.split() for c in calls[:4])
    assert at_base[2:4] == [f"benchmarks/test_stages.py::{stage}" for stage in stages]
    assert not any("delay" in a for a in at_base)
    folder, first_import, has_src, has_docs = (given / "where.txt").read_text().splitlines()[3].split()
    assert Path(first_import) == Path(folder) / "src" and not Path(folder).is_relative_to(tmp_path)
    assert (has_src, has_docs) == ("True", "False")  # the commit's code, without its docs
    assert not Path(folder).exists()  # removed once timed
    summary = (out / "summary.md").read_text()
    gate_row = next(line for line in summary.splitlines() if line.startswith("| gate |"))
    if baseline_code_here != "failed":  # the machine's move: the stored baseline against its code timed here
        machine = (out / "gate_machine.md").read_text()
        assert ("REGRESSED" in machine) == (baseline_code_here != "as fast as stored")
    if baseline_code_here == "as slow":
        assert code == 0, output
        assert gate_row.startswith(f"| gate | passed | moved with the machine, not the code: the baseline's commit "
                                   f"{commit[:7]}, timed here, is as slow in {', '.join(stages)}")
        stored = json.loads((out / "night.json").read_text())["gate"]
        assert stored["status"] == "passed" and stored["machine_moved"] == stages
    else:
        assert code == 1, output
        assert gate_row.startswith(f"| gate | failed | REGRESSED: {', '.join(stages)} (")
        reason = {"failed": f"timing the baseline's commit {commit[:7]} here failed (pytest exit 1)"}.get(
            baseline_code_here, f"also against the baseline's commit {commit[:7]} timed on this machine")
        assert reason in gate_row
