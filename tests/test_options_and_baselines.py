"""Bad options and bad baseline files: one clear line (a pytest usage error), never a traceback.

Each case runs pytest in a subprocess on a scratch project holding the repository's conftest.py
and pytest.ini, with --collect-only and --device=cpu, so no model is built.

What pytest-benchmark 5.3 does by itself with --benchmark-compare, and what the conftest makes of it:

    a path that does not exist       INTERNALERROR traceback (ValueError from its query)  -> usage error
    a run number that matches nothing  a warning, then no comparison at all              -> usage error
    an empty or truncated JSON file    a warning "Failed to load", then no comparison    -> usage error
    a run recorded on another device   a warning that machine_info differs, then compares -> usage error
    a run number stored only under another device's folder: no match, as above           -> usage error
                                                                          naming the other device's run
"""
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pytest_benchmark.utils import get_machine_id

from mmdet_opt.suite.report import cli as report_cli
from mmdet_opt.suite.report import main as report_main

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]
OTHER_GPU = "NVIDIA H100 80GB HBM3"


@pytest.fixture
def project(pytester):
    for name in ("conftest.py", "pytest.ini"):
        shutil.copy(REPO / name, pytester.path / name)
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    return pytester


def collect(project, *args):
    """One pytest subprocess: a few seconds each, for torch and mmdet imports in the conftest."""
    return project.runpytest_subprocess("--collect-only", "-q", "-p", "no:cacheprovider", "--device=cpu",
                                        "test_nothing.py", *args, timeout=600)


def assert_usage_error(result, *words):
    output = "\n".join(result.outlines + result.errlines)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, output
    assert "Traceback" not in output and "INTERNALERROR" not in output, output
    errors = [line for line in result.errlines if line.startswith("ERROR:")]
    assert len(errors) == 1, output
    for word in words:
        assert word in errors[0], errors[0]


# --- options -------------------------------------------------------------------------------------

@pytest.mark.slow  # pytest in a subprocess
@pytest.mark.parametrize("option, words", [
    ("--variants=inference,bogus", ["--variants", "unknown bogus", "known:"]),
    ("--sizes=1333x800,12x", ["--sizes", "'12x'"]),
    ("--parity-images=astronaut,nosuch", ["unknown image nosuch"]),
    ("--bench-image=nosuch", ["unknown image nosuch"]),
    ("--checkpoint=missing.pth", ["--checkpoint", "no such file", "missing.pth"]),
    ("--checkpoint=https://127.0.0.1/model.pth#md5=00", ["--checkpoint", "#sha256=<64 hex digits>"]),
], ids=["variants", "sizes", "parity-image", "bench-image", "checkpoint", "checkpoint-url"])
def test_bad_option_is_one_usage_line(project, option, words):
    assert_usage_error(collect(project, option), *words)


@pytest.mark.slow  # pytest in a subprocess
@pytest.mark.parametrize("name, content, words", [
    ("cut.jpg", b"\xff\xd8\xff\xe0 no more", ["image file:", "cut.jpg", "cannot decode"]),
    ("photos", None, ["image file:", "photos: is a directory"]),
], ids=["corrupt", "directory"])
def test_an_unusable_image_file_is_one_usage_line(project, name, content, words):
    path = project.path / name
    path.mkdir() if content is None else path.write_bytes(content)
    assert_usage_error(collect(project, f"--parity-images=astronaut,{path}"), *words)


@pytest.mark.slow  # pytest in a subprocess: the model, stock and one variant on a CPU
def test_parity_on_a_users_own_image_file(tmp_path):
    """A grayscale photo file of its own size: read as mmdet reads files, resized to the case."""
    import cv2
    from skimage import data

    photo = tmp_path / "camera.png"
    cv2.imwrite(str(photo), data.camera()[:400, :300])  # 300x400 portrait, one channel
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "--device=cpu",
                           "benchmarks/test_parity.py", "--variants=inference_raw_mask", "--sizes=300x400@320x192",
                           f"--parity-images={photo}"], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"parity inference_raw_mask_fp32 300x400@320x192 {photo}: matched" in done.stdout
    assert "1 passed" in done.stdout


@pytest.mark.slow  # pytest in a subprocess
def test_a_checkpoint_url_is_not_downloaded_to_collect(project):
    """Its form is checked at once; the download waits for the model build (nothing listens on port 9)."""
    result = collect(project, "--checkpoint=http://127.0.0.1:9/mask_rcnn_r50_fpn_2x_coco-3e542a40.pth")
    assert result.ret == pytest.ExitCode.OK, "\n".join(result.outlines + result.errlines)


@pytest.mark.slow  # pytest in a subprocess
def test_output_folders_are_made_before_anything_runs(project):
    """pytest-benchmark writes --benchmark-json at the very end, into a folder that must exist."""
    result = collect(project, "--benchmark-json=out/runs/run.json", "--benchmark-histogram=out/charts/stages")
    assert result.ret == pytest.ExitCode.OK, "\n".join(result.outlines + result.errlines)
    assert (project.path / "out" / "runs").is_dir() and (project.path / "out" / "charts").is_dir()


