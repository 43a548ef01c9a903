import torch

from mmdet_opt import inference_detector, init_detector

# config: an mmdet 2.x config file (None: mmdet's mask_rcnn_r50_fpn_2x_coco); checkpoint: a file, an http(s) URL,
# "trained" (the project's own model) or None (seeded synthetic weights). On a CPU the variant runs in fp32, eagerly.
device = "cuda:0" if torch.cuda.is_available() else "cpu"
det = init_detector(config=None, checkpoint="trained", device=device, variant="inference_graph")
bbox_result, segm_result = det("photo.jpg")  # exactly what mmdet.apis.inference_detector returns
for name, boxes, masks in zip(det.CLASSES, bbox_result, segm_result):
    for (x1, y1, x2, y2, score), mask in zip(boxes, masks):
        print(f"{name}: {score:.2f} at ({x1:.0f}, {y1:.0f})-({x2:.0f}, {y2:.0f}), {mask.sum()} pixels")
results = inference_detector(det, ["photo.jpg", "photo.jpg"])  # a list in, a list out (one batch)
