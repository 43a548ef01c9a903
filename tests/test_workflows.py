"""The CI workflows are valid GitHub workflows and run what the README says they run."""
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
CI, NIGHTLY = WORKFLOWS / "ci.yml", WORKFLOWS / "nightly-gpu.yml"
TEST_COMMAND = "tox -e test"


def load(path):
    return yaml.safe_load(path.read_text())


def run_steps(workflow):
    return "\n".join(step.get("run", "") for job in workflow["jobs"].values() for step in job["steps"])


def test_workflows_match_githubs_schema():
    pytest.importorskip("check_jsonschema")
    proc = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
         str(CI), str(NIGHTLY)],
        capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ci_runs_the_readme_test_command():
    ci = load(CI)
    # YAML 1.1 reads the key `on` as True.
    assert {"push", "pull_request"} <= set(ci[True])
    assert TEST_COMMAND in run_steps(ci)
    assert TEST_COMMAND in (ROOT / "README.md").read_text()
    assert TEST_COMMAND in (ROOT / ".ci" / "run").read_text()


def test_nightly_benchmarks_on_a_gpu_runner_and_gates_on_regressions():
    nightly = load(NIGHTLY)
    assert {"schedule", "workflow_dispatch"} <= set(nightly[True])
    (job,) = nightly["jobs"].values()
    assert {"self-hosted", "gpu"} <= set(job["runs-on"])
    commands = run_steps(nightly)
    assert "--benchmark-compare " in commands
    assert "--benchmark-json=out/run.json" in commands
    assert "mmdet_opt.suite.report out/run.json --chart out/stages.svg" in commands
    # The gate: its own JSON (every round kept), judged by the noise-aware comparison against the
    # latest stored run of this GPU, not by pytest-benchmark's fixed percentage.
    assert "--benchmark-compare-fail" not in commands
    gate = gate_step(nightly)
    assert "--benchmark-json=out/gate.json" in gate["run"]
    assert 'mmdet_opt.suite.compare --latest-in "$BASELINES" out/gate.json' in gate["run"]
    assert 'gate="test_stage and inference_graph and not roi_head and not masks and not rle"' in gate["run"]
    assert "--variants inference_graph --sizes 1333x800,3840x2304" in gate["run"]
    assert gate["shell"] == "bash"  # pipefail, so `| tee` keeps the gate's exit status
    # The gate's baseline folder is this runner's GPU's, found at run time.
    assert 'echo "BASELINES=$(.tox/bench/bin/python -m mmdet_opt.machine)" >> "$GITHUB_ENV"' in commands
    assert 'mmdet_opt.suite.report --history "$BASELINES" $tonight' in commands
    assert 'tonight="$tonight out/trained_parity.json"' in commands
    assert "--chart out/history.svg > out/history.md" in commands
    # Strict parity on the project's trained model, whenever its checkpoint is in the repository.
    (trained,) = [s for s in job["steps"] if "--checkpoint trained" in s.get("run", "")]
    assert "benchmarks/test_parity.py" in trained["run"]
    assert "src/mmdet_opt/training/trained/trained_heads.pth" in trained["if"]
    # The artifacts are wanted most when the gate fails.
    (upload,) = [s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact")]
    assert upload["if"] == "always()"
    assert upload["with"]["path"] == "out/"


def gate_step(nightly) -> dict:
    (job,) = nightly["jobs"].values()
    (gate,) = [s for s in job["steps"] if "mmdet_opt.suite.compare" in s.get("run", "")]
    return gate


def stage_run(names_ms: dict) -> dict:
    """A --benchmark-json run of inference_graph stages: {stage id: median ms}, 20 rounds each."""
    import numpy as np

    benchmarks = []
    for i, (name, ms) in enumerate(names_ms.items()):
        rounds = (ms + np.random.default_rng(i).normal(0, ms * 0.01, 20)) / 1000
        benchmarks.append({"name": f"test_stage[{name}]", "fullname": f"benchmarks/test_stages.py::test_stage[{name}]",
                           "extra_info": {"variant": "inference_graph"},
                           "stats": {"median": float(np.median(rounds)), "data": rounds.tolist()}})
    return {"machine_info": {"device": "NVIDIA H200"}, "commit_info": {"id": "0" * 40}, "benchmarks": benchmarks}


STAGES_MS = {"inference_graph-1333x800-total": 5.2, "inference_graph-1333x800-mask post-processing": 0.13,
             "inference_graph-1333x800-roi_head": 2.0}


@pytest.mark.parametrize("night, rerun, status, verdict", [
    ({"inference_graph-1333x800-total": 6.5}, {"inference_graph-1333x800-total": 5.25}, 0, "not reproduced"),
    ({"inference_graph-1333x800-total": 6.5}, {"inference_graph-1333x800-total": 6.4}, 1, "REGRESSED"),
    ({}, None, 0, "unchanged"),
    ({"inference_graph-1333x800-roi_head": 3.0}, None, 0, "unchanged"),  # not gated: no rerun either
], ids=["drift-not-repeated", "slowdown-repeated", "unchanged", "ungated-stage"])
def test_the_gate_step_reruns_only_what_it_flagged(tmp_path, night, rerun, status, verdict):
    """The gate step's own shell, with tox and pytest replaced by stand-ins that write given runs."""
    import json
    import os
    import shutil

    shutil.which("bash") or pytest.skip("needs bash")
    base = tmp_path / "baselines" / "NVIDIA_H200" / "m"
    base.mkdir(parents=True)
    (base / "0001_h200.json").write_text(json.dumps(stage_run(STAGES_MS)))
    (tmp_path / "out").mkdir()
    (tmp_path / "night.json").write_text(json.dumps(stage_run({**STAGES_MS, **night})))
    if rerun is not None:
        (tmp_path / "rerun.json").write_text(json.dumps(stage_run(rerun)))
    bin_dir, tox_bin = tmp_path / "bin", tmp_path / ".tox" / "bench" / "bin"
    bin_dir.mkdir()
    tox_bin.mkdir(parents=True)
    json_out = 'for a in "$@"; do case $a in --benchmark-json=*) out=${a#--benchmark-json=};; esac; done'
    # tox -e bench ... writes tonight's run; the env's python runs the real compare, and a pytest
    # rerun writes the rerun's JSON and records what it was asked to run.
    (bin_dir / "python3.12").write_text(f'#!/bin/bash\n{json_out}\ncp night.json "$out"\n')
    (tox_bin / "python").write_text(
        f'#!/bin/bash\nif [ "$2" = pytest ]; then {json_out}; printf "%s\\n" "$@" > out/rerun_args.txt; '
        f'cp rerun.json "$out"; exit 0; fi\nexec {sys.executable} "$@"\n')
    for script in (bin_dir / "python3.12", tox_bin / "python"):
        script.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "BASELINES": str(base),
           "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(["bash", "-eo", "pipefail", "-c", gate_step(load(NIGHTLY))["run"]], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == status, done.stdout + done.stderr
    table = (tmp_path / "out" / "gate.md").read_text()
    (row,) = [line for line in table.splitlines() if line.startswith("| test_stage[inference_graph-1333x800-total]")]
    assert verdict in row
    assert "roi_head" not in table  # not gated
    rerun_args = tmp_path / "out" / "rerun_args.txt"
    if rerun is None:
        assert not rerun_args.exists()
    else:
        args = rerun_args.read_text().splitlines()
        assert "benchmarks/test_stages.py::test_stage[inference_graph-1333x800-total]" in args
        assert not any("mask post-processing" in a for a in args)  # only what was flagged


@pytest.mark.parametrize("gpu", ["NVIDIA H100 80GB HBM3", "NVIDIA H200"])
def test_the_gate_finds_the_committed_baselines_of_each_gpu(monkeypatch, gpu, capsys):
    from pytest_benchmark import utils

    from mmdet_opt import machine

    monkeypatch.setattr(machine, "device_name", lambda device: gpu)
    monkeypatch.setattr(utils, "get_machine_id", lambda: "Linux-CPython-3.12-64bit")  # the nightly's Python
    assert machine.main(["--device", "cuda"]) == 0
    folder = ROOT / capsys.readouterr().out.strip()
    assert folder.is_dir() and any(folder.glob("[0-9][0-9][0-9][0-9]_*.json")), folder
