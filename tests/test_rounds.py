"""The round budget: a benchmark too slow for the suite's rounds gets as many as fit, at least 5."""
import json
from pathlib import Path

import pytest

from mmdet_opt.suite.rounds import MIN_ROUNDS, rounds_within

pytest_plugins = ["pytester"]


@pytest.mark.parametrize("rounds, per_call, budget, expected", [
    (20, 0.01, 60, 20),  # fits: unchanged
    (20, 3.0, 60, 20),  # exactly fits
    (20, 4.0, 60, 15),  # as many as fit
    (20, 40.0, 60, MIN_ROUNDS),  # never fewer than MIN_ROUNDS
    (3, 40.0, 60, 3),  # nor more than asked (a CPU run's 3)
    (20, 4.0, 0, 20),  # no budget
    (20, None, 60, 20),  # nothing measured (--benchmark-disable)
])
def test_rounds_within(rounds, per_call, budget, expected):
    assert rounds_within(rounds, per_call, budget) == expected


STUB = """
import time, types

import pytest

@pytest.fixture(scope="session")
def settings():
    return types.SimpleNamespace(on_gpu=False, warmup_rounds=2, rounds=20)

def test_slow_stage(benchmark, warm_up, timed_rounds):
    def fn():
        time.sleep(0.05)
    benchmark.pedantic(fn, rounds=timed_rounds(benchmark, 20, warm_up(fn)), iterations=1)
"""


@pytest.mark.parametrize("budget", ["0.5", "0"])
def test_a_slow_benchmark_is_capped_and_says_so(pytester, tmp_path, budget):
    """Through the benchmarks' own fixtures: 20 rounds of 50 ms do not fit 0.5 s, so ~9 are timed."""
    pytester.makeconftest((Path(__file__).parents[1] / "benchmarks" / "conftest.py").read_text())
    pytester.makepyfile(test_stub=STUB)
    out = tmp_path / "run.json"
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--benchmark-json={out}",
                                           f"--round-budget={budget}")
    assert result.ret == 0, result.stdout.str()
    bench = json.loads(out.read_text())["benchmarks"][0]
    if budget == "0":
        assert bench["stats"]["rounds"] == 20 and "rounds_capped" not in bench["extra_info"]
    else:
        assert MIN_ROUNDS <= bench["stats"]["rounds"] <= 10
        assert bench["extra_info"]["rounds_capped"].endswith("of 20 (--round-budget 0.5 s)")


PROGRESS_STUB = """
def test_long_step(progress):
    print("captured, shown only on failure")
    progress("halfway")
"""


def test_progress_reaches_the_terminal_past_output_capture(pytester):
    """A long step's progress line shows in a plain run, where pytest captures what a test prints."""
    pytester.makeconftest((Path(__file__).parents[1] / "benchmarks" / "conftest.py").read_text())
    pytester.makepyfile(test_stub=PROGRESS_STUB)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == 0, result.stdout.str()
    assert "mmdet-opt: halfway" in result.outlines
    assert "captured, shown only on failure" not in result.stdout.str()
