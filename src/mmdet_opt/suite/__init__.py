"""The suite's own tooling, apart from the optimizations it measures.

- ``session``: what the benchmark and parity tests share (one base model, pipelines, images,
  stock references), built once per pytest session;
- ``report``: tables and charts from a pytest-benchmark JSON run (``python -m mmdet_opt.suite.report``);
- ``history``: each variant's total across stored runs (``python -m mmdet_opt.suite.report --history``);
- ``compare``: the regression gate over two runs (``python -m mmdet_opt.suite.compare``);
- ``runs``: reading stored runs (pytest-benchmark JSON), shared by the report, the history and the gate;
- ``plugin``: the suite's pytest plugin, which the root conftest.py loads: ``options`` (the command
  line), ``settings`` (what a run takes from it), ``outputs`` (output folders), ``compare_option``
  (the runs --benchmark-compare names), ``run_json`` (what the suite adds to the stored run);
- ``defaults``: the default suite (cases, stages per variant and case, rounds), which the plugin runs;
- ``baseline``: which runs are baselines, complete runs of that suite from a clean checkout
  (``python -m mmdet_opt.suite.baseline``);
- ``nightly``: the nightly GPU job in one command (``python -m mmdet_opt.suite.nightly``);
- ``mutations``: deliberately broken pipelines that the parity check must reject;
- ``visualize``: stock and a variant side by side (``python -m mmdet_opt.suite.visualize``).
"""
