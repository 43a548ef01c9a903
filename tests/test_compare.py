"""The regression gate (suite/compare.py), the GPU state stored with each run (machine.py), the throttle
warning of the report, and the history chart (suite/history.py).

The gate's verdicts are checked on synthetic runs; the history on the committed H100 baselines; the
GPU state with a stand-in nvidia-smi on PATH, since this machine has none.
"""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mmdet_opt.machine import gpu_state, gpu_state_line, query_gpu_state, throttle_reasons, throttle_warning
from mmdet_opt.suite import compare as gate
from mmdet_opt.suite.compare import (
    BELOW_FLOOR,
    FASTER,
    NOT_CONFIRMED,
    REGRESSED,
    UNCHANGED,
    Rule,
    compare_runs,
    judge,
    mann_whitney_greater,
    smallest_p,
)
from mmdet_opt.suite.history import PARITY_READERS
from mmdet_opt.suite.report import cli as report_cli
from mmdet_opt.suite.report import main as report_main
from mmdet_opt.suite.report import markdown
from synthetic_runs import complete_run, only

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]
OLD_RUNS = REPO / "docs" / "runs" / "baselines-old"  # runs once stored as baselines: slices of the suite
BASELINES = OLD_RUNS / "NVIDIA_H100_80GB_HBM3" / "Linux-CPython-3.12-64bit"
H200_RUNS = OLD_RUNS / "NVIDIA_H200" / "Linux-CPython-3.12-64bit"
H100 = "NVIDIA H100 80GB HBM3"


def bench(name, rounds_ms, data=True, **extra):
    """A pytest-benchmark JSON entry with these rounds (ms); without stats.data when ``data`` is False."""
    seconds = np.asarray(rounds_ms, dtype=float) / 1000
    stats = {"median": float(np.median(seconds)), "min": float(seconds.min()), "max": float(seconds.max()),
             "rounds": len(seconds)}
    if data:
        stats["data"] = seconds.tolist()
    return {"name": name, "fullname": f"benchmarks/test_stages.py::{name}", "extra_info": extra, "stats": stats}


def run(*benchmarks, device=H100, **machine):
    return {"machine_info": {"device": device, **machine}, "commit_info": {"id": "0123456789abcdef", "dirty": False},
            "datetime": "2026-11-25T00:00:00", "benchmarks": list(benchmarks)}


def noisy(median_ms, n=20, spread_ms=0.3, seed=0):
    return median_ms + np.random.default_rng(seed).normal(0, spread_ms, n)


ALPHA_ONE = Rule().alpha / 2  # the per-test alpha when a single benchmark is compared


# --- the U test --------------------------------------------------------------------------------------

def test_u_test_matches_scipy_asymptotic_with_ties():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    for n1, n2 in ((20, 20), (5, 20), (3, 3), (12, 7)):
        x = np.round(rng.normal(6.0, 0.5, n1), 1)  # rounded: ties within and across samples
        y = np.round(rng.normal(6.3, 0.5, n2), 1)
        for a, b in ((x, y), (y, x)):
            expected = stats.mannwhitneyu(a, b, alternative="greater", method="asymptotic").pvalue
            assert mann_whitney_greater(a, b) == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_smallest_attainable_p_for_the_round_counts_of_the_suite():
    assert smallest_p(20, 20) == pytest.approx(3.4e-8, rel=0.01)
    assert smallest_p(5, 5) == pytest.approx(6.1e-3, rel=0.01)
    assert smallest_p(3, 3) == pytest.approx(0.0404, rel=0.01)
    assert mann_whitney_greater([1.0] * 5, [1.0] * 5) == 1.0


# --- verdicts ----------------------------------------------------------------------------------------

def test_identical_samples_are_unchanged():
    b = bench("t", noisy(6.0))
    c = judge(b, b, Rule(), ALPHA_ONE)
    assert c.verdict == UNCHANGED and c.change == 0 and c.p_value > 0.4 and c.note == ""


def test_two_draws_of_one_distribution_are_unchanged():
    c = judge(bench("t", noisy(6.0, seed=1)), bench("t", noisy(6.0, seed=2)), Rule(), ALPHA_ONE)
    assert c.verdict == UNCHANGED


def test_one_ms_shift_on_a_6_ms_benchmark_with_20_noisy_rounds_regresses():
    result = compare_runs(run(bench("t", noisy(6.0, seed=1))), run(bench("t", noisy(7.0, seed=2))))
    (c,) = result.comparisons
    assert c.verdict == REGRESSED and c.p_value < result.alpha_per_test == ALPHA_ONE
    assert 0.1 < c.change < 0.25 and c.note == "20/20 rounds"
    assert result.failed()


