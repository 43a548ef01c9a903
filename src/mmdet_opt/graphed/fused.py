"""cuDNN-fused versions of mmdet's conv + ReLU modules, for inference.

PyTorch runs a conv with bias as the convolution plus a separate bias pass, and the ReLU after it
as another: two full passes over the output, each as costly as the convolution itself on a large
activation (3840x2304 input: hundreds of MB per FPN level). ``torch.cudnn_convolution_relu`` and
``torch.cudnn_convolution_add_relu`` do bias, residual add and ReLU inside the convolution.
Everything here falls back to the module's own forward off CUDA or for layouts it does not cover.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .bias_pass import add_upsampled_
from .extent import no_mask


@torch.no_grad()
def fold_batchnorm(backbone: nn.Module) -> nn.Module:
    """Fold each frozen BatchNorm into the convolution before it (in fp32, before any cast).

    Inference-only: one kernel less per conv, and no BatchNorm arithmetic rounded in fp16.
    Covers mmdet's ResNet layout: ``convN`` + ``normN_name`` pairs and ``downsample = (conv, bn)``.
    """

    def fold(conv: nn.Conv2d, bn) -> nn.Conv2d:
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                          conv.padding, conv.dilation, conv.groups, bias=True)
        fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        fused.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
        return fused.to(conv.weight.device)

    for module in backbone.modules():
        for i in (1, 2, 3):
            conv, norm_name = getattr(module, f"conv{i}", None), getattr(module, f"norm{i}_name", None)
            if isinstance(conv, nn.Conv2d) and norm_name:
                setattr(module, f"conv{i}", fold(conv, getattr(module, norm_name)))
                setattr(module, norm_name, nn.Identity())
        downsample = getattr(module, "downsample", None)
        if isinstance(downsample, nn.Sequential) and len(downsample) == 2:
            downsample[0] = fold(downsample[0], downsample[1])
            downsample[1] = nn.Identity()
    return backbone


def conv_relu(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    return torch.cudnn_convolution_relu(x, conv.weight, conv.bias, conv.stride, conv.padding,
                                        conv.dilation, conv.groups)


class FusedResNet(nn.Module):
    """A BatchNorm-folded mmdet ResNet whose conv + ReLU (and conv + residual add + ReLU) run as
    single cuDNN kernels: at 3840x2304 every separate ReLU or add is a full pass over a
    hundreds-of-MB activation. Falls back to the module's own forward off CUDA."""

    def __init__(self, resnet: nn.Module, fused: bool = True):
        super().__init__()
        from mmdet.models.backbones.resnet import Bottleneck

        self.resnet = resnet
        simple = not resnet.deep_stem and not any(
            getattr(m, "with_plugins", False) or getattr(m, "with_dcn", False) for m in resnet.modules())
        self.fusable = fused and simple
        # What _forward_plain rewrites: mmdet's forward of a ResNet of plain Bottleneck blocks.
        self.plain_bottlenecks = simple and all(isinstance(b, Bottleneck)
                                                for name in resnet.res_layers for b in getattr(resnet, name))

    def keep_float32_from(self, index: int):
        """Run the residual stages from ``index`` on in float32 (after the module was cast).

        The late stages are at low resolution, so fp32 costs little there, and their rounding
        reaches every FPN level through the top-down path.
        """
        if index < len(self.resnet.res_layers) and not self.fusable:
            raise ValueError("mixed-precision stages need the fused ResNet path (fused convolutions; no deep "
                             "stem, DCN or plugins)")
        for name in self.resnet.res_layers[index:]:
            getattr(self.resnet, name).float()

    def _block(self, block, x, mask):
        identity = x if block.downsample is None else block.downsample(x)
        out = conv_relu(block.conv2, mask(conv_relu(block.conv1, x)))
        c3 = block.conv3
        return torch.cudnn_convolution_add_relu(out, c3.weight, identity, 1.0, c3.bias, c3.stride,
                                                c3.padding, c3.dilation, c3.groups)

    def forward(self, x, mask=no_mask):
        """The residual stages' outputs; ``mask`` (extent.py) zeroes, before the stem's max-pool
        and each block's 3x3 convolution, what lies past each image's extent."""
        r = self.resnet
        if not (x.is_cuda and self.fusable):
            return r(x) if mask is no_mask else self._forward_plain(x, mask)
        x = r.maxpool(mask(conv_relu(r.conv1, x)))
        outs = []
        for i, name in enumerate(r.res_layers):
            layer = getattr(r, name)
            x = x.to(layer[0].conv1.weight.dtype)
            for block in layer:
                x = self._block(block, x, mask)
            if i in r.out_indices:
                outs.append(x)
        return tuple(outs)

    def _forward_plain(self, x, mask):
        """mmdet's ResNet forward (Bottleneck blocks) with the mask, for CPUs and unfused runs."""
        r = self.resnet
        if not self.plain_bottlenecks:
            raise NotImplementedError("a photo's extent inside a larger input (pad_to_scale) needs a ResNet of "
                                      "plain Bottleneck blocks")
        x = r.maxpool(mask(r.relu(r.norm1(r.conv1(x)))))
        outs = []
        for i, name in enumerate(r.res_layers):
            for b in getattr(r, name):
                identity = x if b.downsample is None else b.downsample(x)
                out = mask(b.relu(b.norm1(b.conv1(x))))
                out = b.norm3(b.conv3(b.relu(b.norm2(b.conv2(out)))))
                x = b.relu(out + identity)
            if i in r.out_indices:
                outs.append(x)
        return tuple(outs)