@pytest.mark.slow  # pytest in a subprocess
@pytest.mark.parametrize("option, words", [
    ("--benchmark-json=test_nothing.py/run.json", ["--benchmark-json", "cannot make the folder test_nothing.py"]),
    ("--benchmark-json=.", ["--benchmark-json", "is a folder"]),
    ("--benchmark-histogram=test_nothing.py/h", ["--benchmark-histogram", "cannot make the folder"]),
], ids=["json-under-a-file", "json-a-folder", "histogram-under-a-file"])
def test_an_output_path_that_cannot_be_written_is_one_usage_line(project, option, words):
    assert_usage_error(collect(project, option), *words)


# --- baselines for --benchmark-compare ----------------------------------------------------------------

@pytest.fixture(scope="module")
def stored_run(tmp_path_factory) -> dict:
    """A real pytest-benchmark run of this suite's conftest, recorded on the CPU."""
    where = tmp_path_factory.mktemp("record")
    for name in ("conftest.py", "pytest.ini"):
        shutil.copy(REPO / name, where / name)
    (where / "test_timed.py").write_text("def test_timed(benchmark):\n    benchmark(sum, range(10))\n")
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--device=cpu",
                    "--benchmark-json=run.json", "test_timed.py"], cwd=where, check=True,
                   capture_output=True, timeout=600)
    run = json.loads((where / "run.json").read_text())
    assert run["machine_info"]["device"] == "cpu" and run["benchmarks"]
    assert run["weights"] == "synthetic, seed 0"  # which weights the run measured
    return run


def store(project, device_folder: str, name: str, content) -> Path:
    folder = project.path / "baselines" / device_folder / get_machine_id()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def on_other_gpu(run: dict) -> dict:
    return {**run, "machine_info": {**run["machine_info"], "device": OTHER_GPU}}


@pytest.mark.slow  # pytest in a subprocess
def test_a_good_baseline_compares(project, stored_run):
    store(project, "cpu", "0001_cpu.json", stored_run)
    result = collect(project, "--benchmark-compare=0001")
    assert result.ret == pytest.ExitCode.OK, "\n".join(result.outlines + result.errlines)


@pytest.mark.slow  # pytest in a subprocess
def test_missing_baseline_path(project):
    assert_usage_error(collect(project, f"--benchmark-compare={project.path / 'nope' / 'run.json'}"),
                       "no such file", "run.json")


@pytest.mark.slow  # pytest in a subprocess
def test_run_number_that_matches_nothing(project, stored_run):
    store(project, "cpu", "0001_cpu.json", stored_run)
    assert_usage_error(collect(project, "--benchmark-compare=0009"), "no stored run matches '0009'")


@pytest.mark.slow  # pytest in a subprocess
@pytest.mark.parametrize("content, words", [
    ("", ["0002_bad.json", "is empty"]),
    ('{"machine_info": {"device": "cpu"}, "benchmarks": [{"na', ["0002_bad.json", "not valid JSON"]),
    ('{"benchmarks": [{"name": "x"}]}', ["0002_bad.json", "stats.median"]),
], ids=["empty", "truncated", "no-stats"])
def test_broken_baseline_file(project, stored_run, content, words):
    store(project, "cpu", "0001_cpu.json", stored_run)
    store(project, "cpu", "0002_bad.json", content)
    assert_usage_error(collect(project, "--benchmark-compare=0002"), *words)


@pytest.mark.slow  # pytest in a subprocess
def test_bare_compare_with_a_broken_latest_run(project, stored_run):
    """pytest-benchmark would quietly skip the broken latest run and compare against 0001 instead."""
    store(project, "cpu", "0001_cpu.json", stored_run)
    store(project, "cpu", "0002_cut.json", json.dumps(stored_run)[:200])
    assert_usage_error(collect(project, "--benchmark-compare"), "0002_cut.json", "not valid JSON")


@pytest.mark.slow  # pytest in a subprocess
def test_bare_compare_passes_over_later_parity_only_and_other_weights_runs(project, stored_run):
    """A stored parity run has figures and no timings, and a run of other weights other detections:
    compared with either, a run would show nothing, or the wrong thing."""
    store(project, "cpu", "0001_cpu.json", stored_run)
    store(project, "cpu", "0002_parity.json", {**stored_run, "benchmarks": [], "parity": [{"variant": "inference"}]})
    store(project, "cpu", "0003_trained.json", {**stored_run, "weights": "checkpoint trained"})
    project.makepyfile(test_timed="def test_timed(benchmark):\n    benchmark(sum, range(10))\n")
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "--device=cpu", "test_timed.py",
                                          "--benchmark-compare", timeout=600)  # not -q: the header says it
    output = "\n".join(result.outlines + result.errlines)
    assert result.ret == pytest.ExitCode.OK, output
    assert ("--benchmark-compare: 0001_cpu.json; passed over the later 0003_trained.json, 0002_parity.json "
            "(no timings, or other weights)") in output
    assert "Comparing against benchmarks from: " in output and "0001_cpu.json" in output
    assert "test_timed (0001_cpu)" in output  # the stored timing's row in pytest-benchmark's table
    assert "machine_info is different" not in output  # the GPU state, which always differs, is kept apart


