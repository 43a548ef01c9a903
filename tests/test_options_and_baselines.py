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
    a bare --benchmark-compare         the latest stored run, whatever it holds          -> the latest baseline
                                                                          (mmdet_opt.suite.baseline), or none

Every run committed under baselines/ must be a baseline: a complete run of the default suite from a
clean checkout (checked below, file by file).
"""
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pytest_benchmark.utils import get_machine_id

from mmdet_opt.suite import baseline
from mmdet_opt.suite.report import cli as report_cli
from mmdet_opt.suite.report import main as report_main
from mmdet_opt.suite.runs import STORED_RUN
from synthetic_runs import complete_run, only

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]
OTHER_GPU = "NVIDIA H100 80GB HBM3"
TIMED_STUB = "def test_timed(benchmark):\n    benchmark(sum, range(10))\n"


def copy_the_suite_into(folder: Path) -> None:
    """The repository's conftest.py (which loads the suite's plugin) and pytest.ini."""
    for name in ("conftest.py", "pytest.ini"):
        shutil.copy(REPO / name, folder / name)


@pytest.fixture
def project(pytester):
    copy_the_suite_into(pytester.path)
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    return pytester


def collect(project, *args):
    """One pytest subprocess: a few seconds each, for torch and mmdet imports in the conftest."""
    return project.runpytest_subprocess("--collect-only", "-q", "-p", "no:cacheprovider", "--device=cpu",
                                        "test_nothing.py", *args, timeout=600)


def output_of(result) -> str:
    return "\n".join(result.outlines + result.errlines)


def assert_ok(result) -> str:
    """The run's output, once it has passed."""
    assert result.ret == pytest.ExitCode.OK, output_of(result)
    return output_of(result)


def assert_usage_error(result, *words):
    output = output_of(result)
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
    ("--mutation=nosuch", ["--mutation", "unknown nosuch", "known: identity, transpose_masks"]),
], ids=["variants", "sizes", "parity-image", "bench-image", "checkpoint", "checkpoint-url", "mutation"])
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
    assert_ok(result)


@pytest.mark.slow  # pytest in a subprocess
def test_output_folders_are_made_before_anything_runs(project):
    """pytest-benchmark writes --benchmark-json at the very end, into a folder that must exist."""
    result = collect(project, "--benchmark-json=out/runs/run.json", "--benchmark-histogram=out/charts/stages")
    assert_ok(result)
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
    copy_the_suite_into(where)
    (where / "test_timed.py").write_text(TIMED_STUB)
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
    assert_ok(result)


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


def baseline_like(stored_run: dict, **changes) -> dict:
    """A complete CPU run of the default suite, with the stored run's machine and its timed stub."""
    run = complete_run(on_gpu=False, **changes)
    return {**run, "machine_info": stored_run["machine_info"],
            "benchmarks": run["benchmarks"] + stored_run["benchmarks"]}


def bare_compare(project):
    """The timed stub run with a bare --benchmark-compare, not -q: the header says what it compares with."""
    project.makepyfile(test_timed=TIMED_STUB)
    return project.runpytest_subprocess("-p", "no:cacheprovider", "--device=cpu", "test_timed.py",
                                        "--benchmark-compare", timeout=600)


@pytest.mark.slow  # pytest in a subprocess
def test_bare_compare_takes_the_latest_baseline_and_names_the_runs_passed_over(project, stored_run):
    """A parity-only run, a partial one, a dirty one and one of other weights, stored after the baseline:
    compared with any of them, most benchmarks would have nothing, or the wrong thing, to compare with."""
    store(project, "cpu", "0001_cpu.json", baseline_like(stored_run))
    store(project, "cpu", "0002_parity.json", {**stored_run, "benchmarks": [], "parity": [{"variant": "inference"}]})
    store(project, "cpu", "0003_partial.json", stored_run)
    store(project, "cpu", "0004_dirty.json", baseline_like(stored_run, dirty=True))
    store(project, "cpu", "0005_trained.json", baseline_like(stored_run, weights="checkpoint trained"))
    output = assert_ok(bare_compare(project))
    assert ("mmdet-opt: --benchmark-compare: 0001_cpu.json, the latest baseline; passed over the later "
            "0005_trained.json, 0004_dirty.json, 0003_partial.json, 0002_parity.json (not complete and clean, "
            "or other weights)") in output
    assert "Comparing against benchmarks from: " in output and "0001_cpu.json" in output
    assert "test_timed (0001_cpu)" in output  # the stored timing's row in pytest-benchmark's table
    assert "machine_info is different" not in output  # the GPU state, which always differs, is kept apart


