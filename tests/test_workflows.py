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
    (gate,) = [s for s in job["steps"] if "mmdet_opt.suite.compare" in s.get("run", "")]
    assert "--benchmark-json=out/gate.json" in gate["run"]
    assert 'mmdet_opt.suite.compare --latest-in "$BASELINES" out/gate.json' in gate["run"]
    gated = "test_stage and (total or backbone) and not masks and not rle and not (3840x2304 and total)"
    assert f'-k "{gated}"' in gate["run"]
    assert "--variants inference_graph --sizes 1333x800,3840x2304" in gate["run"]
    assert gate["shell"] == "bash"  # pipefail, so `| tee` keeps the gate's exit status
    baselines = ROOT / job["env"]["BASELINES"]
    assert baselines.is_dir() and any(baselines.glob("[0-9][0-9][0-9][0-9]_*.json"))
    assert 'mmdet_opt.suite.report --history "$BASELINES" out/run.json' in commands
    assert "--chart out/history.svg > out/history.md" in commands
    # Strict parity on the project's trained model, whenever its checkpoint is in the repository.
    (trained,) = [s for s in job["steps"] if "--checkpoint trained" in s.get("run", "")]
    assert "benchmarks/test_parity.py" in trained["run"]
    assert "src/mmdet_opt/training/trained/trained_heads.pth" in trained["if"]
    # The artifacts are wanted most when the gate fails.
    (upload,) = [s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact")]
    assert upload["if"] == "always()"
    assert upload["with"]["path"] == "out/"