def test_per_test_alpha_is_split_over_both_directions_of_every_benchmark():
    names = [f"t{i}" for i in range(4)]  # the nightly's four
    result = compare_runs(run(*(bench(n, noisy(6.0)) for n in names)), run(*(bench(n, noisy(6.0)) for n in names)))
    assert result.tested == 4 and result.alpha_per_test == pytest.approx(0.01 / 8)


def test_large_median_change_with_overlapping_samples_of_3_is_not_confirmed():
    c = judge(bench("t", [5.0, 6.0, 9.0]), bench("t", [5.5, 7.0, 8.5]), Rule(), ALPHA_ONE)
    assert c.change > 0.15 and c.verdict == NOT_CONFIRMED and c.p_value > 0.1
    assert "3/3 rounds cannot reach" in c.note


def test_samples_of_3_cannot_confirm_even_when_every_round_is_slower():
    c = judge(bench("t", [5.0, 5.1, 5.2]), bench("t", [9.0, 9.1, 9.2]), Rule(), ALPHA_ONE)
    assert c.verdict == NOT_CONFIRMED and c.p_value == pytest.approx(smallest_p(3, 3))


def test_tiny_absolute_change_is_below_the_floor():
    c = judge(bench("t", noisy(0.10, spread_ms=0.002)), bench("t", noisy(0.15, spread_ms=0.002, seed=1)),
              Rule(), ALPHA_ONE)
    assert c.change > 0.4 and c.p_value < 1e-6  # a real move, but of 0.05 ms
    assert c.verdict == BELOW_FLOOR and "within the 0.1 ms floor" in c.note


def test_much_faster_is_flagged_and_fails_only_when_asked():
    result = compare_runs(run(bench("t", noisy(6.0))), run(bench("t", noisy(3.0, seed=1))))
    (c,) = result.comparisons
    assert c.verdict == FASTER and c.change < -0.4 and c.p_value < ALPHA_ONE
    assert not result.failed() and result.failed(fail_on_faster=True)


def test_missing_rounds_fall_back_to_the_median_and_say_so():
    base = run(bench("slower", noisy(6.0), data=False), bench("same", noisy(6.0), data=False))
    new = run(bench("slower", noisy(7.5)), bench("same", noisy(6.0)))
    result = compare_runs(base, new)
    slower, same = result.comparisons
    assert slower.verdict == REGRESSED and slower.p_value is None
    assert same.verdict == UNCHANGED and same.p_value is None
    for c in (slower, same):
        assert c.note == "median alone: no rounds in the baseline"
    assert result.tested == 0


def test_k_selects_like_pytest_and_one_sided_benchmarks_are_listed():
    def stage(variant, stage_name):
        return bench(f"test_stage[{variant}-1333x800-{stage_name}]", noisy(6.0), variant=variant, size="1333x800",
                     stage=stage_name)

    base = run(stage("inference_graph", "total"), stage("inference_graph", "backbone"),
               stage("inference_graph", "rpn_head"), stage("inference", "total"))
    new = run(stage("inference_graph", "total"), stage("inference_graph", "rpn_head"),
              bench("test_throughput[1333x800-inference_graph-1]", noisy(6.0)))
    result = compare_runs(base, new, expression="test_stage and (total or backbone) and inference_graph")
    assert [c.name for c in result.comparisons] == ["test_stage[inference_graph-1333x800-total]"]
    assert result.only_in_baseline == ["test_stage[inference_graph-1333x800-backbone]"]
    assert result.only_in_new == []
    everything = compare_runs(base, new)
    assert len(everything.comparisons) == 2 and len(everything.only_in_baseline) == 2
    assert everything.only_in_new == ["test_throughput[1333x800-inference_graph-1]"]


# --- the command ---------------------------------------------------------------------------------------

def write(path, data):
    path.write_text(json.dumps(data))
    return str(path)


