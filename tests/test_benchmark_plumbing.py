"""The regression gate works: a saved run, then --benchmark-compare-fail=median:10% on a slower one.

A stub "stage" (a sleep) stands in for the detector so this runs in seconds on any machine. Each
run is a separate pytest process in a temporary directory, so the project's conftest and stored
baselines play no part.
"""
import json

import pytest

pytest_plugins = ["pytester"]

STAGE = """
import time

def test_stage(benchmark):
    benchmark.pedantic(time.sleep, args=({delay},), rounds=7, warmup_rounds=1, iterations=1)
"""
GATE = ["--benchmark-compare", "--benchmark-compare-fail=median:10%"]


def output(result):
    """stdout and stderr together: pytest-benchmark reports on both."""
    return pytest.LineMatcher(result.outlines + result.errlines)


def run(pytester, storage, delay, *args):
    pytester.makepyfile(test_stub=STAGE.format(delay=delay))
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--benchmark-storage=file://{storage}", *args)


def test_compare_fail_catches_a_slower_stage(pytester, tmp_path):
    storage = tmp_path / "baselines"
    # Sleeps long enough that timer noise is far below 10%, and a 3x slowdown far above it.
    base = run(pytester, storage, 0.02, "--benchmark-save=base")
    assert base.ret == 0, base.stdout.str()
    saved = list(storage.glob("*/0001_base.json"))
    assert len(saved) == 1
    median = json.loads(saved[0].read_text())["benchmarks"][0]["stats"]["median"]
    assert 0.02 <= median < 0.03

    same = run(pytester, storage, 0.02, *GATE)
    assert same.ret == 0, same.stdout.str()
    # Both rows in the table (ordered by time, so either way round): the comparison happened.
    table = same.stdout.str()
    assert "test_stage (0001_base)" in table and "test_stage (NOW)" in table, table

    slower = run(pytester, storage, 0.06, *GATE)
    assert slower.ret != 0, slower.stdout.str()
    output(slower).fnmatch_lines([
        "*Performance has regressed:*",
        "*test_stage (0001_base)*Field 'median' has failed PercentageRegressionCheck*",
    ])


def test_compare_fail_without_a_baseline_is_not_silent(pytester, tmp_path):
    """Gating against an empty storage must not pass as if nothing regressed."""
    result = run(pytester, tmp_path / "empty", 0.001, *GATE)
    assert result.ret != 0
    output(result).fnmatch_lines(["*--benchmark-compare-fail requires valid --benchmark-compare*"])


TWO_VARIANTS = """
import time

import pytest

@pytest.mark.parametrize("name,delay", [("inference", 0.02), ("inference_raw_mask_fp32", 0.01)])
def test_total(benchmark, name, delay):
    benchmark.extra_info.update(variant=name, size="640x384", stage="total")
    benchmark.pedantic(time.sleep, args=(delay,), rounds=5, iterations=1)
"""


def test_a_bench_run_ends_with_the_speed_up_over_stock(pytester, tmp_path):
    """The project's conftest prints the study's tables after pytest-benchmark's own, speed-ups included."""
    from pathlib import Path

    pytester.makeconftest((Path(__file__).parents[1] / "conftest.py").read_text())
    pytester.makepyfile(test_stub=TWO_VARIANTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--device", "cpu",
                                           f"--benchmark-storage=file://{tmp_path}")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*mmdet-opt report*", "### 640x384", "| variant | total | speed-up |",
                                 "| inference | * | 1.00x |"])
    (row,) = [line for line in result.outlines if line.startswith("| inference_raw_mask_fp32 |")]
    assert 1.5 < float(row.split("|")[3].strip().rstrip("x")) < 2.5, row  # half the sleep: about 2x
    disabled = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--device", "cpu", "--benchmark-disable")
    assert "mmdet-opt report" not in disabled.stdout.str()