@pytest.mark.slow  # pytest in a subprocess
def test_bare_compare_without_a_baseline_compares_nothing_and_says_so(project, stored_run):
    store(project, "cpu", "0001_cpu.json", stored_run)  # the stub alone: a partial run
    result = bare_compare(project)
    output = assert_ok(result)
    (line,) = [line for line in result.outlines if line.startswith("mmdet-opt: --benchmark-compare")]
    assert line == ("mmdet-opt: --benchmark-compare: no baseline in baselines/cpu (passed over 0001_cpu.json: "
                    "not complete and clean, or other weights); nothing is compared")
    assert "(0001_cpu)" not in output and "Comparing against" not in output


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
    assert "Can't compare" in output_of(result)


# --- what a baseline is ------------------------------------------------------------------------------

COMMITTED = sorted((REPO / "baselines").glob("*/*/*.json"))


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: str(p.relative_to(REPO)))
def test_every_committed_baseline_is_a_complete_clean_run(path):
    """Skipped ('got empty parameter set') only while baselines/ holds no run yet."""
    assert baseline.problems(json.loads(path.read_text())) == []


def test_runs_lie_only_where_pytest_benchmark_stores_them():
    """baselines/<device>/<machine id>/NNNN_NAME.json: a file elsewhere is never compared with."""
    assert sorted((REPO / "baselines").rglob("*.json")) == COMMITTED
    assert all(STORED_RUN.fullmatch(p.name) for p in COMMITTED)


@pytest.mark.parametrize("on_gpu", [True, False], ids=["gpu", "cpu"])
def test_a_complete_run_of_a_clean_tree_is_a_baseline(on_gpu):
    run = complete_run(on_gpu=on_gpu)
    assert baseline.problems(run) == [] and baseline.is_baseline(run)


def drop(run: dict, name: str) -> dict:
    return {**run, "benchmarks": [b for b in run["benchmarks"] if b["name"] != name]}