def write_run(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def runs(tmp_path):
    def both(total_ms, seed):
        return run(bench("t_total", noisy(total_ms, seed=seed)), bench("t_backbone", noisy(2.0, seed=seed + 1)))

    base = write(tmp_path / "base.json", both(6.0, seed=0))
    same = write(tmp_path / "same.json", both(6.0, seed=3))
    slow = write(tmp_path / "slow.json", both(7.0, seed=3))
    return base, same, slow


def test_command_passes_an_unchanged_run(runs, capsys):
    base, same, _ = runs
    assert gate.main([base, same]) == 0
    out = capsys.readouterr().out
    assert "| benchmark | baseline ms | new ms | change | p | verdict | note |" in out
    assert "2 compared: 2 unchanged" in out


def test_command_fails_a_regression(runs, capsys):
    base, _, slow = runs
    assert gate.main([base, slow]) == 1
    out = capsys.readouterr().out
    (row,) = [line for line in out.splitlines() if line.startswith("| t_total |")]
    assert "| REGRESSED | 20/20 rounds |" in row and "p < 0.0025" in out
    assert "| t_backbone |" in out and "1 REGRESSED, 1 unchanged" in out


def test_command_exit_status_in_a_subprocess(runs):
    base, _, slow = runs
    done = subprocess.run([sys.executable, "-m", "mmdet_opt.suite.compare", base, slow, "-k", "total"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    assert "1 compared: 1 REGRESSED" in done.stdout


def test_a_move_the_rerun_does_not_repeat_is_not_reproduced(runs, capsys, tmp_path):
    base, same, slow = runs
    flagged = tmp_path / "flagged.txt"
    assert gate.main([base, slow, "--flagged-out", str(flagged)]) == 1
    assert flagged.read_text().splitlines() == ["benchmarks/test_stages.py::t_total"]
    capsys.readouterr()
    assert gate.main([base, slow, "--confirm", same, "--flagged-out", str(flagged)]) == 0
    out = capsys.readouterr().out
    (row,) = [line for line in out.splitlines() if line.startswith("| t_total |")]
    assert f"| {gate.NOT_REPRODUCED} |" in row and "rerun: unchanged" in row
    assert flagged.read_text() == ""


def test_a_move_the_rerun_repeats_still_fails(runs, capsys, tmp_path):
    base, _, slow = runs
    again = write(tmp_path / "again.json", run(bench("t_total", noisy(7.0, seed=5))))  # only the flagged one
    assert gate.main([base, slow, "--confirm", again]) == 1
    out = capsys.readouterr().out
    assert "1 REGRESSED, 1 unchanged" in out and "Rerun: " in out


def test_a_benchmark_missing_from_the_rerun_keeps_its_verdict(runs, tmp_path):
    base, _, slow = runs
    other = write(tmp_path / "other.json", run(bench("t_backbone", noisy(3.0))))
    assert gate.main([base, slow, "--confirm", other]) == 1


GATE = "test_stage and inference_graph and not roi_head and not masks and not rle"
GATED = "test_stage[inference_graph-1333x800-total]"


def gate_slice(run_: dict) -> dict:
    return only(run_, gate.selector(GATE))


def test_latest_in_picks_the_highest_numbered_baseline(tmp_path, capsys):
    stored = tmp_path / "stored"
    for number, seed in ((2, 2), (9, 9), (10, 10)):
        write_run(stored / f"{number:04d}_full.json", complete_run(seed=seed))
    (stored / "notes.json").write_text("{}")  # not a stored run: ignored
    new = write_run(tmp_path / "night.json", gate_slice(complete_run(seed=11)))
    assert gate.main(["--latest-in", str(stored), str(new), "-k", GATE]) == 0
    out = capsys.readouterr().out
    assert f"Baseline: {stored / '0010_full.json'}" in out and "Newer stored runs" not in out


def test_latest_in_passes_over_newer_runs_that_are_not_baselines(tmp_path, capsys):
    """A parity-only run, a partial run (the gate's stages alone), a complete run of a dirty tree and one
    of other weights, all stored after the baseline: each passed over, and named."""
    stored = tmp_path / "stored"
    write_run(stored / "0001_full.json", complete_run(seed=1))
    write_run(stored / "0002_parity.json", {**only(complete_run(seed=2), lambda b: False),
                                            "parity": complete_run(seed=2)["parity"]})
    write_run(stored / "0003_partial.json", gate_slice(complete_run(seed=3)))
    write_run(stored / "0004_dirty.json", complete_run(seed=4, dirty=True))
    write_run(stored / "0005_trained.json", complete_run(seed=5, weights="checkpoint trained"))
    new = write_run(tmp_path / "night.json", gate_slice(complete_run(seed=6, slower_ms={GATED: 1.0})))
    assert gate.main(["--latest-in", str(stored), str(new), "-k", GATE]) == 1
    out = capsys.readouterr().out
    (row,) = [line for line in out.splitlines() if line.startswith(f"| {GATED} |")]
    assert f"Baseline: {stored / '0001_full.json'}" in out and "| REGRESSED |" in row
    assert ("Newer stored runs passed over (not a baseline, other weights, or none of the compared benchmarks): "
            "0005_trained.json, 0004_dirty.json, 0003_partial.json, 0002_parity.json.") in out


def test_latest_in_without_a_baseline_says_what_it_looked_for(tmp_path, capsys):
    stored = tmp_path / "stored"
    write_run(stored / "0001_partial.json", gate_slice(complete_run(seed=1)))
    new = write_run(tmp_path / "night.json", gate_slice(complete_run(seed=2)))
    assert gate.main(["--latest-in", str(stored), str(new), "-k", GATE]) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert err == (f"error: --latest-in: none of the 1 stored runs in {stored} holds a baseline (a complete run of "
                   "the default suite from a clean checkout, python -m mmdet_opt.suite.baseline) with the same "
                   f"weights and a benchmark of {new} matching -k {GATE!r}")


def test_the_stored_h200_runs_are_not_taken_for_a_baseline(tmp_path, capsys):
    """The runs once under baselines/ (slices of the suite, most from a dirty tree): the gate finds no
    baseline among them rather than comparing 0011's two variants, and says so in one line."""
    new = write_run(tmp_path / "night.json", gate_slice(complete_run(seed=1)))
    assert gate.main(["--latest-in", str(H200_RUNS), str(new), "-k", GATE]) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert err.startswith(f"error: --latest-in: none of the 11 stored runs in {H200_RUNS} holds a baseline")


def test_a_baseline_named_as_a_file_is_used_and_its_gaps_said(tmp_path, capsys):
    base = write_run(tmp_path / "base.json", gate_slice(complete_run(seed=1, dirty=True)))
    new = write_run(tmp_path / "new.json", gate_slice(complete_run(seed=2)))
    assert gate.main([str(base), str(new), "-k", GATE]) == 0
    (note,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("The baseline is not")]
    assert note.startswith("The baseline is not a complete clean run (from a dirty working tree; ")
    assert note.endswith(": only what both runs hold is compared.")


def with_weights(weights):
    return {**run(bench("t_total", noisy(6.0))), "weights": weights}


@pytest.mark.parametrize("make, words", [
    (lambda p, base: [str(p / "missing.json"), base], "no such file"),
    (lambda p, base: [write(p / "x.json", {"benchmarks": 1}), base], "not a pytest-benchmark JSON"),
    (lambda p, base: [base, write(p / "other.json", run(bench("t_total", noisy(6.0)), device="NVIDIA H200"))],
     "recorded on NVIDIA H100 80GB HBM3"),
    (lambda p, base: [base, write(p / "none.json", run(bench("zzz", noisy(6.0))))], "nothing to compare"),
    (lambda p, base: [write(p / "slowed.json", run(bench("t_total", noisy(7.0), injected_delay_ms=1.0))), base],
     "was run with --inject-delay-ms 1: not a baseline"),
    (lambda p, base: [base, base, "-k", "total and (backbone"], "-k: cannot parse"),
    (lambda p, base: ["--latest-in", str(p / "empty"), base], "no stored run"),
    (lambda p, base: ["--latest-in", str(p / "nowhere"), base], "is not a directory"),
    (lambda p, base: [base, base, "--confirm", str(p / "no_rerun.json")], "no such file"),
    (lambda p, base: [base, base, "--confirm", write(p / "h200.json", run(bench("t_total", noisy(6.0)),
                                                                          device="NVIDIA H200"))],
     "h200.json on NVIDIA H200"),
    (lambda p, base: [write(p / "synthetic.json", with_weights("synthetic, seed 0")),
                      write(p / "trained.json", with_weights("checkpoint trained"))],
     "measured synthetic, seed 0, "),
], ids=["missing", "not-a-run", "other-device", "no-common-benchmark", "injected-baseline", "bad-k", "empty-folder",
        "no-folder", "missing-rerun", "rerun-other-device", "other-weights"])
def test_command_errors_are_one_line_and_exit_2(tmp_path, runs, capsys, make, words):
    (tmp_path / "empty").mkdir()
    assert gate.main(make(tmp_path, runs[0])) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert captured.out == "" and len(err) == 1 and err[0].startswith("error:") and words in err[0], err


@pytest.mark.parametrize("args", [
    ["one.json"], ["a.json", "b.json", "c.json"], ["--latest-in", "d", "a.json", "b.json"],
    ["a.json", "b.json", "--alpha", "2"], ["a.json", "b.json", "--threshold", "0"],
])
def test_command_usage_errors_exit_2(args, capsys):
    with pytest.raises(SystemExit) as exc:
        gate.main(args)
    assert exc.value.code == 2 and "error:" in capsys.readouterr().err


STUB_STAGE = """
import time

def test_stage(benchmark):
    benchmark.pedantic(time.sleep, args=({delay},), rounds=10, warmup_rounds=1, iterations=1)
"""


def stub_run(pytester, storage, delay, *args):
    pytester.makepyfile(test_stub=STUB_STAGE.format(delay=delay))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--benchmark-storage=file://{storage}", *args)
    assert result.ret == 0, result.stdout.str()


@pytest.mark.parametrize("save_data", [True, False], ids=["rounds-stored", "medians-only"])
def test_gate_on_real_pytest_benchmark_files(pytester, tmp_path, capsys, save_data):
    """A stored baseline, then --benchmark-json runs (which keep every round) of a stub stage: a sleep."""
    storage = tmp_path / "baselines"
    stub_run(pytester, storage, 0.02, "--benchmark-save=base", *(["--benchmark-save-data"] if save_data else []))
    (stored,) = storage.iterdir()  # pytest-benchmark's <machine-id> folder
    for delay, name in ((0.02, "same.json"), (0.06, "slower.json")):
        stub_run(pytester, storage, delay, f"--benchmark-json={tmp_path / name}")
    (baseline,) = stored.glob("0001_base.json")
    assert gate.main([str(baseline), str(tmp_path / "same.json")]) == 0
    assert gate.main([str(baseline), str(tmp_path / "slower.json")]) == 1
    row = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| test_stage |")][-1]
    assert "| REGRESSED |" in row
    assert ("10/10 rounds" in row) if save_data else ("median alone: no rounds in the baseline" in row)


# --- GPU state in machine_info, and the throttle warning -----------------------------------------------

def test_gpu_state_on_a_cpu_run_is_unavailable():
    assert gpu_state("cpu") == {"unavailable": "not a CUDA run"}


def test_gpu_state_without_nvidia_smi_is_unavailable(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert query_gpu_state((0, 0x19, 0)) == {"unavailable": "nvidia-smi not found"}


def fake_nvidia_smi(folder: Path, gpus: list, monkeypatch):
    """An nvidia-smi on PATH that answers --query-gpu from ``gpus`` and, like a real one, refuses the whole
    query when it names a field it does not know."""
    script = folder / "nvidia-smi"
    script.write_text(f"""#!{sys.executable}
import sys
GPUS = {gpus!r}
fields = [a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--query-gpu=")][0].split(",")
for f in fields:
    if f not in GPUS[0]:
        print(f'Field "{{f}}" is not a valid field to query.')
        sys.exit(2)
for gpu in GPUS:
    print(", ".join(gpu[f] for f in fields))
""")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")


OLD_DRIVER = {"driver_version": "535.104.05", "pstate": "P0", "clocks.sm": "1980", "clocks.mem": "2619",
              "clocks.max.sm": "1980", "power.limit": "700.00", "enforced.power.limit": "700.00",
              "power.draw": "[N/A]", "temperature.gpu": "41", "clocks_throttle_reasons.active": "0x0000000000000004"}


def test_gpu_state_falls_back_field_by_field_on_an_older_driver(tmp_path, monkeypatch):
    other = {**OLD_DRIVER, "pci.bus_id": "00000000:18:00.0", "temperature.gpu": "30"}
    fake_nvidia_smi(tmp_path, [other, {**OLD_DRIVER, "pci.bus_id": "00000000:19:00.0"}], monkeypatch)
    state = query_gpu_state((0, 0x19, 0))
    assert state["driver_version"] == "535.104.05" and state["pstate"] == "P0"
    assert state["sm_clock_mhz"] == 1980 and state["power_limit_w"] == 700 and state["temperature_c"] == 41
    assert state["power_draw_w"] is None  # [N/A]
    assert state["throttle_reasons"] == "0x0000000000000004"  # by its older name
    assert state["sw_power_cap_us"] is None  # counters unknown to this driver


def test_gpu_state_in_one_query_on_a_current_driver(tmp_path, monkeypatch):
    current = {k.replace("clocks_throttle_reasons", "clocks_event_reasons"): v for k, v in OLD_DRIVER.items()}
    current.update({"pci.bus_id": "00000000:19:00.0", "driver_version": "580.65.06",
                    "clocks_event_reasons_counters.sw_power_cap": "1500000",
                    "clocks_event_reasons_counters.sw_thermal_slowdown": "0",
                    "clocks_event_reasons_counters.hw_thermal_slowdown": "0",
                    "clocks_event_reasons_counters.hw_power_brake_slowdown": "0"})
    fake_nvidia_smi(tmp_path, [current], monkeypatch)
    state = query_gpu_state((0, 0x19, 0))
    assert state["driver_version"] == "580.65.06" and state["sw_power_cap_us"] == 1500000
    assert state["throttle_reasons"] == "0x0000000000000004"


def test_throttle_reasons_decode_nvml_bits():
    assert throttle_reasons("0x0000000000000005") == ["gpu_idle", "sw_power_cap"]
    assert throttle_reasons("0x0000000000000000") == []
    assert throttle_reasons("0x0000000000001000") == ["unknown reason 0x1000"]


def machine_info(start_reasons="0x0000000000000001", end_reasons="0x0000000000000001", start_cap=0, end_cap=0):
    state = {"driver_version": "580.65.06", "sm_clock_mhz": 1980, "memory_clock_mhz": 2619,
             "enforced_power_limit_w": 700, "temperature_c": 40}
    return {"device": H100, "gpu_state": {
        "start": {**state, "throttle_reasons": start_reasons, "sw_power_cap_us": start_cap},
        "end": {**state, "temperature_c": 55, "throttle_reasons": end_reasons, "sw_power_cap_us": end_cap}}}


def test_throttle_warning():
    assert throttle_warning(machine_info()) is None  # idle only
    assert throttle_warning({"device": H100}) is None  # runs stored before the GPU state was
    assert throttle_warning({"gpu_state": {"start": {"unavailable": "x"}, "end": {"unavailable": "x"}}}) is None
    warning = throttle_warning(machine_info(end_reasons="0x0000000000000044"))
    assert warning.startswith("WARNING: the GPU was throttled")
    assert "sw_power_cap, hw_thermal_slowdown active at the end" in warning
    counted = throttle_warning(machine_info(start_cap=1_000_000, end_cap=3_500_000))
    assert "2.50 s of sw_power_cap during the run" in counted


def test_report_shows_the_gpu_state_and_warns_when_throttled(tmp_path, capsys):
    data = run(bench("test_stage[inference-320x192-total]", [10.0], variant="inference", size="320x192",
                     stage="total"), **machine_info(end_reasons="0x0000000000000008"))
    text = markdown(data)
    assert "GPU state (start -> end): driver 580.65.06; SM clock 1980 -> 1980 MHz" in text
    assert "temperature 40 -> 55 C" in text and "clock event reasons gpu_idle -> hw_slowdown" in text
    assert "WARNING: the GPU was throttled (hw_slowdown active at the end)" in text
    assert report_main([write(tmp_path / "run.json", data)]) == 0
    assert capsys.readouterr().err.startswith("WARNING: the GPU was throttled")  # stdout is not a terminal here
    assert "WARNING" not in markdown(run(bench("t", [10.0], variant="inference", size="320x192", stage="total")))
    assert gpu_state_line({"gpu_state": {"start": {"unavailable": "x"}, "end": {"unavailable": "not a CUDA run"}}}) \
        == "GPU state: unavailable (not a CUDA run)"


def test_compare_warns_about_a_throttled_run(tmp_path, capsys):
    base = write(tmp_path / "base.json", run(bench("t_total", noisy(6.0)), **machine_info()))
    new = write(tmp_path / "new.json", run(bench("t_total", noisy(6.0, seed=1)), **machine_info(end_reasons="0x4")))
    assert gate.main([base, new]) == 0
    out = capsys.readouterr().out
    assert "new run: WARNING: the GPU was throttled (sw_power_cap active at the end)" in out
    assert "baseline: WARNING" not in out


@pytest.mark.slow  # pytest in a subprocess, importing torch and mmdet
def test_a_cpu_run_stores_its_gpu_state_as_unavailable(pytester):
    for name in ("conftest.py", "pytest.ini"):
        shutil.copy(REPO / name, pytester.path / name)
    pytester.makepyfile(test_one="def test_one(benchmark):\n    benchmark(sum, [1, 2])\n")
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", "--device=cpu", "test_one.py",
                                           "--benchmark-json=out.json", timeout=600)
    assert result.ret == 0, "\n".join(result.outlines + result.errlines)
    stored = json.loads((pytester.path / "out.json").read_text())
    assert stored["gpu_state"] == {"start": {"unavailable": "not a CUDA run"}, "end": {"unavailable": "not a CUDA run"}}
    assert "gpu_state" not in stored["machine_info"]  # pytest-benchmark compares machine_info whole


# --- history -------------------------------------------------------------------------------------------

def series(svg: str) -> int:
    """How many lines a pygal chart draws."""
    return len(set(re.findall(r'class="series serie-(\d+)', svg)))


def test_history_of_the_stored_h200_runs_skips_the_stream_only_ones(tmp_path, capsys):
    """The folder that once failed the nightly's history step: stream-only runs among partial ones."""
    svg = tmp_path / "history.svg"
    assert report_cli(["--history", str(H200_RUNS), "--chart", str(svg)]) == 0
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [f"skipped {H200_RUNS / name}: no stage totals and no parity figures"
                                         for name in ("0006_h200_stream.json", "0007_h200_stream.json",
                                                      "0008_h200_stream.json")]
    rows = [line for line in captured.out.splitlines() if line.startswith("| 00") and " | 2026-" in line]
    assert [row.split(" ")[1] for row in rows] == ["0001", "0002", "0003", "0004", "0005", "0009", "0010", "0011"]
    assert all(row.endswith("| partial |") for row in rows)
    assert svg.read_text().startswith("<?xml")


def test_history_of_the_stored_h100_runs(tmp_path, capsys):
    svg = tmp_path / "history.svg"
    assert report_cli(["--history", str(BASELINES), "--chart", str(svg)]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line for line in lines if line.startswith("| 0")]
    assert [row.split(" | ")[0] for row in rows] == [f"| {n:04d} {sha}" for n, sha in (
        (1, "unknown"), (2, "unknown"), (3, "3d146a1*"), (4, "536fd90*"), (5, "536fd90*"), (6, "536fd90*"),
        (7, "8d6b7ed"), (8, "8d6b7ed"), (9, "8d6b7ed"))]
    header = next(line for line in lines if line.startswith("| run |"))
    assert "inference_graph 1333x800" in header and "inference 3840x2304" in header
    assert rows[0].split(" | ")[header.split(" | ").index("inference_graph 1333x800")] == ""  # not in 0001
    text = svg.read_text()
    assert text.startswith("<?xml") and series(text) == 10 and "0006 536fd90*" in text
    assert not (tmp_path / "history-parity.svg").exists()  # no run stores parity yet


def test_history_takes_files_after_folders_and_draws_parity_where_stored(tmp_path, capsys):
    latest = json.loads((BASELINES / "0006_h100.json").read_text())
    latest["parity"] = [
        {"variant": "inference_graph", "size": "1333x800", "image": image, "matched_fraction": matched,
         "mask_iou_mean": iou} for image, matched, iou in (("astronaut", 1.0, 0.99), ("coffee", 0.97, 0.985))]
    new = write(tmp_path / "run.json", latest)
    svg = tmp_path / "h.svg"
    assert report_cli(["--history", str(BASELINES), new, "--chart", str(svg)]) == 0
    out = capsys.readouterr().out
    assert [line.split(" | ")[0] for line in out.splitlines() if line.startswith("| run 5")] == ["| run 536fd90*"] * 2
    assert "| run 536fd90* | 0.97/0.9850 |" in out  # the worst image of each figure
    assert series((tmp_path / "h-parity.svg").read_text()) == 1
    assert len(PARITY_READERS) >= 2


def test_history_shows_a_parity_only_run_as_a_row_of_parity(tmp_path, capsys):
    """A stored run of the parity tests alone (no stage benchmarks) no longer stops the history."""
    stored = tmp_path / "stored"
    stored.mkdir()
    shutil.copy(BASELINES / "0009_h100.json", stored / "0009_h100.json")
    write(stored / "0010_parity.json", {**json.loads((BASELINES / "0009_h100.json").read_text()), "benchmarks": [],
                                        "parity": [{"variant": "inference_graph", "size": "1333x800", "image": "scene0",
                                                    "matched_fraction": 1.0, "mask_iou_mean": 0.995}]})
    assert report_cli(["--history", str(stored)]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.startswith("| run | date |"))
    (totals_row,) = [line for line in lines if line.startswith("| 0010 ") and line.count(" | ") > 3]
    assert set(totals_row.split(" | ")[2:-1]) == {""} and len(header.split(" | ")) == len(totals_row.split(" | "))
    assert "| 0010 8d6b7ed | 1.00/0.9950 |" in lines


def test_history_keeps_parity_of_different_weights_apart(tmp_path, capsys):
    base = json.loads((BASELINES / "0009_h100.json").read_text())

    def parity_run(weights, iou):
        record = {"variant": "inference_graph", "size": "1333x800", "matched_fraction": 1.0, "mask_iou_mean": iou}
        return write(tmp_path / f"{iou}.json", {**base, "benchmarks": [], "weights": weights, "parity": [record]})

    runs = [parity_run("synthetic, seed 0", 0.97), parity_run("checkpoint trained", 0.995)]
    svg = tmp_path / "h.svg"
    assert report_cli(["--history", *runs, "--chart", str(svg)]) == 0
    out = capsys.readouterr().out
    assert ("| run | inference_graph 1333x800 (synthetic, seed 0) | inference_graph 1333x800 (checkpoint trained) |"
            in out)
    assert "| 0.97 8d6b7ed | 1.00/0.9700 |  |" in out and "| 0.995 8d6b7ed |  | 1.00/0.9950 |" in out
    assert "No run holds stage benchmarks" in out
    assert series((tmp_path / "h-parity.svg").read_text()) == 2


@pytest.mark.parametrize("make, words", [
    (lambda p: p / "empty", "no stored run"),
    (lambda p: Path(write(p / "x.json", {"benchmarks": [{"name": "x", "stats": {"median": 1.0}}]})),
     "none of the 1 runs holds stage totals or parity figures"),
    (lambda p: p / "missing.json", "no such file"),
], ids=["empty-folder", "no-stages", "missing"])
def test_history_errors_are_one_line_and_exit_2(tmp_path, capsys, make, words):
    (tmp_path / "empty").mkdir()
    assert report_cli(["--history", str(make(tmp_path))]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and words in err[0], err


def test_gate_rates_counts_a_drifting_run_as_a_false_alarm_only_without_a_rerun(tmp_path, capsys):
    """tools/gate_rates.py over three unchanged runs, one of them drifted 15% slower as a whole, and
    two runs slowed by 1 ms: the drift is a false alarm on one run but never repeats; the delay does."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gate_rates", REPO / "tools" / "gate_rates.py")
    gate_rates = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gate_rates)
    paths = []
    for i, (ms, delay) in enumerate([(6.0, 0), (6.0, 0), (6.9, 0), (7.0, 1.0), (7.0, 1.0)]):
        extra = {"injected_delay_ms": delay} if delay else {}
        paths.append(write(tmp_path / f"{i}.json", run(bench("t_total", noisy(ms, spread_ms=0.05, seed=i), **extra))))
    assert gate_rates.main(paths) == 0
    (row,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| t_total |")]
    false_alarms, detected = row.split("|")[2:4]
    # Pairs (baseline, new) of unchanged runs: 6; the drifted run as new against the two others: 2.
    # Triples: 6 pairs x 1 rerun each; the drifted run is never confirmed by a normal one.
    assert false_alarms.split(" / ") == [" 0/6", "2/6", "2/6 "]
    # Against the two normal baselines the delay is caught, confirmed or not; against the drifted
    # one (6.9 ms) 7.0 ms is no move: a slow baseline hides a slowdown, which a rerun cannot mend.
    assert detected.split(" / ") == [" 4/6", "4/6", "4/6 "]


def test_newest_usable_takes_the_newest_run_that_passes_and_names_the_newer_ones(tmp_path):
    from mmdet_opt.suite.runs import ReportError, newest_usable

    paths = [tmp_path / f"000{i}_run.json" for i in (1, 2, 3)]
    held = {paths[0]: {"ok": True}, paths[1]: {"ok": True}, paths[2]: {"ok": False}}
    usable = lambda run: run["ok"]  # noqa: E731
    assert newest_usable(paths, usable, load=held.get) == (paths[1], ["0003_run.json"])
    assert newest_usable(paths[:2], usable, load=held.get) == (paths[1], [])
    assert newest_usable(paths, lambda run: False, load=held.get) == (
        None, ["0003_run.json", "0002_run.json", "0001_run.json"])
    assert newest_usable([], usable, load=held.get) == (None, [])

    def broken(path):
        raise ReportError(f"{path} is not valid JSON")

    with pytest.raises(ReportError, match="0003_run.json is not valid JSON"):
        newest_usable(paths, usable, load=broken)
