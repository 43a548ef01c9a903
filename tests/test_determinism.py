"""The same image and weights give the same detections, run after run.

On CPU every variant that runs there is bit-exact: boxes, scores, labels and masks.

On GPU (one process, one device, same weights and image), every variant is expected bit-exact
too: stock ``inference``, ``inference_fp16``, ``inference_fp16_preprocess``,
``inference_raw_mask``, ``inference_graph`` (the same kind of kernels, replayed from CUDA graphs)
and the composed fp32 ones. Their forward kernels (cuDNN forward convolutions chosen by fixed
heuristics since ``cudnn.benchmark`` is off, cuBLAS GEMMs on one stream, mmcv RoIAlign and NMS,
bilinear resize, grid_sample) do not accumulate with atomics. The one kernel that may is the mask
head's transposed convolution, which cuDNN runs as a backward-data convolution; some of those
algorithms use atomics. A variant listed in ``GPU_TOLERANT`` is held only to the same number of
detections, all matched, with mask IoU >= 0.999 and |score diff| <= 1e-4, rather than to bit
equality; the list is empty because none is expected to need it.
"""
import numpy as np
import pytest
import torch

from mmdet_opt.detector import build_detector
from mmdet_opt.images import resize_to, sample_image
from mmdet_opt.parity import compare
from mmdet_opt.results import Detections
from mmdet_opt.variants import VARIANTS, Variant, get_variant

COMPOSED_FP32 = {
    "gpu_pre_fp32": Variant("gpu_pre_fp32", gpu_preprocess=True),
    "raw_fp32": Variant("raw_fp32", gpu_preprocess=True, raw_mask=True),
}
CPU_VARIANTS = {"inference": get_variant("inference"), **COMPOSED_FP32}
GPU_VARIANTS = {**VARIANTS, **COMPOSED_FP32}
GPU_TOLERANT: set = set()


def assert_identical(a: Detections, b: Detections, what: str):
    for field in ("boxes", "scores", "labels", "masks"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), f"{what}: {field} differ"


def assert_close(a: Detections, b: Detections, what: str):
    report = compare(a, b)
    assert len(a) == len(b) and report.matched == len(a), f"{what}: {report}"
    assert report.mask_iou_min >= 0.999 and report.score_diff_max <= 1e-4, f"{what}: {report}"


SCALE = (320, 192)  # the scale small_base_model (tests/conftest.py) is built at


@pytest.fixture(scope="module")
def cpu_model(small_base_model):
    return small_base_model


@pytest.mark.slow
@pytest.mark.parametrize("which", list(CPU_VARIANTS))
def test_cpu_runs_are_bit_exact(which, cpu_model):
    image = resize_to(sample_image("coffee"), (333, 201))  # a real resize in preprocessing
    pipeline = CPU_VARIANTS[which].build(cpu_model, SCALE)
    first = Detections.from_mmdet(pipeline(image), image.shape)
    assert len(first) > 0
    assert_identical(first, Detections.from_mmdet(pipeline(image), image.shape), f"{which}, same pipeline")
    rebuilt = CPU_VARIANTS[which].build(cpu_model, SCALE)
    assert_identical(first, Detections.from_mmdet(rebuilt(image), image.shape), f"{which}, rebuilt pipeline")


@pytest.fixture(scope="module")
def gpu_model():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    return build_detector(device="cuda")


GPU_SIZE = (1333, 800)


@pytest.mark.parametrize("which", list(GPU_VARIANTS))
def test_gpu_runs_repeat(which, gpu_model):
    image = resize_to(sample_image("astronaut"), GPU_SIZE)
    pipeline = GPU_VARIANTS[which].build(gpu_model, GPU_SIZE)
    runs = [Detections.from_mmdet(pipeline(image), image.shape) for _ in range(3)]
    assert len(runs[0]) > 0
    check = assert_close if which in GPU_TOLERANT else assert_identical
    for i, run in enumerate(runs[1:], 2):
        check(runs[0], run, f"{which}, run {i} against run 1")