@pytest.mark.slow  # pytest in a subprocess
def test_run_stored_only_for_another_gpu(project, stored_run):
    other = store(project, "NVIDIA_H100_80GB_HBM3", "0005_h100.json", on_other_gpu(stored_run))
    assert_usage_error(collect(project, "--benchmark-compare=0005"),
                       "no stored run matches '0005'", "other devices", other.name)


@pytest.mark.slow  # pytest in a subprocess
def test_file_recorded_on_another_gpu(project, stored_run):
    other = store(project, "NVIDIA_H100_80GB_HBM3", "0005_h100.json", on_other_gpu(stored_run))
    assert_usage_error(collect(project, f"--benchmark-compare={other}"), f"recorded on {OTHER_GPU}",
                       "this run is on cpu")


@pytest.mark.slow  # pytest in a subprocess
def test_run_of_other_weights(project, stored_run):
    store(project, "cpu", "0001_cpu.json", stored_run)
    assert_usage_error(collect(project, "--benchmark-compare=0001", "--seed=3"),
                       "measured synthetic, seed 0, this run synthetic, seed 3")


@pytest.mark.slow  # pytest in a subprocess
def test_a_checkpoint_is_known_by_its_content(project, stored_run):
    """One name (``trained``, a path) holds other weights once a new checkpoint is committed or copied
    over it: a run records the file's sha256 prefix, so a run of the earlier file is other weights."""
    checkpoint = project.path / "model.pth"
    checkpoint.write_bytes(b"first weights")
    earlier = f"checkpoint {checkpoint}, sha256 {hashlib.sha256(b'first weights').hexdigest()[:8]}"
    store(project, "cpu", "0001_cpu.json", {**stored_run, "weights": earlier})
    checkpoint.write_bytes(b"second weights")
    now = f"checkpoint {checkpoint}, sha256 {hashlib.sha256(b'second weights').hexdigest()[:8]}"
    assert_usage_error(collect(project, "--benchmark-compare=0001", f"--checkpoint={checkpoint}"),
                       f"measured {earlier}, this run {now}")


@pytest.mark.slow  # pytest in a subprocess
def test_first_run_without_baselines_keeps_the_warning(project):
    result = collect(project, "--benchmark-compare")
    assert result.ret == pytest.ExitCode.OK
    assert "Can't compare" in "\n".join(result.outlines + result.errlines)


# --- python -m mmdet_opt.suite.report ----------------------------------------------------------------

@pytest.mark.parametrize("content, words", [
    (None, "no such file"),
    ("", "is empty"),
    ('{"benchmarks": [', "not valid JSON"),
    ("[1, 2]", "not a pytest-benchmark JSON"),
    ('{"benchmarks": [1]}', "stats.median"),
    ('{"benchmarks": [{"name": "x", "stats": {"median": 1.0}}]}', "no stage benchmarks"),
], ids=["missing", "empty", "truncated", "not-a-run", "bad-entry", "no-stages"])
def test_report_on_bad_json_exits_2(tmp_path, capsys, content, words):
    path = tmp_path / "run.json"
    if content is not None:
        path.write_text(content)
    assert report_main([str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and words in err[0], err


def test_report_on_a_directory_exits_2(tmp_path, capsys):
    assert report_main([str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err


def test_report_command_exit_status(tmp_path):
    missing = tmp_path / "missing.json"
    done = subprocess.run([sys.executable, "-m", "mmdet_opt.suite.report", str(missing)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == f"error: {missing}: no such file"
    assert "Traceback" not in done.stderr


def one_stage_run(tmp_path) -> Path:
    run = tmp_path / "run.json"
    stage = {"extra_info": {"variant": "inference", "size": "320x192", "stage": "total"},
             "stats": {"median": 0.01}}
    run.write_text(json.dumps({"benchmarks": [stage]}))
    return run


def test_report_chart_that_cannot_be_written_exits_2_before_the_tables(tmp_path, capsys):
    run = one_stage_run(tmp_path)
    assert report_main([str(run), "--chart", str(run / "chart.svg")]) == 2  # its folder would be a file
    out, err = capsys.readouterr()
    assert err.startswith("error: cannot write") and len(err.splitlines()) == 1
    assert out == ""


def test_history_chart_that_cannot_be_written_exits_2_before_the_table(tmp_path, capsys):
    run = one_stage_run(tmp_path)
    assert report_cli(["--history", str(run), "--chart", str(run / "history.svg")]) == 2
    out, err = capsys.readouterr()
    assert err.startswith(f"error: {run}: ") and len(err.splitlines()) == 1
    assert out == ""


def test_report_chart_into_a_new_folder(tmp_path, capsys):
    chart = tmp_path / "out" / "charts" / "stages.svg"
    assert report_main([str(one_stage_run(tmp_path)), "--chart", str(chart)]) == 0
    assert chart.read_text().lstrip().startswith("<?xml")
    assert "inference" in capsys.readouterr().out
