"""Runs with the suite's own structure, as pytest-benchmark and the conftest write them, built from the
suite's defaults (``mmdet_opt.suite.baseline.expected``): a complete run, or any slice of one."""
from __future__ import annotations

import numpy as np

from mmdet_opt.suite import defaults
from mmdet_opt.suite.baseline import expected

H200 = "NVIDIA H200"
# Medians in ms: per variant at 1333x800 (stage medians scale from it), x3 at 3840x2304.
TOTAL_MS = {"inference": 55.0, "inference_fp16": 60.0, "inference_fp16_preprocess": 35.0, "inference_raw_mask": 30.0,
            "inference_graph": 5.0, "inference_graph_padded": 5.5}
STAGE_SHARE = {"pre-processing": 0.1, "backbone": 0.4, "rpn_head": 0.15, "roi_head": 0.3, "mask forward": 0.1,
               "mask post-processing": 0.05, "total": 1.0, "total+masks": 2.0, "total+rle": 1.5}


def entry(name: str, fullname: str, ms: float, extra: dict, seed: int, rounds: int = 20) -> dict:
    """A --benchmark-json entry: ``rounds`` rounds around ``ms``, 1% noise."""
    seconds = np.abs(ms + np.random.default_rng(seed).normal(0, ms * 0.01, rounds)) / 1000
    stats = {"min": float(seconds.min()), "max": float(seconds.max()), "mean": float(seconds.mean()),
             "stddev": float(seconds.std()), "median": float(np.median(seconds)), "rounds": rounds,
             "ops": float(1 / seconds.mean()), "data": seconds.tolist()}
    return {"name": name, "fullname": fullname, "group": None, "extra_info": extra, "stats": stats}


def stage_ms(variant: str, size: str, stage: str) -> float:
    base = next(ms for name, ms in sorted(TOTAL_MS.items(), key=lambda kv: -len(kv[0])) if variant.startswith(name))
    return base * STAGE_SHARE[stage] * (3.0 if size.split("@")[-1] == "3840x2304" else 1.0)


def complete_run(seed: int = 0, on_gpu: bool = True, device: str = H200, dirty: bool = False,
                 slower_ms: dict | None = None, weights: str = "synthetic, seed 0", commit: str = "c0ffee1") -> dict:
    """Everything the default suite records on a GPU (or a CPU); ``slower_ms``: {benchmark name: +ms}."""
    want, slower = expected(on_gpu), slower_ms or {}
    benchmarks = []
    for i, (variant, size, stage) in enumerate(sorted(want.stages)):
        name = f"test_stage[{variant}-{size}-{stage}]"
        benchmarks.append(entry(name, f"benchmarks/test_stages.py::{name}",
                                stage_ms(variant, size, stage) + slower.get(name, 0.0),
                                {"variant": variant, "size": size, "stage": stage}, seed * 1000 + i))
    for i, (variant, size, batch) in enumerate(sorted(want.throughput)):
        name = f"test_throughput[{size}-{variant}-{batch}]"
        benchmarks.append(entry(name, f"benchmarks/test_throughput.py::{name}",
                                stage_ms(variant, size, "total") * batch,
                                {"variant": variant, "size": size, "batch": batch}, seed * 1000 + 500 + i, rounds=5))
    length = defaults.stream_images(on_gpu)
    for variant in sorted(want.stream):
        name = f"test_stream[{variant}]"
        summary = {"images": length, "distinct_sizes": length * 3 // 10,
                   "images_per_second": round(1000 / stage_ms(variant, "1333x800", "total"), 2)}
        benchmarks.append(entry(name, f"benchmarks/test_stream.py::{name}", 1000.0,
                                {"variant": variant, "stream": length, "stream_summary": summary}, seed, rounds=1))
    scenes = defaults.accuracy_scenes(on_gpu)
    for variant in sorted(want.accuracy):
        name = f"test_accuracy[{variant}]"
        figures = {"scenes": scenes, "scored": scenes, "bbox_mAP": 0.8, "segm_mAP": 0.75,
                   "images_per_s": round(1000 / stage_ms(variant, "1333x800", "total"), 2)}
        benchmarks.append(entry(name, f"benchmarks/test_accuracy.py::{name}", 1000.0,
                                {"variant": variant, "scale": "1333x800", "accuracy": figures}, seed, rounds=1))
    parity = [{"variant": variant, "size": size, "image": image, "matched_fraction": 1.0, "mask_iou_mean": 0.99}
              for variant, size, image in sorted(want.parity)]
    return {"machine_info": {"device": device if on_gpu else "cpu"},
            "commit_info": {"id": commit + "0" * 33, "dirty": dirty},
            "datetime": f"2027-01-{seed + 1:02d}T03:00:00", "weights": weights, "benchmarks": benchmarks,
            "parity": parity}


def only(run: dict, keep) -> dict:
    """The run with only the benchmarks for which ``keep(benchmark)`` holds, and no parity records."""
    return {**run, "benchmarks": [b for b in run["benchmarks"] if keep(b)], "parity": []}
