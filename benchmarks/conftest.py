"""Options of the benchmark files only."""


def pytest_addoption(parser):
    parser.getgroup("mmdet-opt").addoption(
        "--inject-delay-ms", type=float, default=0.0,
        help="add this many ms to every timed call: shows that --benchmark-compare-fail catches a "
             "regression (never use it for a baseline)")