@pytest.mark.parametrize("change, problem", [
    (lambda r: {**r, "commit_info": {**r["commit_info"], "dirty": True}}, "from a dirty working tree"),
    (lambda r: {**r, "commit_info": {}}, "no commit recorded"),
    (lambda r: drop(r, "test_stage[inference-1333x800-backbone]"),
     "1 of {stages} stage benchmarks missing (e.g. inference 1333x800 backbone)"),
    (lambda r: drop(r, "test_stage[inference_fp16-4032x3024@3840x2304-total]"),
     "1 of {stages} stage benchmarks missing (e.g. inference_fp16 4032x3024@3840x2304 total)"),
    (lambda r: drop(r, "test_throughput[3840x2304-inference-16]"),
     "1 of {throughput} throughput benchmarks missing (e.g. inference 3840x2304 16)"),
    (lambda r: {**r, "parity": r["parity"][1:]},
     "1 of {parity} parity cases missing (e.g. inference 1333x800 astronaut)"),
    (lambda r: {**r, "weights": "checkpoint trained, sha256 50840a02"},
     "{parity} of {parity} parity cases missing (e.g. inference 1333x800 scene0)"),  # the trained model's scenes
    (lambda r: {**r, "benchmarks": [_with(b, stream_summary={**b["extra_info"]["stream_summary"], "images": 20})
                                    if b["name"] == "test_stream[inference]" else b for b in r["benchmarks"]]},
     "1 of {stream} stream benchmarks missing (e.g. inference)"),  # a shorter stream
    (lambda r: drop(r, "test_accuracy[inference_graph]"),
     "1 of {accuracy} accuracy benchmarks missing (e.g. inference_graph)"),
    (lambda r: {**r, "benchmarks": [_with(b, accuracy={**b["extra_info"]["accuracy"], "scenes": 4})
                                    if b["name"] == "test_accuracy[inference]" else b for b in r["benchmarks"]]},
     "1 of {accuracy} accuracy benchmarks missing (e.g. inference)"),  # fewer scenes
    (lambda r: {**r, "benchmarks": [_with(b, injected_delay_ms=1.0) for b in r["benchmarks"]]},
     "timed with --inject-delay-ms 1"),
    (lambda r: {**r, "mutation": "shift_8px"}, "parity broken on purpose (--mutation shift_8px)"),
    (lambda r: {**r, "benchmarks": [{**b, "stats": {k: v for k, v in b["stats"].items() if k != "data"}}
                                    for b in r["benchmarks"]]},
     "{timed} benchmarks stored without their rounds (save with --benchmark-save-data)"),
], ids=["dirty", "no-commit", "a-stage", "a-natural-total", "a-batch", "a-parity-case", "trained-scenes",
        "short-stream", "an-accuracy", "fewer-scenes", "injected-delay", "mutation", "no-rounds"])
def test_what_keeps_a_run_from_being_a_baseline(change, problem):
    counts = {kind: len(keys) for kind, keys in vars(baseline.expected(on_gpu=True)).items()}
    counts["timed"] = counts["stages"] + counts["throughput"] + counts["stream"] + counts["accuracy"]
    assert baseline.problems(change(complete_run())) == [problem.format(**counts)]


def _with(bench: dict, **extra) -> dict:
    return {**bench, "extra_info": {**bench["extra_info"], **extra}}


def test_a_batch_the_gpu_could_not_hold_counts_as_run():
    """The suite's own record of a stock batch too large for the GPU (an 80 GB H100 at 3840x2304)."""
    run = drop(complete_run(), "test_throughput[3840x2304-inference-16]")
    record = {"variant": "inference", "size": "3840x2304", "batch": 16, "reason": "out of GPU memory"}
    assert baseline.problems({**run, "not_run": [record]}) == []


