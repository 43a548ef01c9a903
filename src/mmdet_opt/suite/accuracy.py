"""The report's accuracy table: COCO mAP beside images/s per variant (``benchmarks/test_accuracy.py``)."""
from __future__ import annotations


def accuracy_rows(data: dict) -> list:
    """``[(variant, figures)]`` of a run's accuracy benchmarks, in run order."""
    return [(b["extra_info"].get("variant", "?"), b["extra_info"]["accuracy"]) for b in data["benchmarks"]
            if isinstance((b.get("extra_info") or {}).get("accuracy"), dict)]


def accuracy_markdown(data: dict) -> list:
    """The table's lines (none when the run has no accuracy benchmarks)."""
    rows = accuracy_rows(data)
    if not rows:
        return []
    scenes = sorted({f.get("scenes") for _, f in rows}, key=str)
    lines = [f"### Accuracy: COCO mAP on {' / '.join(map(str, scenes))} held-out scenes (trained model)", "",
             "| variant | images/s | bbox mAP | segm mAP | segm mAP - stock's |", "|---|---|---|---|---|"]
    for variant, f in rows:
        delta = f.get("delta_segm_mAP")  # stock's row has none
        lines.append(f"| {variant} | {f['images_per_s']:.2f} | {f['bbox_mAP']:.4f} | {f['segm_mAP']:.4f} | "
                     + (f"{delta:+.4f}" if delta is not None else "") + " |")
    return lines + [""]
