"""A Mask R-CNN of the project's own: synthetic scenes, COCO evaluation and the training recipe.

See docs/training.md. ``python -m mmdet_opt.training --out DIR`` trains and writes a partial
checkpoint that ``build_detector(checkpoint=...)`` loads over the seeded weights.
"""
