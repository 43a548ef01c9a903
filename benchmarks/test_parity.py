"""Every variant must give stock mmdet's masks: matched fraction and mean mask IoU per image.

With a checkpoint (trained weights) the fixed thresholds apply. On the default synthetic weights,
whose masks rounding alone moves (docs/parity.md), a variant is judged against the deviations from
stock that mmdet users already accept, measured on the same case (``Suite.accepted_deviations``):
stock's own TF32 spread and, for a variant that computes in fp16, stock's own fp16. It may be at most
the margin further than the worse of the two.
"""
from mmdet_opt.parity import compare
from mmdet_opt.suite.session import FP16_SPREAD, TF32_SPREAD


def test_parity(suite, variant, case, image_name, settings, record_property, parity_records):
    reference = suite.reference(case, image_name)
    assert len(reference) > 0, f"stock found nothing on {image_name}: parity would be vacuous"
    report = compare(reference, suite.detections(variant, case, image_name))
    spreads = suite.accepted_deviations(variant, case, image_name)
    print(f"\nparity {variant.name} {case} {image_name}: {report}\n  "
          + "; ".join(f"{name}: {spread.brief()}" for name, spread in spreads.items()))
    for key, value in report.as_dict().items():
        record_property(key, value)
    record_property("spread", spreads[TF32_SPREAD].brief())
    record = {"variant": variant.name, "size": case.id, "image": image_name, **report.as_dict(),
              "spread": spreads[TF32_SPREAD].as_dict()}
    if FP16_SPREAD in spreads:
        record["fp16_spread"] = spreads[FP16_SPREAD].as_dict()
    parity_records.append(record)
    if settings.fixed_thresholds:
        assert report.matched_fraction >= settings.min_matched, str(report)
        assert report.mask_iou_mean >= settings.min_mask_iou, str(report)
    else:
        failures = report.failures_against_spreads(spreads)
        assert not failures, f"{report}; " + "; ".join(failures)
