"""Where the first call of a new shape goes, for inference_graph: plan build, eager pass, capture, replay.

    python tools/first_call_cost.py [--scale 1333x800] [--sizes 4032x3024,640x480,1920x1080,3000x2000]

Part 1 builds one network plan by hand and times each part of its first call. Part 2 runs the
pipeline on photos in order and prints each call's time, saying what the call had to build.
"""
import argparse
import dataclasses

import torch

from mmdet_opt.arguments import parse_size
from mmdet_opt.gpu_preprocess import image_metas
from mmdet_opt.graphed.input_plan import HostStaging, InputPlan
from mmdet_opt.graphed.plan import NetworkPlan, capture_steps
from mmdet_opt.images import resize_to, sample_image
from mmdet_opt.suite.session import Suite
from mmdet_opt.suite.timing import timed


def plan_parts(pipe, image):
    """A fresh network plan for ``image``'s padded shape, each part of its first call timed (ms)."""
    h, w = image.shape[:2]
    pad_h, pad_w, _ = image_metas(pipe.spec, h, w)["pad_shape"]
    eager = dataclasses.replace(pipe.options, graphs=False)
    parts = {}
    pool = torch.cuda.graph_pool_handle()
    plan, parts["buffers, anchors, selectors"] = timed(
        lambda: NetworkPlan(pipe.model, pipe.net, pipe.spec, eager, pad_h, pad_w, pool=pool))

    def photo_plan(options):
        return InputPlan(pipe.spec, options, h, w, (pad_h, pad_w), pipe.device, HostStaging(True), pool)

    photo, parts["photo: upload buffer, resize tables"] = timed(lambda: photo_plan(eager))
    with torch.no_grad():
        img, parts["eager: preprocess"] = timed(lambda: photo.preprocess(image, plan))
        feats, parts["eager: features"] = timed(lambda: plan.steps.features(img))
        props, parts["eager: proposals"] = timed(lambda: plan.steps.proposals(feats))
        bbox, parts["eager: bbox head"] = timed(lambda: plan.steps.bbox_forward(props.rois))
        _, parts["eager: detections"] = timed(lambda: plan.steps.detections(props, bbox))
        _, parts["eager: mask head"] = timed(lambda: plan.steps.mask_forward(plan.mask_rois, plan.mask_labels))
    captured = dataclasses.replace(pipe.options, warmup_calls=0)  # the eager pass above was the warm-up
    _, parts["capture 5 network graphs (no warm-up)"] = timed(lambda: capture_steps(plan, captured, pool))
    _, parts["capture preprocess graph (no warm-up)"] = timed(lambda: photo_plan(captured).steps(plan, 0))
    return parts


def main():
    parser = argparse.ArgumentParser(prog="python tools/first_call_cost.py", description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="1333x800", type=parse_size)
    parser.add_argument("--sizes", default="4032x3024,640x480,1920x1080,3000x2000,1080x1920,2048x2048",
                        type=lambda s: [parse_size(p) for p in s.split(",")])
    parser.add_argument("--warmup-calls", type=int, default=None, help="GraphOptions.warmup_calls (default: its own)")
    parser.add_argument("--unfused", action="store_true", help="GraphOptions.fused_convs=False (no fusion kernels)")
    args = parser.parse_args()
    suite = Suite("cuda")
    variant = suite.variant("inference_graph")
    if args.warmup_calls is not None:
        variant = dataclasses.replace(variant, graph=dataclasses.replace(variant.graph, warmup_calls=args.warmup_calls))
    if args.unfused:
        unfused = dataclasses.replace(variant.graph, fused_convs=False, fp16_mask_head=False)  # that head runs fused
        variant = dataclasses.replace(variant, graph=unfused)
    photo = sample_image("astronaut")
    images = {size: resize_to(photo, size) for size in args.sizes}
    pipe = suite.pipeline(variant, args.scale)
    warm = resize_to(photo, (777, 555))  # process-wide lazy initialisation, before anything is timed
    pipe(warm)

    print(f"## First call of a new network shape, by part ({torch.cuda.get_device_name()}, {variant.graph})")
    for part, ms in plan_parts(pipe, images[args.sizes[0]]).items():
        print(f"  {part:45s} {ms:8.2f} ms")

    print("\n## The pipeline on photos in order (each size twice in a row, then all again)")
    print(f"  {'photo':>10s} {'network':>9s} {'call':>5s} {'built':>16s} {'ms':>8s}")
    for rnd in range(2):
        for size, image in images.items():
            for call in range(1 if rnd else 2):
                plans, photos = pipe.shapes.networks.misses, pipe.shapes.photos.misses
                _, ms = timed(lambda image=image: pipe(image))
                built = ("network plan" if pipe.shapes.networks.misses > plans else
                         "photo size" if pipe.shapes.photos.misses > photos else "-")
                pad = image_metas(pipe.spec, *image.shape[:2])["pad_shape"]
                print(f"  {size[0]:>5d}x{size[1]:<4d} {pad[1]:>4d}x{pad[0]:<4d} {call + 1 + 2 * rnd:>5d} "
                      f"{built:>16s} {ms:8.2f}")


if __name__ == "__main__":
    main()
