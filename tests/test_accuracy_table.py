"""The report's accuracy table, from runs made by hand."""
import pytest

from mmdet_opt.suite.accuracy import accuracy_markdown
from mmdet_opt.suite.report import ReportError, markdown


def accuracy_bench(variant: str, segm: float, images_per_s: float, stock_segm: float | None = None) -> dict:
    figures = {"scenes": 8, "scored": 8, "bbox_mAP": 0.8, "segm_mAP": segm, "images_per_s": images_per_s}
    if stock_segm is not None:
        figures["delta_segm_mAP"] = segm - stock_segm
    return {"name": f"test_accuracy[{variant}]", "stats": {"median": 10.0},
            "extra_info": {"variant": variant, "scale": "640x384", "accuracy": figures}}


RUN = {"machine_info": {"device": "cpu"}, "benchmarks": [
    accuracy_bench("inference", 0.75, 0.5),
    accuracy_bench("inference_graph_eager_fp32", 0.7512, 0.61, stock_segm=0.75),
    {"name": "test_stream[inference]", "stats": {"median": 1.0},
     "extra_info": {"variant": "inference", "stream": 6}},
]}


def test_a_row_per_variant_with_its_difference_from_stock():
    lines = accuracy_markdown(RUN)
    assert lines[0] == "### Accuracy: COCO mAP on 8 held-out scenes (trained model)"
    assert "| inference | 0.50 | 0.8000 | 0.7500 |  |" in lines
    assert "| inference_graph_eager_fp32 | 0.61 | 0.8000 | 0.7512 | +0.0012 |" in lines
    assert lines[-1] == ""


def test_a_run_without_accuracy_rows_has_no_table():
    assert accuracy_markdown({"benchmarks": RUN["benchmarks"][2:]}) == []


def test_the_report_shows_the_table_of_an_accuracy_only_run():
    assert "### Accuracy" in markdown(RUN)
    with pytest.raises(ReportError):  # nothing the report could show
        markdown({"benchmarks": RUN["benchmarks"][2:]})
