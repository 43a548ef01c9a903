"""What the suite adds to the run that pytest-benchmark writes to --benchmark-json: the weights, the
GPU's state, the parity records, the batches not run, and a mutation."""
from __future__ import annotations

from ..machine import gpu_state
from .settings import run_weights


def update_json(config, output_json: dict) -> None:
    settings = config._mmdet_opt
    # Which weights the run measured: parity on the trained model and on synthetic weights differ
    # by design, so the history keeps them apart.
    output_json["weights"] = run_weights(settings)
    # Outside machine_info, which pytest-benchmark compares whole: clocks and temperatures always
    # differ, and it would warn on every compare.
    start = getattr(config, "_mmdet_opt_gpu_start", None) or {"unavailable": "not recorded at session start"}
    output_json["gpu_state"] = {"start": start, "end": gpu_state(settings.device)}
    records = getattr(config, "_mmdet_opt_parity", None)
    if records:
        output_json["parity"] = records
    if getattr(config, "_mmdet_opt_not_run", None):  # batches too large for this GPU, measured as such
        output_json["not_run"] = config._mmdet_opt_not_run
    if settings.mutation:  # parity broken on purpose: never a baseline
        output_json["mutation"] = settings.mutation


def run_json(config, benchmarks: list) -> dict:
    """The run as pytest-benchmark writes it to --benchmark-json, with this suite's parity records."""
    bench_session = config._benchmarksession
    commit_info = config.hook.pytest_benchmark_generate_commit_info(config=config)
    output = config.hook.pytest_benchmark_generate_json(config=config, benchmarks=benchmarks, include_data=False,
                                                       machine_info=bench_session.get_machine_info(),
                                                       commit_info=commit_info)
    config.hook.pytest_benchmark_update_json(config=config, benchmarks=benchmarks, output_json=output)
    return output
