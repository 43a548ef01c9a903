"""Every variant must give stock mmdet's masks: matched fraction and mean mask IoU per image.

With a checkpoint (trained weights) the fixed thresholds apply. On the default synthetic weights,
whose masks rounding alone moves (docs/parity.md), a variant is judged against stock's own
rounding spread: stock as it runs against stock in strict fp32, measured on the same case.
"""
from mmdet_opt.parity import compare


def test_parity(suite, variant, case, image_name, settings, record_property, parity_records):
    reference = suite.reference(case, image_name)
    assert len(reference) > 0, f"stock found nothing on {image_name}: parity would be vacuous"
    report = compare(reference, suite.detections(variant, case, image_name))
    spread = compare(reference, suite.reference(case, image_name, exact=True))
    print(f"\nparity {variant.name} {case} {image_name}: {report}\n  stock's own spread: {spread.brief()}")
    for key, value in report.as_dict().items():
        record_property(key, value)
    record_property("spread", spread.brief())
    parity_records.append({"variant": variant.name, "size": case.id, "image": image_name,
                           **report.as_dict(), "spread": spread.as_dict()})
    if settings.fixed_thresholds:
        assert report.matched_fraction >= settings.min_matched, str(report)
        assert report.mask_iou_mean >= settings.min_mask_iou, str(report)
    else:
        failures = report.failures_against_spread(spread)
        assert not failures, f"{report}; " + "; ".join(failures)