def test_the_baseline_command_says_which_runs_are_baselines(tmp_path, capsys):
    good, partial = tmp_path / "0001_good.json", tmp_path / "0002_partial.json"
    good.write_text(json.dumps(complete_run()))
    partial.write_text(json.dumps(only(complete_run(), lambda b: "inference_graph-" in b["name"])))
    assert baseline.main([str(good)]) == 0
    assert baseline.main([str(tmp_path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == lines[1] == f"{good}: a baseline"
    others = [key for key in baseline.expected(on_gpu=True).stages if key[0] != "inference_graph"]
    assert lines[2].startswith(f"{partial}: not a baseline: {len(others)} of {len(baseline.expected(True).stages)} "
                               "stage benchmarks missing")
    assert baseline.main([str(tmp_path / "missing.json")]) == 2


def test_latest_names_the_newest_baseline_passing_over_damaged_and_partial_runs(tmp_path, capsys):
    (tmp_path / "0001_empty.json").write_text("")
    (tmp_path / "0002_good.json").write_text(json.dumps(complete_run()))
    (tmp_path / "0003_partial.json").write_text(json.dumps(only(complete_run(), lambda b: "stream" in b["name"])))
    (tmp_path / "0004_damaged.json").write_text("{")
    assert baseline.main(["--latest", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{tmp_path / '0002_good.json'}\n"
    assert err == (f"{tmp_path}: passed over the later 0004_damaged.json, 0003_partial.json "
                   "(not baselines, or not readable)\n")
    (tmp_path / "0002_good.json").unlink()
    assert baseline.main(["--latest", str(tmp_path), str(tmp_path / "missing")]) == 1
    assert capsys.readouterr().out == f"no baseline in {tmp_path}\nno baseline in {tmp_path / 'missing'}\n"


# --- the default suite's plan --------------------------------------------------------------------------

def collected(*args) -> list:
    """The benchmark suite's test ids on a CPU, as pytest collects them with ``args``."""
    done = subprocess.run([sys.executable, "-m", "pytest", "benchmarks", "--collect-only", "-q", "-p",
                           "no:cacheprovider", "--device=cpu", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return [line.split("::")[1] for line in done.stdout.splitlines() if "::" in line]


@pytest.mark.slow  # pytest in a subprocess
@pytest.mark.parametrize("option, says", [
    ("--stream-images=0", "--stream-images: '0': expected an integer >= 1"),
    ("--accuracy-scenes=many", "--accuracy-scenes: 'many': expected an integer >= 1"),
    ("--inject-delay-ms=-1", "--inject-delay-ms: '-1': expected a number >= 0.0"),
    ("--round-budget=nan", "--round-budget: 'nan': expected a number >= 0.0"),
])
def test_a_benchmark_files_option_out_of_range_is_one_usage_line(option, says):
    """The options benchmarks/conftest.py adds: a value the run would not honour is refused, not read as
    the default."""
    done = subprocess.run([sys.executable, "-m", "pytest", "benchmarks", "--collect-only", "-q", "-p",
                           "no:cacheprovider", "--device=cpu", option], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout[-2000:] + done.stderr[-2000:]
    assert says in done.stderr and "Traceback" not in done.stderr, done.stderr


@pytest.mark.slow  # pytest in a subprocess
def test_the_default_plan_times_every_stage_only_where_the_study_reads_them():
    ids = collected()
    stages = [i for i in ids if i.startswith("test_stage[")]
    assert "test_stage[inference-640x384-backbone]" in stages and "test_stage[inference-640x384-total+rle]" in stages
    assert "test_stage[inference_preprocess_fp32-640x384-backbone]" not in stages  # not one of the study's rows
    assert "test_stage[inference_preprocess_fp32-640x384-total]" in stages
    natural = [i for i in stages if "1024x768@640x384" in i]
    assert natural and all(i.endswith("-total]") for i in natural)
    expected = baseline.expected(on_gpu=False)
    assert len(stages) == len(expected.stages)
    assert len([i for i in ids if i.startswith("test_parity[")]) == len(expected.parity)
    assert len([i for i in ids if i.startswith("test_stream[")]) == len(expected.stream)
    assert len(collected("--every-stage")) > len(ids)


@pytest.mark.slow  # pytest in a subprocess
def test_quick_collects_the_headline_table_and_parity_on_one_image():
    ids = collected("--quick")
    stages = [i for i in ids if i.startswith("test_stage[")]
    assert stages and all(i.endswith("-640x384-total]") for i in stages)
    assert len(stages) == len({variant for variant, _, _ in baseline.expected(on_gpu=False).stages})
    parity = [i for i in ids if i.startswith("test_parity[")]
    assert parity and all(i.endswith("-640x384-astronaut]") for i in parity)
    assert not [i for i in ids if i.startswith(("test_throughput", "test_stream", "test_serving", "test_accuracy"))]


@pytest.mark.slow  # the model, stock and one variant on a CPU
def test_a_mutation_fails_parity_and_marks_the_run(tmp_path):
    out = tmp_path / "parity.json"
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--device=cpu",
                           "benchmarks/test_parity.py", "--variants=inference_raw_mask", "--sizes=320x192",
                           "--parity-images=astronaut", "--mutation=shift_8px", f"--benchmark-json={out}"],
                          cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert "1 failed" in done.stdout
    run = json.loads(out.read_text())
    assert run["mutation"] == "shift_8px"
    assert "parity broken on purpose (--mutation shift_8px)" in baseline.problems(run)


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
