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


def step(job: dict, text: str) -> dict:
    """The one step whose run command or action holds ``text``."""
    (found,) = [s for s in job["steps"] if text in s.get("run", "") or text in s.get("uses", "")]
    return found


def test_nightly_calls_the_nightly_script_and_remembers_the_night():
    nightly = load(NIGHTLY)
    assert {"schedule", "workflow_dispatch"} <= set(nightly[True])
    assert {"quick", "inject_delay_ms", "mutation"} <= set(nightly[True]["workflow_dispatch"]["inputs"])
    assert nightly["permissions"] == {"contents": "write"}  # the nights go to gh-pages
    (job,) = nightly["jobs"].values()
    assert {"self-hosted", "gpu"} <= set(job["runs-on"])
    # Every step of the night is the script's (tests/test_nightly.py runs it), in the tox env that runs it.
    night = step(job, "tox -e nightly")
    assert 'python3.12 -m tox -e nightly -- "${args[@]}"' in night["run"]
    assert "args=(--out out --nights nights $QUICK)" in night["run"]
    assert night["env"]["MUTATION"] == "${{ inputs.mutation }}"  # inputs reach the shell as data, not code
    assert "mmdet_opt.suite.nightly" in (ROOT / "tox.ini").read_text()
    # Earlier nights come from gh-pages (created on the first night) into nights/.
    earlier = step(job, "git archive FETCH_HEAD nights")
    assert "git archive FETCH_HEAD nights | tar -x" in earlier["run"]
    assert 'git push origin "$commit:refs/heads/gh-pages"' in earlier["run"]
    # A real night is remembered twice on gh-pages: github-action-benchmark's charts, and the run file.
    action = step(job, "benchmark-action/github-action-benchmark@v1")
    assert action["if"] == "always() && hashFiles('out/night-stored.txt') != ''"
    assert {k: action["with"][k] for k in ("tool", "output-file-path", "auto-push", "gh-pages-branch",
                                           "fail-on-alert")} == {
        "tool": "pytest", "output-file-path": "out/run.json", "auto-push": True, "gh-pages-branch": "gh-pages",
        "fail-on-alert": False}  # the project's own gate fails the job
    assert action["with"]["github-token"] == "${{ secrets.GITHUB_TOKEN }}"
    assert action["with"]["benchmark-data-dir-path"] == "nightly/${{ env.DEVICE }}"
    store = step(job, "cp -r nights/. gh-pages-tree/nights/")
    assert store["if"] == action["if"] and "git push origin HEAD:gh-pages" in store["run"]
    # The artifacts are wanted most when a step fails.
    upload = step(job, "actions/upload-artifact")
    assert upload["if"] == "always()" and upload["with"]["path"] == "out/"
    order = [s.get("name") for s in job["steps"]]
    assert order.index(night["name"]) < order.index(action["name"]) < order.index(store["name"])


def test_the_nightly_device_folder_is_the_one_the_script_stores_under(tmp_path):
    """The workflow names the gh-pages chart folder from out/baselines_folder.txt, as the script names nights."""
    from mmdet_opt.suite.nightly import Night

    (job,) = load(NIGHTLY)["jobs"].values()
    device_step = step(job, "out/baselines_folder.txt")
    folder = "baselines/NVIDIA_H200/Linux-CPython-3.12-64bit"
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "baselines_folder.txt").write_text(folder + "\n")
    env = tmp_path / "env"
    done = subprocess.run(["bash", "-c", device_step["run"]], cwd=tmp_path, env={"GITHUB_ENV": str(env)},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert env.read_text() == f"DEVICE={Night(python='', out=tmp_path, nights=None, baselines=folder).device()}\n"


@pytest.mark.parametrize("gpu, folder", [("NVIDIA H100 80GB HBM3", "NVIDIA_H100_80GB_HBM3"),
                                         ("NVIDIA H200", "NVIDIA_H200")])
def test_each_gpu_has_its_own_baselines_folder(monkeypatch, gpu, folder, capsys):
    from pytest_benchmark import utils

    from mmdet_opt import machine

    monkeypatch.setattr(machine, "device_name", lambda device: gpu)
    monkeypatch.setattr(utils, "get_machine_id", lambda: "Linux-CPython-3.12-64bit")  # the nightly's Python
    assert machine.main(["--device", "cuda"]) == 0
    assert capsys.readouterr().out.strip() == f"baselines/{folder}/Linux-CPython-3.12-64bit"
