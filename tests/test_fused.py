"""The cuDNN-fused forwards compute what mmdet's modules compute (CUDA; strict fp32 for the check)."""
import copy
import dataclasses

import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from mmdet_opt.graphed import capture
from mmdet_opt.graphed.feature_net import FeatureNet
from mmdet_opt.graphed.fused import (
    FusedResNet,
    fold_batchnorm,
    fpn_forward,
    half_mask_head,
    mask_head_forward,
    rpn_head_forward,
)
from mmdet_opt.graphed.options import GraphOptions

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.fixture
def strict_fp32():
    """TF32 off, so that only summation order separates the fused kernels from mmdet's."""
    with capture.strict_fp32(deterministic=True):
        yield


def random_input(*shape, device="cuda"):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(0)).to(device)


@needs_cuda
@torch.no_grad()
def test_fused_resnet_is_mmdets_resnet(small_base_model, strict_fp32):
    backbone = copy.deepcopy(small_base_model.backbone).cuda()
    backbone.eval()  # mmdet's ResNet.train returns None: no chaining
    fused = FusedResNet(fold_batchnorm(copy.deepcopy(backbone)))
    assert fused.fusable
    x = random_input(1, 3, 192, 320)
    for got, expected in zip(fused(x), backbone(x), strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


@needs_cuda
@torch.no_grad()
def test_fused_rpn_head_is_mmdets(small_base_model, strict_fp32):
    rpn_head = copy.deepcopy(small_base_model.rpn_head).cuda().eval()
    feats = [random_input(1, 256, 48 // 2**i, 80 // 2**i) for i in range(5)]
    got, expected = rpn_head_forward(rpn_head, feats), rpn_head(feats)
    for got_level, expected_level in zip(got[0] + got[1], expected[0] + expected[1], strict=True):
        torch.testing.assert_close(got_level, expected_level, rtol=1e-4, atol=1e-4)


@needs_cuda
@torch.no_grad()
def test_fused_mask_head_is_mmdets(small_base_model, strict_fp32):
    mask_head = copy.deepcopy(small_base_model.roi_head.mask_head).cuda().eval()
    x = random_input(20, 256, 14, 14)
    torch.testing.assert_close(mask_head_forward(mask_head, x), mask_head(x), rtol=1e-4, atol=1e-4)


def test_half_mask_head_casts_the_convolutions_not_the_logits(small_base_model):
    mask_head = copy.deepcopy(small_base_model.roi_head.mask_head)
    half_mask_head(mask_head)
    assert {p.dtype for p in mask_head.convs.parameters()} == {torch.float16}
    assert {p.dtype for p in mask_head.upsample.parameters()} == {torch.float16}
    assert {p.dtype for p in mask_head.conv_logits.parameters()} == {torch.float32}
    normed = copy.deepcopy(small_base_model.roi_head.mask_head)
    normed.convs[0].with_norm = True  # a head the fused path does not run
    with pytest.raises(ValueError, match="plain conv"):
        half_mask_head(normed)


def test_each_pipelines_mask_head_is_its_own(small_base_model):
    """Pipelines over one model keep their own mask heads, each in its options' precision."""
    cpu = GraphOptions().eager_fp32()
    half = FeatureNet(small_base_model, dataclasses.replace(cpu, fp16_mask_head=True))
    full = FeatureNet(small_base_model, cpu)
    assert half.mask_head.convs[0].conv.weight.dtype == torch.float16
    assert full.mask_head.convs[0].conv.weight.dtype == torch.float32
    assert small_base_model.roi_head.mask_head.convs[0].conv.weight.dtype == torch.float32
    with pytest.raises(ValueError, match="fused_convs"):
        FeatureNet(small_base_model, dataclasses.replace(cpu, fp16_mask_head=True, fused_convs=False))


@needs_cuda
@torch.no_grad()
def test_half_mask_head_gives_the_fp32_heads_logits_within_fp16_rounding(small_base_model):
    mask_head = copy.deepcopy(small_base_model.roi_head.mask_head).cuda().eval()
    x = random_input(100, 256, 14, 14)
    expected = mask_head_forward(mask_head, x)
    half_mask_head(mask_head)
    got = mask_head_forward(mask_head, x)
    assert got.dtype == torch.float32
    scale = expected.abs().max()
    torch.testing.assert_close(got, expected, rtol=0, atol=float(scale) * 5e-3)
    assert ((got > 0) == (expected > 0)).float().mean() > 0.999  # the masks, thresholded at 0.5


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_cuda)])
@pytest.mark.parametrize("shape", [(192, 320), (200, 336)])  # 200 / 32 is not whole: interpolation path
@torch.no_grad()
def test_fpn_forward_is_mmdets(small_base_model, device, shape, strict_fp32):
    neck = copy.deepcopy(small_base_model.neck).to(device).eval()
    h, w = shape
    feats = [random_input(1, c, -(-h // s), -(-w // s), device=device)
             for c, s in zip(neck.in_channels, (4, 8, 16, 32))]
    expected, got = neck(feats), fpn_forward(neck, feats)
    assert len(got) == len(expected) == neck.num_outs
    for got_level, expected_level in zip(got, expected, strict=True):
        torch.testing.assert_close(got_level, expected_level, rtol=1e-4, atol=1e-4)


def test_mixed_precision_stages_need_the_fused_path(small_base_model):
    unfused = FusedResNet(fold_batchnorm(copy.deepcopy(small_base_model.backbone)), fused=False)
    assert not unfused.fusable
    with pytest.raises(ValueError, match="fused ResNet path"):
        unfused.keep_float32_from(2)


@needs_cuda
@torch.no_grad()
def test_unfused_convs_call_no_fused_kernel_and_agree(small_base_model, strict_fp32, monkeypatch):
    """``GraphOptions.fused_convs=False``: the backbone, RPN head and mask head run as mmdet's modules."""
    backbone = copy.deepcopy(small_base_model.backbone).cuda()
    backbone.eval()  # mmdet's ResNet.train returns None: no chaining
    fused = FusedResNet(fold_batchnorm(copy.deepcopy(backbone)))
    x = random_input(1, 3, 192, 320)
    expected = fused(x)
    rpn_head = copy.deepcopy(small_base_model.rpn_head).cuda().eval()
    mask_head = copy.deepcopy(small_base_model.roi_head.mask_head).cuda().eval()
    rois = random_input(20, 256, 14, 14)
    expected_masks = mask_head_forward(mask_head, rois)

    def refuse(*args, **kwargs):
        raise AssertionError("a fused cuDNN kernel was called")

    monkeypatch.setattr(torch, "cudnn_convolution_relu", refuse)
    monkeypatch.setattr(torch, "cudnn_convolution_add_relu", refuse)
    unfused = FusedResNet(fold_batchnorm(copy.deepcopy(backbone)), fused=False)
    for got, want in zip(unfused(x), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    feats = [random_input(1, 256, 48 // 2**i, 80 // 2**i) for i in range(5)]
    scores, _ = rpn_head_forward(rpn_head, feats, fused=False)
    assert len(scores) == len(feats)
    torch.testing.assert_close(mask_head_forward(mask_head, rois, fused=False), expected_masks, rtol=1e-4, atol=1e-4)


def unfolded_options(**changes):
    return dataclasses.replace(GraphOptions(), graphs=False, fold_batchnorm=False, **changes)


def test_unfolded_batchnorm_runs_in_fp32_beside_fp16_convolutions(small_base_model):
    """``GraphOptions.fold_batchnorm=False``: BatchNorm stays a module, in fp32, and the backbone unfused."""
    net = FeatureNet(small_base_model, unfolded_options())
    norms = [m for m in net.backbone.modules() if isinstance(m, _BatchNorm)]
    convs = [m for m in net.backbone.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(norms) == len(convs) == 53  # ResNet-50: every conv has its BatchNorm
    assert all(m.weight.dtype == m.running_var.dtype == torch.float32 for m in norms)
    assert all(m.weight.dtype == torch.float16 for m in convs)
    assert not net.backbone.fusable


@needs_cuda
@torch.no_grad()
def test_unfolded_fp16_backbone_agrees_with_fp32(small_base_model):
    model = copy.deepcopy(small_base_model).cuda().eval()
    x = random_input(1, 3, 192, 320)
    exact = FeatureNet(model, GraphOptions().eager_fp32()).eval()
    half = FeatureNet(model, unfolded_options()).eval()
    for got, want in zip(half.backbone_stages(x), exact.backbone_stages(x), strict=True):
        assert got.dtype == torch.float16
        assert ((got.float() - want).norm() / want.norm()).item() < 1e-2
