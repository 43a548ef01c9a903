"""Options and helpers of the benchmark files only."""
import time

import pytest


def pytest_addoption(parser):
    parser.getgroup("mmdet-opt").addoption(
        "--inject-delay-ms", type=float, default=0.0,
        help="add this many ms to every timed call: shows that the regression gate catches a "
             "regression (recorded in extra_info; mmdet_opt.suite.compare refuses such a run as baseline)")
    parser.getgroup("mmdet-opt").addoption(
        "--warmup-seconds", type=float, default=None,
        help="untimed calls continue until this long has passed, after --warmup-rounds "
             "(default 1.0 on GPU, 0 on CPU)")
    parser.getgroup("mmdet-opt").addoption(
        "--round-budget", type=float, default=60.0,
        help="seconds of timed rounds per benchmark: a call too slow for --rounds in that time gets as many "
             "rounds as fit, at least 5 (recorded in extra_info as rounds_capped); 0: no budget (default 60)")
    parser.getgroup("mmdet-opt").addoption(
        "--stream-images", type=int, default=None,
        help="images in the stream benchmark (default 200 on GPU, photos up to 4032 px; 6 on CPU, up to "
             "800 px); 30%% of them are distinct sizes (at least 3, at most 60)")


@pytest.fixture(scope="session")
def warm_up(settings, request):
    """``warm_up(fn)``: --warmup-rounds untimed calls, continued for --warmup-seconds in all;
    returns the last call's seconds (None when nothing ran).

    Each benchmark starts after an idle gap (the next pipeline being built and captured), so it
    warms up for a minimum time as well as a minimum number of calls. This did not remove the
    run-to-run drift of host-bound stages (docs/perf.md, "Baseline stability"). A call so slow that
    warming up would take a quarter of --round-budget stops after one call.
    """
    seconds = request.config.getoption("--warmup-seconds")
    if seconds is None:
        seconds = 1.0 if settings.on_gpu else 0.0
    budget = request.config.getoption("--round-budget")
    disabled = request.config.getoption("benchmark_disable")

    def run(fn):
        if disabled:  # one untimed call follows anyway: nothing to warm up for
            return None
        start, calls, last = time.perf_counter(), 0, None
        while calls < settings.warmup_rounds or time.perf_counter() - start < seconds:
            if calls and budget and time.perf_counter() - start >= budget / 4:
                break
            began = time.perf_counter()
            fn()
            last, calls = time.perf_counter() - began, calls + 1
        return last

    return run


@pytest.fixture(scope="session")
def timed_rounds(request):
    """``timed_rounds(benchmark, rounds, per_call_s)``: the rounds that fit --round-budget, and a
    note in the benchmark's extra_info when that is fewer than ``rounds``."""
    from mmdet_opt.suite.rounds import rounds_within

    budget = request.config.getoption("--round-budget")

    def get(benchmark, rounds: int, per_call_s) -> int:
        fitting = rounds_within(rounds, per_call_s, budget)
        if fitting < rounds:
            benchmark.extra_info["rounds_capped"] = f"{fitting} of {rounds} (--round-budget {budget:g} s)"
        return fitting

    return get