def rpn_head_forward(rpn_head, feats, fused: bool = True, mask=no_mask):
    """``RPNHead.forward``: per level ``rpn_conv`` + ReLU (fused on CUDA), then the two 1x1 heads;
    ``mask`` zeroes each level past the images' extents first (extent.py)."""
    if not isinstance(rpn_head.rpn_conv, nn.Conv2d):
        if mask is not no_mask:
            raise NotImplementedError("a photo's extent inside a larger input (pad_to_scale) needs an RPN head "
                                      "with one rpn_conv")
        return rpn_head(feats)
    cls_scores, bbox_preds = [], []
    for feat in feats:
        feat = mask(feat)
        if fused and feat.is_cuda:
            x = conv_relu(rpn_head.rpn_conv, feat)
        else:
            x = F.relu(rpn_head.rpn_conv(feat))
        cls_scores.append(rpn_head.rpn_cls(x))
        bbox_preds.append(rpn_head.rpn_reg(x))
    return cls_scores, bbox_preds


def mask_head_forward(mask_head, x, fused: bool = True):
    """``FCNMaskHead.forward`` with each ConvModule (conv + ReLU, no norm) as one fused kernel."""
    if not (x.is_cuda and fused and fusable(mask_head)):
        return mask_head(x)
    # One layout change here instead of cuDNN's NCHW <-> NHWC around every conv (keep the
    # head's weights in channels_last too, or cuDNN converts those on each call).
    x = x.to(mask_head.convs[0].conv.weight.dtype, memory_format=torch.channels_last)
    for module in mask_head.convs:
        x = conv_relu(module.conv, x)
    if mask_head.upsample is not None:
        x = mask_head.upsample(x)
        if mask_head.upsample_method == "deconv":
            x = mask_head.relu(x)
    return mask_head.conv_logits(x.to(mask_head.conv_logits.weight.dtype))


def fusable(mask_head) -> bool:
    """Whether the mask head's ConvModules are plain conv + ReLU, as ``mask_head_forward`` fuses them."""
    return all(not m.with_norm and m.with_activation and isinstance(m.activate, nn.ReLU)
               and m.order == ("conv", "norm", "act") for m in mask_head.convs)


def half_mask_head(mask_head) -> None:
    """Cast the mask head's convolutions and upsampling to fp16 in place; ``conv_logits`` stays fp32.

    Each fp16 convolution rounds its input to 11 significant bits, as TF32 does (the fp32 head's
    mode, ``GraphOptions.tf32``), and accumulates in fp32; what differs is that each layer's output
    is stored rounded, which the next layer's TF32 would round on reading anyway (up to exponent
    range). The logits, whose sign is the mask, are computed in fp32 from the last fp16 layer.
    Only ``mask_head_forward``'s fused path runs a head cast so.
    """
    if not fusable(mask_head):
        raise ValueError("fp16_mask_head needs a mask head of plain conv + ReLU modules (FCNMaskHead's)")
    mask_head.convs.half()
    if mask_head.upsample is not None:
        mask_head.upsample.half()


def fpn_forward(neck, feats, mask=no_mask, bias_pass: bool = False):
    """``FPN.forward`` (nearest top-down path, max-pool extra levels) with fewer full-size passes.

    mmdet adds each lateral's bias over the whole level, upsamples the coarser level into a new
    tensor, then adds the two. Here a lateral's bias is added to the coarser level instead (nearest
    upsampling repeats values, so it commutes with a per-channel constant), and the 2x upsample +
    add is one in-place broadcast add; with ``bias_pass`` (bias_pass.add_upsampled_) the coarse
    level's bias joins that pass. Same sums, in another order.
    """
    plain = all(not m.with_norm and not m.with_activation for m in (*neck.lateral_convs, *neck.fpn_convs))
    if neck.add_extra_convs or neck.upsample_cfg != dict(mode="nearest") or not plain:
        if mask is not no_mask:
            raise NotImplementedError("a photo's extent inside a larger input (pad_to_scale) needs a plain FPN "
                                      "(nearest upsampling, no extra convolutions, no norm or activation)")
        return neck(feats)
    inputs = feats[neck.start_level:neck.backbone_end_level]
    top = len(inputs) - 1
    laterals = [F.conv2d(x, m.conv.weight, None if i < top else m.conv.bias, m.conv.stride, m.conv.padding,
                         m.conv.dilation, m.conv.groups)
                for i, (x, m) in enumerate(zip(inputs, neck.lateral_convs))]
    for i in range(top, 0, -1):
        fine, coarse, bias = laterals[i - 1], laterals[i], neck.lateral_convs[i - 1].conv.bias
        (h, w), (ch, cw) = fine.shape[-2:], coarse.shape[-2:]
        if (h, w) == (2 * ch, 2 * cw):
            add_upsampled_(fine, coarse, bias, kernel=bias_pass)
        else:
            laterals[i - 1] = fine + F.interpolate(coarse + bias.view(1, -1, 1, 1), size=(h, w), mode="nearest")
    outs = [conv(mask(x)) for conv, x in zip(neck.fpn_convs, laterals)]
    for _ in range(neck.num_outs - len(outs)):
        outs.append(F.max_pool2d(outs[-1], 1, stride=2))
    return tuple(outs)
