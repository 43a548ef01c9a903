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
        "--stream-images", type=int, default=None,
        help="images in the stream benchmark (default 200 on GPU, photos up to 4032 px; 6 on CPU, up to "
             "800 px); 30%% of them are distinct sizes (at least 3, at most 60)")


@pytest.fixture(scope="session")
def warm_up(settings, request):
    """``warm_up(fn)``: --warmup-rounds untimed calls, continued for --warmup-seconds in all.

    Each benchmark starts after an idle gap (the next pipeline being built and captured), so it
    warms up for a minimum time as well as a minimum number of calls. This did not remove the
    run-to-run drift of host-bound stages (docs/perf.md, "Baseline stability").
    """
    seconds = request.config.getoption("--warmup-seconds")
    if seconds is None:
        seconds = 1.0 if settings.on_gpu else 0.0
    disabled = request.config.getoption("benchmark_disable")

    def run(fn):
        if disabled:  # one untimed call follows anyway: nothing to warm up for
            return
        start, calls = time.perf_counter(), 0
        while calls < settings.warmup_rounds or time.perf_counter() - start < seconds:
            fn()
            calls += 1

    return run
