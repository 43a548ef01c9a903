"""The parity check must be able to fail: deliberately broken pipelines fail it, their unbroken
controls pass it. Also the checkpoint path, end to end.

CPU: two fp32 compositions (stock's pipeline; GPU-style preprocessing + raw masks) at 640x384.
CUDA (skipped without it): the study's four variants at 1333x800, same mutations. Each mutation must fail
both the fixed thresholds and the rule the suite applies on synthetic weights (at most the margin under
the worse of stock's own TF32 spread and, for fp16 variants, stock's own fp16). Run with ``-s`` to see
each report.
"""
from __future__ import annotations

import functools

import pytest
import torch

from mmdet_opt.parity import compare
from mmdet_opt.results import Detections
from mmdet_opt.suite.mutations import OUTPUT_MUTATIONS, ChannelsLastFeatures, channels_last_model, identity, shift
from mmdet_opt.suite.session import Suite
from mmdet_opt.variants import VARIANTS, Variant

IMAGE = "astronaut"
SIZES = {"cpu": (640, 384), "cuda": (1333, 800)}
CPU_BASES = (Variant("inference"), Variant("raw_fp32", gpu_preprocess=True, raw_mask=True))
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

# On CUDA the study's four variants (staged pipelines, so the channels_last wrapper applies).
STUDY = ("inference", "inference_fp16", "inference_fp16_preprocess", "inference_raw_mask")
BASES = ([pytest.param("cpu", v, id=f"cpu-{v.name}") for v in CPU_BASES]
         + [pytest.param("cuda", VARIANTS[n], id=f"cuda-{n}", marks=needs_cuda) for n in STUDY])
# shift(1): with these weights even one pixel must fail, see docs/parity-log.md.
MUTATIONS = list(OUTPUT_MUTATIONS.values()) + [shift(1)]
LAYOUTS = {
    "nchw": None,  # the control: the unmutated pipeline
    "channels_last_features": ChannelsLastFeatures,
    "channels_last_model": channels_last_model,
}


class Case:
    """One device's model, image and stock reference, and each base variant's result, built once."""

    def __init__(self, device: str):
        self.size = SIZES[device]
        self.suite = Suite(device)
        self.image = self.suite.image(IMAGE, self.size)
        self.reference = self.suite.reference(self.size, IMAGE)
        assert len(self.reference) > 0, "stock found nothing: parity would be vacuous"
        self._results: dict = {}

    def build(self, variant: Variant):
        return variant.build(self.suite.base, self.size)

    def result(self, variant: Variant):
        if variant not in self._results:  # each pipeline runs once per module
            self._results[variant] = self.build(variant)(self.image)
        return self._results[variant]

    def parity(self, result, label: str, record):
        report = compare(self.reference, Detections.from_mmdet(result, self.image.shape))
        print(f"\n{label}: {report}")
        for key, value in report.as_dict().items():
            record(key, value)
        return report

    def rule_failures(self, base: Variant, report) -> list[str]:
        """Why ``report`` fails the suite's rule for synthetic weights (the deviations stock accepts)."""
        return report.failures_against_spreads(self.suite.accepted_deviations(base, self.size, IMAGE))


@pytest.fixture(scope="module")
def cases():
    """Case by device, each built on first use (a plain cache: pytest's parametrized fixtures
    would rebuild the model whenever test order interleaves parameters)."""
    return functools.lru_cache(maxsize=None)(Case)


@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("device, base", BASES)
def test_output_mutation_fails_parity(cases, device, base, mutation, record_property):
    case = cases(device)
    report = case.parity(mutation(case.result(base)), f"{base.name} {mutation.__name__}", record_property)
    failures = case.rule_failures(base, report)
    if mutation is identity:
        assert report.passes() and not failures, f"the unmutated pipeline must pass: {report}; {failures}"
    else:
        assert not report.passes(), f"parity missed {mutation.__name__}: {report}"
        assert failures, f"the rule against stock's own deviations missed {mutation.__name__}: {report}"


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("device, base", BASES)
def test_channels_last_fails_parity(cases, device, base, layout, record_property):
    """Features in channels_last reach mmcv's RoIAlign, which reads memory as NCHW: the boxes and
    masks come from scrambled features, silently (no error, still detections)."""
    case = cases(device)
    convert = LAYOUTS[layout]
    result = case.result(base) if convert is None else convert(case.build(base))(case.image)
    report = case.parity(result, f"{base.name} {layout}", record_property)
    failures = case.rule_failures(base, report)
    if convert is None:
        assert report.passes() and not failures, f"the unmutated pipeline must pass: {report}; {failures}"
    else:
        assert report.candidate > 0, "expected a silent failure: detections, just wrong ones"
        assert not report.passes(), f"parity missed {layout}: {report}"
        assert failures, f"the rule against stock's own deviations missed {layout}: {report}"
        assert report.matched_fraction < 0.5, f"most detections should be lost: {report}"


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_cuda)])
def test_mmcv_roi_align_reads_channels_last_as_nchw(device):
    """Documents the op behind the pitfall, on each device: mmcv 1.7.2's RoIAlign ignores strides
    (CPU and CUDA alike), and a ``.contiguous()`` before it is the fix."""
    from mmcv.ops import RoIAlign

    x = torch.randn(1, 16, 40, 56, generator=torch.Generator().manual_seed(0)).to(device)
    rois = torch.tensor([[0, 2.0, 3.0, 30.0, 20.0], [0, 10.0, 5.0, 50.0, 38.0]], device=device)
    op = RoIAlign((7, 7), spatial_scale=1.0, sampling_ratio=0, aligned=True)
    expected = op(x, rois)
    channels_last = x.contiguous(memory_format=torch.channels_last)
    assert not torch.allclose(op(channels_last, rois), expected), \
        "mmcv's RoIAlign now honours channels_last: update docs/parity.md"
    torch.testing.assert_close(op(channels_last.contiguous(), rois), expected)


def test_parity_with_a_checkpoint_file(cases, tmp_path):
    """The --checkpoint path end to end: an mmdet-style checkpoint of the synthetic weights loads
    into the same stock results, and a variant built on it passes parity."""
    case = cases("cpu")
    path = tmp_path / "mask_rcnn_r50_fpn_synthetic.pth"
    base = case.suite.base
    torch.save({"state_dict": base.state_dict(),
                "meta": {"CLASSES": tuple(base.CLASSES), "mmdet_version": "2.28.2"}}, path)
    loaded = Suite("cpu", checkpoint=str(path))
    reference = loaded.reference(case.size, IMAGE)
    same = compare(case.reference, reference)
    assert same.matched_fraction == 1.0 and same.mask_iou_min == 1.0, f"checkpoint changed stock: {same}"
    assert (reference.boxes == case.reference.boxes).all() and (reference.scores == case.reference.scores).all()
    variant = CPU_BASES[1]
    candidate = Detections.from_mmdet(variant.build(loaded.base, case.size)(case.image), case.image.shape)
    report = compare(reference, candidate)
    assert report.passes(), f"{variant.name} on the checkpoint: {report}"
