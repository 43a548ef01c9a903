"""The suite's pytest plugin: its options, the settings a run takes from them, the parametrization
of the benchmark and parity tests, and what it adds to pytest-benchmark's output.

The repository's root conftest.py loads it. Its parts: ``options`` (the command line), ``settings``
(what a run takes from it), ``outputs`` (output folders), ``compare_option`` (the runs
--benchmark-compare names), ``run_json`` (what the suite adds to the stored run).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from .options import add_options

if TYPE_CHECKING:
    from .settings import Settings


def pytest_addoption(parser):
    add_options(parser)


def pytest_configure(config):
    from ..quiet import import_quietly

    import_quietly()  # before the settings import the variants, and with them torch and mmdet
    from .compare_option import check_compare_baselines
    from .outputs import make_output_folders, store_runs_by_device
    from .settings import read_settings

    config._mmdet_opt = read_settings(config)
    make_output_folders(config)
    config._mmdet_opt_parity = []
    config._mmdet_opt_not_run = []
    store_runs_by_device(config, config._mmdet_opt.device)
    check_compare_baselines(config, config._mmdet_opt)


def pytest_report_header(config):
    from importlib.metadata import PackageNotFoundError, version

    def installed(name):
        try:
            return version(name)
        except PackageNotFoundError:
            return "-"

    settings = config._mmdet_opt
    packages = ("torch", "torchvision", "mmcv-full", "mmdet", "opencv-python-headless", "numpy")
    lines = [f"mmdet-opt: device {settings.device}; variants {', '.join(v.name for v in settings.variants.values())}",
             "mmdet-opt: " + ", ".join(f"{name} {installed(name)}" for name in packages)]
    lines += [f"mmdet-opt: not run: {reason}" for reason in settings.unavailable.values()]
    note = getattr(config, "_mmdet_opt_compare_note", None)
    return lines + [f"mmdet-opt: {note}"] if note else lines


def pytest_sessionstart(session):
    from ..machine import gpu_state

    # The GPU's clocks, power limit, temperature and throttle reasons before anything runs; the
    # state at the end is taken when pytest-benchmark saves the run (pytest_benchmark_update_json).
    session.config._mmdet_opt_gpu_start = gpu_state(session.config._mmdet_opt.device)


def pytest_generate_tests(metafunc):
    settings = metafunc.config._mmdet_opt
    if "stage" in metafunc.fixturenames:  # test_stage: the stages each variant gets at each case
        from .defaults import stages

        plan = [(variant, case, stage) for name, variant in settings.variants.items() for case in settings.sizes
                for stage in stages(name, case, settings.quick, settings.every_stage)]
        metafunc.parametrize("variant,case,stage", plan, ids=[f"{v.name}-{c}-{s}" for v, c, s in plan],
                             scope="session")
        return
    if "variant" in metafunc.fixturenames:
        metafunc.parametrize("variant", list(settings.variants.values()), ids=lambda v: v.name, scope="session")
    if "case" in metafunc.fixturenames:
        metafunc.parametrize("case", settings.sizes, ids=str, scope="session")
    if "image_name" in metafunc.fixturenames:
        metafunc.parametrize("image_name", settings.parity_images, scope="session")


@pytest.fixture(scope="session")
def settings(request) -> Settings:
    return request.config._mmdet_opt


@pytest.fixture(scope="session")
def suite(settings):
    from .session import Suite

    return Suite(settings.device, settings.config, settings.checkpoint, settings.seed, mutation=settings.mutation)


@pytest.fixture(scope="session")
def parity_records(request) -> list:
    """Each parity case's figures, stored with the run's JSON (``pytest_benchmark_update_json``)."""
    return request.config._mmdet_opt_parity


def pytest_benchmark_update_machine_info(config, machine_info):
    from ..machine import accelerator_info

    machine_info.update(accelerator_info(config._mmdet_opt.device))


def pytest_benchmark_update_json(config, benchmarks, output_json):
    from .run_json import update_json

    update_json(config, output_json)


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, config):
    """After pytest-benchmark's tables: the study's tables, with each variant's speed-up over stock."""
    bench_session = getattr(config, "_benchmarksession", None)
    benchmarks = [b for b in getattr(bench_session, "benchmarks", []) if not b.has_error]
    if not benchmarks or bench_session.disabled:
        return
    from .report import ReportError, markdown
    from .run_json import run_json

    try:
        text = markdown(run_json(config, benchmarks))
    except ReportError:  # no stage, stream or parity figures in this run
        return
    terminalreporter.write_sep("=", "mmdet-opt report (medians in ms; speed-up over stock)")
    terminalreporter.write_line(text)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session):
    """A run of parity tests alone still writes its figures to --benchmark-json.

    pytest-benchmark writes nothing when no benchmark ran; the parity records (and the machine
    and commit info) then go into the same JSON shape, with an empty benchmark list.
    """
    config = session.config
    path, records = config.getoption("benchmark_json", None), getattr(config, "_mmdet_opt_parity", None)
    bench_session = getattr(config, "_benchmarksession", None)
    if not path or not records or bench_session is None or bench_session.benchmarks:
        return
    from .run_json import run_json

    bench_session.save_json(run_json(config, []))
