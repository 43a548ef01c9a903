"""The stream benchmark's photo sizes and figures (no model: the benchmark itself runs in benchmarks/)."""
import pytest

from mmdet_opt.suite.report import stream_markdown
from mmdet_opt.suite.stream import StreamRun, stream_sizes


def orientation(size):
    w, h = size
    return "landscape" if w > h else "portrait" if h > w else "square"


def test_a_stream_looks_like_a_photo_collection():
    sizes = stream_sizes(200, distinct=60, seed=0)
    assert len(sizes) == 200 and len(set(sizes)) == 60
    assert {orientation(s) for s in sizes} == {"landscape", "portrait", "square"}
    assert all(320 <= max(s) <= 4032 for s in sizes)
    counts = sorted((sizes.count(s) for s in set(sizes)), reverse=True)
    assert counts[0] >= 10 and counts[-1] == 1  # common sizes repeat, rare ones appear once
    # New sizes keep arriving through the stream, not all at its start.
    first_seen = [i for i, s in enumerate(sizes) if s not in sizes[:i]]
    assert first_seen[-1] > 150
    assert stream_sizes(200, distinct=60, seed=0) == sizes and stream_sizes(200, distinct=60, seed=1) != sizes


def test_stream_sizes_refuses_an_impossible_mix():
    with pytest.raises(ValueError, match="cannot have"):
        stream_sizes(5, distinct=6)


def test_summary_splits_first_calls_by_whether_they_built_a_plan():
    run = StreamRun(planned=True)
    # (size, ms, first, new plan): A builds a plan, B reuses it, then both cached.
    for size, ms, first, new in [("A", 50, True, True), ("B", 9, True, False), ("A", 5, False, False),
                                 ("B", 6, False, False), ("A", 5, False, False)]:
        run.sizes.append(size)
        run.seconds.append(ms / 1000)
        run.first.append(first)
        run.new_plan.append(new)
    s = run.summary()
    assert s["images"] == 5 and s["distinct_sizes"] == 2 and s["new_plans"] == 1
    assert s["first_over_cached_new_plan_max"] == 10.0 and s["first_over_cached_known_plan_max"] == 1.5
    assert s["images_per_second"] == round(5 / 0.075, 2)
    lines = stream_markdown({"benchmarks": [{"extra_info": {"variant": "inference_graph", "scale": "1333x800",
                                                            "stream_summary": s}}]})
    assert "2 distinct sizes" in lines[0] and "| inference_graph | 66.7 |  |" in lines[4]  # no start-up timed
    run.startup_seconds = 0.425  # plans built ahead: their cost is start-up, and counts against images/s too
    s = run.summary()
    assert s["startup_s"] == 0.425 and s["images_per_second_with_startup"] == round(5 / 0.5, 2)
    lines = stream_markdown({"benchmarks": [{"extra_info": {"variant": "inference_graph", "scale": "1333x800",
                                                            "stream_summary": s}}]})
    assert "| inference_graph | 66.7 | 0.425 / 10 |" in lines[4]


def test_a_stream_builds_plans_ahead_itself():
    """Only a padded graph pipeline has plans to build ahead; the stream builds them after the pipeline."""
    from mmdet_opt.graphed.options import GraphOptions
    from mmdet_opt.suite.stream import planned_apart

    assert planned_apart(None) == (None, False)
    assert planned_apart(GraphOptions()) == (GraphOptions(), False)  # no pad_to_scale: nothing ahead
    lazy, ahead = planned_apart(GraphOptions(pad_to_scale=True))
    assert ahead and lazy == GraphOptions(pad_to_scale=True, plans_ahead=False)
    assert planned_apart(lazy) == (lazy, False)
