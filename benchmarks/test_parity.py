"""Every variant must give stock mmdet's masks: matched fraction and mean mask IoU per image."""

from mmdet_opt.parity import compare


def test_parity(suite, variant, size, image_name, settings, record_property):
    reference = suite.reference(size, image_name)
    assert len(reference) > 0, f"stock found nothing on {image_name}: parity would be vacuous"
    report = compare(reference, suite.detections(variant, size, image_name))
    print(f"\nparity {variant.name} {size[0]}x{size[1]} {image_name}: {report}")
    for key, value in report.as_dict().items():
        record_property(key, value)
    assert report.matched_fraction >= settings.min_matched, str(report)
    assert report.mask_iou_mean >= settings.min_mask_iou, str(report)
