"""One RoIAlign over the FPN levels laid side by side gives mmdet's per-level extraction."""
import pytest
import torch
from mmdet.models.builder import build_roi_extractor

from mmdet_opt.graphed.level_canvas import LevelCanvas

STRIDES = [4, 8, 16, 32]
PAD_H, PAD_W = 544, 928  # image 540x900 (level 3 needs boxes over 448 px), padded to 32
IMG_H, IMG_W = 540, 900


# Not bit-exact: a RoI's sampling points are computed in canvas coordinates (up to ~500 here),
# so they move by up to half an fp32 ulp there (3e-5 px); over unit-variance noise features that
# changes values by ~1e-4 at most.
TOLERANCE = dict(rtol=1e-4, atol=2e-4)


def extractor(output_size: int):
    return build_roi_extractor(dict(
        type="SingleRoIExtractor", roi_layer=dict(type="RoIAlign", output_size=output_size, sampling_ratio=0),
        out_channels=8, featmap_strides=STRIDES)).eval()


def level_sizes():
    return [(-(-PAD_H // s), -(-PAD_W // s)) for s in STRIDES]


def features(seed: int):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(1, 8, h, w, generator=g) for h, w in level_sizes()]


def rois_inside_image(seed: int, n: int = 300):
    """Boxes of every size (so every level), some touching the image edges, some zero (padding)."""
    g = torch.Generator().manual_seed(seed)
    wh = torch.exp(torch.rand(n, 2, generator=g) * 6) * torch.tensor([IMG_W, IMG_H]) / 400
    xy = torch.rand(n, 2, generator=g) * torch.tensor([IMG_W, IMG_H])
    boxes = torch.cat([xy - wh / 2, xy + wh / 2], 1)
    boxes[::7, :2] = 0  # top-left corner on the image edge
    boxes[1::7, 2:] = torch.tensor([IMG_W, IMG_H], dtype=torch.float32)  # bottom-right corner on it
    boxes[2::11] = 0  # zero-padding rows of the static RoI buffers
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, IMG_W)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, IMG_H)
    return torch.cat([torch.zeros(n, 1), boxes], 1)


@pytest.mark.parametrize("output_size", [7, 14])
@pytest.mark.parametrize("seed", [0, 1])
def test_canvas_extraction_is_mmdets(output_size, seed):
    ext, feats, rois = extractor(output_size), features(seed), rois_inside_image(seed)
    levels = ext.map_roi_levels(rois, len(STRIDES))
    assert set(levels.tolist()) == {0, 1, 2, 3}, "the RoIs should reach every level"
    canvas = LevelCanvas(level_sizes(), STRIDES, 8, "cpu")
    canvas.fill(feats)
    torch.testing.assert_close(canvas.extract(ext, rois), ext(feats, rois), **TOLERANCE)


def test_canvas_takes_half_precision_channels_last_levels():
    """The copy into the canvas converts dtype and memory format: the values are the fp32 ones."""
    ext, rois = extractor(7), rois_inside_image(2)
    feats = [f.half() for f in features(2)]
    canvas = LevelCanvas(level_sizes(), STRIDES, 8, "cpu")
    canvas.fill([f.contiguous(memory_format=torch.channels_last) for f in feats])
    expected = ext([f.float() for f in feats], rois)
    torch.testing.assert_close(canvas.extract(ext, rois), expected, **TOLERANCE)


def test_canvas_rejects_an_extractor_of_other_strides():
    canvas = LevelCanvas(level_sizes(), [8, 16, 32, 64], 8, "cpu")
    with pytest.raises(ValueError, match="strides"):
        canvas.extract(extractor(7), rois_inside_image(0, 10))


def test_a_batched_canvas_extracts_each_rois_own_image():
    """Batch of two (a NetworkPlan of batch 2), fp16 channels_last levels: column 0 of a RoI picks its image."""
    ext = extractor(7)
    first, second = ([f.half() for f in features(seed)] for seed in (3, 4))
    canvas = LevelCanvas(level_sizes(), STRIDES, 8, "cpu", batch=2)
    canvas.fill([torch.cat([a, b]).contiguous(memory_format=torch.channels_last) for a, b in zip(first, second)])
    rois = rois_inside_image(5, 100)
    on_second = rois.clone()
    on_second[:, 0] = 1
    got = canvas.extract(ext, torch.cat([rois, on_second]))
    torch.testing.assert_close(got[:100], ext([f.float() for f in first], rois), **TOLERANCE)
    torch.testing.assert_close(got[100:], ext([f.float() for f in second], rois), **TOLERANCE)




def test_a_level_larger_than_the_images_extent_is_sampled_as_stock_samples_its_own():
    """pad_to_scale (extent.py): two images' levels sit in a larger input; framed at each image's
    extent, the canvas gives what extraction from levels of that extent gives, RoIs on its edges too.
    Framed at the larger levels' own edges instead, RoIs on the extent's edges read past it."""
    ext, rois = extractor(7), rois_inside_image(5)
    rois[:, 1:] *= torch.tensor([PAD_W / IMG_W, PAD_H / IMG_H] * 2)  # an image that fills its extent
    larger = [(h + 3, w + 5) for h, w in level_sizes()]  # the input is 96 x 160 px larger at least
    g = torch.Generator().manual_seed(5)
    feats = [torch.randn(2, 8, h, w, generator=g) for h, w in larger]
    framed, unframed = (LevelCanvas(larger, STRIDES, 8, "cpu", batch=2) for _ in range(2))
    framed.fill(feats, extents=torch.tensor([[PAD_H, PAD_W]] * 2))
    unframed.fill(feats)
    for image in (0, 1):
        own = [f[image:image + 1, :, :h, :w].contiguous() for f, (h, w) in zip(feats, level_sizes())]
        expected = ext(own, rois)  # column 0 is 0: the one image of ``own``
        image_rois = torch.cat([torch.full((len(rois), 1), float(image)), rois[:, 1:]], 1)
        torch.testing.assert_close(framed.extract(ext, image_rois), expected, **TOLERANCE)
        off = (unframed.extract(ext, image_rois) - expected).abs().amax((1, 2, 3))
        assert (off > 0.1).sum() >= 3, "RoIs on the extent's edges should read past it without the frame"
