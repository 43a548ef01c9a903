"""Options and helpers of the benchmark files only."""
import argparse
import contextlib
import math
import time

import pytest

from mmdet_opt.suite.defaults import (
    CPU_ACCURACY_SCENES,
    CPU_STREAM_IMAGES,
    GPU_ACCURACY_SCENES,
    GPU_STREAM_IMAGES,
    ROUND_BUDGET_S,
)

# --quick times the headline table and parity only: within minutes on a GPU.
LEFT_OUT_BY_QUICK = ("test_throughput", "test_stream", "test_serving", "test_accuracy")
SLOW_BENCHMARK_S = 10.0  # a benchmark whose timed rounds take longer says so on the terminal


def _at_least(lowest, kind=float):
    """An option's type: a number of ``kind``, at least ``lowest``; otherwise one usage error."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or value < lowest:
            raise argparse.ArgumentTypeError(f"{text!r}: expected a{'n integer' if kind is int else ' number'} "
                                             f">= {lowest}")
        return value
    return parse


def pytest_addoption(parser):
    parser.getgroup("mmdet-opt").addoption(
        "--inject-delay-ms", type=_at_least(0.0), default=0.0,
        help="add this many ms to every timed call: shows that the regression gate catches a "
             "regression (recorded in extra_info; mmdet_opt.suite.compare refuses such a run as baseline)")
    parser.getgroup("mmdet-opt").addoption(
        "--warmup-seconds", type=_at_least(0.0), default=None,
        help="untimed calls continue until this long has passed, after --warmup-rounds "
             "(default 1.0 on GPU, 0 on CPU)")
    parser.getgroup("mmdet-opt").addoption(
        "--round-budget", type=_at_least(0.0), default=ROUND_BUDGET_S,
        help="seconds of timed rounds per benchmark: a call too slow for --rounds in that time gets as many "
             "rounds as fit, at least 5 (recorded in extra_info as rounds_capped); 0: no budget "
             f"(default {ROUND_BUDGET_S:g})")
    parser.getgroup("mmdet-opt").addoption(
        "--stream-images", type=_at_least(1, int), default=None,
        help=f"images in the stream benchmark (default {GPU_STREAM_IMAGES} on GPU, photos up to 4032 px; "
             f"{CPU_STREAM_IMAGES} on CPU, up to 800 px); 30%% of them are distinct sizes (at least 3, at most 60)")
    parser.getgroup("mmdet-opt").addoption(
        "--accuracy-scenes", type=_at_least(1, int), default=None,
        help=f"held-out scenes the accuracy benchmark scores (default {GPU_ACCURACY_SCENES} on GPU, "
             f"{CPU_ACCURACY_SCENES} on CPU)")


def pytest_collection_modifyitems(config, items):
    if not config.getoption("--quick", default=False):  # the suite's plugin (mmdet_opt.suite.plugin) defines it
        return
    left_out = [item for item in items if getattr(item, "originalname", item.name) in LEFT_OUT_BY_QUICK]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if item not in left_out]


@pytest.fixture(scope="session")
def progress(request):
    """``progress(text)``: a line on the terminal now, past pytest's output capture, so that a long
    step (the stream, a slow stock case) shows it is moving in a plain ``pytest benchmarks``."""
    config = request.config
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")

    def say(text: str) -> None:
        if reporter is None:
            return
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            reporter.write_line(f"mmdet-opt: {text}")

    return say


@pytest.fixture(scope="session")
def warm_up(settings, request):
    """``warm_up(fn)``: --warmup-rounds untimed calls, continued for --warmup-seconds in all;
    returns the last call's seconds (None when nothing ran).

    Each benchmark starts after an idle gap (the next pipeline being built and captured), so it
    warms up for a minimum time as well as a minimum number of calls; the run-to-run drift of
    host-bound stages remains (docs/perf-log.md, "Baseline stability"), which the gate's rerun handles.
    A call so slow that warming up would take a quarter of --round-budget stops after one call.
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
def timed_rounds(request, progress):
    """``timed_rounds(benchmark, rounds, per_call_s)``: the rounds that fit --round-budget, and a
    note in the benchmark's extra_info when that is fewer than ``rounds``; a slow benchmark says on
    the terminal how long it will take."""
    from mmdet_opt.suite.rounds import rounds_within

    budget = request.config.getoption("--round-budget")

    def get(benchmark, rounds: int, per_call_s) -> int:
        fitting = rounds_within(rounds, per_call_s, budget)
        if fitting < rounds:
            benchmark.extra_info["rounds_capped"] = f"{fitting} of {rounds} (--round-budget {budget:g} s)"
        if per_call_s and fitting * per_call_s > SLOW_BENCHMARK_S:
            progress(f"{benchmark.name}: {per_call_s:.2f} s a call, {fitting} rounds, about "
                     f"{fitting * per_call_s:.0f} s")
        return fitting

    return get
