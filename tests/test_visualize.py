"""python -m mmdet_opt.suite.visualize: the side-by-side PNG, the drawing, and its error messages."""
import cv2
import numpy as np
import pytest
import torch

from mmdet_opt.images import resize_to, sample_image
from mmdet_opt.paste import box_regions, paste_masks
from mmdet_opt.results import Detections
from mmdet_opt.suite.visualize import SEPARATOR, VisualizeError, draw, main, resolve_variant

W, H = 320, 192


@pytest.fixture(scope="module")
def picture(tmp_path_factory):
    """The raw-mask variant's fp32 composition against stock, on CPU: exact, so panels must agree."""
    out = tmp_path_factory.mktemp("vis") / "side.png"
    argv = ["--variant", "inference_raw_mask", "--fp32", "--device", "cpu", "--image", "astronaut",
            "--size", f"{W}x{H}", "--score-thr", "0.3", "--out", str(out)]
    assert main(argv) == 0
    return cv2.imread(str(out))


def test_png_holds_two_panels_side_by_side(picture):
    assert picture.shape[1] == 2 * W + SEPARATOR
    assert picture.shape[0] > H  # panels under a title bar


def test_exact_variant_draws_the_same_panel_as_stock(picture):
    left, right = picture[-H:, :W], picture[-H:, W + SEPARATOR:]
    assert np.array_equal(left, right)
    # ... and the panel is not just the image: detections were drawn on it.
    changed = (left != resize_to(sample_image("astronaut"), (W, H))).any(axis=2).mean()
    assert changed > 0.05, f"only {changed:.1%} of pixels drawn on"
    # The titles differ (stock's vs the variant's name and parity figures).
    assert not np.array_equal(picture[:-H, :W], picture[:-H, W + SEPARATOR:])


def hand_made(n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * torch.tensor([W - 80, H - 80])
    boxes = torch.cat([xy, xy + 20 + torch.rand(n, 2, generator=g) * 50], 1).numpy()
    raw = (torch.randn(n, 28, 28, generator=g) * 4).sigmoid().numpy()
    labels, scores = np.arange(n) % 3, np.linspace(0.9, 0.5, n, dtype=np.float32)
    full = paste_masks(raw, boxes, H, W).numpy()
    return (Detections(boxes, scores, labels, full, (H, W)),
            Detections(boxes, scores, labels, raw, (H, W), raw_masks=True))


def test_raw_masks_draw_like_their_pasted_full_masks():
    image = resize_to(sample_image("coffee"), (W, H))
    stock, raw = hand_made()
    assert np.array_equal(draw(image, stock, ["a", "b", "c"], 0.3), draw(image, raw, ["a", "b", "c"], 0.3))


def test_panels_differ_only_where_the_detections_do():
    """Masks transposed, boxes and labels kept: the panels may differ inside the boxes only."""
    image = resize_to(sample_image("coffee"), (W, H))
    stock, raw = hand_made()
    raw.masks = raw.masks.transpose(0, 2, 1).copy()
    diff = (draw(image, stock, ["a", "b", "c"], 0.0) != draw(image, raw, ["a", "b", "c"], 0.0)).any(axis=2)
    inside = np.zeros_like(diff)
    for x0, y0, x1, y1 in box_regions(stock.boxes, H, W):
        inside[y0:y1, x0:x1] = True
    assert diff.any() and not (diff & ~inside).any()


def test_score_threshold_above_every_score_draws_nothing():
    image = resize_to(sample_image("coffee"), (W, H))
    stock, _ = hand_made()
    assert np.array_equal(draw(image, stock, ["a", "b", "c"], 1.01), image)


@pytest.mark.parametrize("argv, message", [
    (["--image", "/no/such/image.png"], "neither a file nor a sample"),
    (["--size", "20x10"], "not WIDTHxHEIGHT"),
    (["--device", "tpu"], "not cpu, cuda or cuda:N"),
    (["--variant", "nope"], "unknown variant"),
    (["--variant", "inference_fp16", "--device", "cpu"], "CUDA-only"),
    (["--checkpoint", "/no/such/weights.pth"], "no such file"),
    (["--checkpoint", "ftp://127.0.0.1/weights.pth"], "only http:// and https://"),
])
def test_bad_options_are_one_line_errors(argv, message, tmp_path, capsys):
    # Defaults that are valid here first: argparse keeps the last of repeated options.
    assert main(["--device", "cpu", "--variant", "inference", *argv, "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("what", ["image", "checkpoint"])
def test_unreadable_files_are_one_line_errors(what, tmp_path, capsys):
    bad = tmp_path / ("bad.png" if what == "image" else "bad.pth")
    bad.write_bytes(b"not what the name says")
    argv = ["--device", "cpu", "--variant", "inference", "--size", "64x64", f"--{what}", str(bad),
            "--out", str(tmp_path / "x.png")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and bad.name in err and "Traceback" not in err


def test_on_a_cpu_a_variant_is_drawn_as_its_cpu_composition_saying_so(capsys):
    variant = resolve_variant("inference_raw_mask", fp32=False, device="cpu")
    assert not variant.fp16 and variant.raw_mask and variant.name == "inference_raw_mask_fp32"
    note = capsys.readouterr().err.splitlines()
    assert len(note) == 1 and "inference_raw_mask_fp32" in note[0] and "cpu" in note[0]
    # Asked for, it is no news.
    assert resolve_variant("inference_raw_mask", fp32=True, device="cpu") == variant
    assert capsys.readouterr().err == ""
    graph = resolve_variant("inference_graph", fp32=False, device="cpu")
    assert graph.name == "inference_graph_eager_fp32" and not graph.needs_cuda
    # A variant that is nothing but fp16 has no CPU composition: one line says why.
    with pytest.raises(VisualizeError, match="CUDA-only"):
        resolve_variant("inference_fp16", fp32=False, device="cpu")


def test_a_held_out_scene_is_an_image_name_here_too():
    """``--image scene0`` as in the suite's --parity-images: drawn at the requested size."""
    from mmdet_opt.suite.visualize import load_image

    assert load_image("scene0", (320, 192)).shape == (192, 320, 3)
