"""The project's pytest.ini, as a run sees it: what the summary lists, which warnings are dropped.

Each check runs pytest on a scratch file under a copy of the real pytest.ini (its addopts and
filterwarnings as they are), without the conftest: no model, no mmdet import.
"""
import shutil
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

PYTEST_INI = Path(__file__).resolve().parents[1] / "pytest.ini"


@pytest.fixture
def scratch(pytester):
    shutil.copy(PYTEST_INI, pytester.path / "pytest.ini")
    return pytester


def test_summary_names_the_failures_and_the_skips(scratch):
    scratch.makepyfile(test_mixed="""
        import pytest

        def test_passes():
            pass

        def test_fails():
            assert 1 == 2

        def test_skipped():
            pytest.skip("needs CUDA")
    """)
    result = scratch.runpytest("test_mixed.py")
    result.assert_outcomes(passed=1, failed=1, skipped=1)
    result.stdout.fnmatch_lines(["*short test summary info*", "FAILED test_mixed.py::test_fails - assert 1 == 2"])
    result.stdout.fnmatch_lines(["*short test summary info*", "SKIPPED * needs CUDA"])


def test_start_up_notices_are_dropped_and_other_warnings_kept(scratch):
    """mmcv's v2 notice, and Python 3.12's SyntaxWarning for an invalid escape in a file of mmdet's
    (DeprecationWarning before 3.12, which the ini drops whole); the same escape in a file of one's
    own still warns on 3.12, and so does any other warning."""
    scratch.makepyfile(test_notices=r"""
        import sys
        import warnings

        def test_notices():
            source = "'\\d'"  # the source text '\d'
            with warnings.catch_warnings(record=True) as caught:  # under pytest's filters from the ini
                warnings.warn("On January 1, 2023, MMCV will release v2.0.0, in which ...", UserWarning)
                compile(source, "/site-packages/mmdet/models/dense_heads/head.py", "exec")
                compile(source, "/home/me/mine.py", "exec")
                warnings.warn("another notice", UserWarning)
            kept = [str(w.message) for w in caught]
            own = ["invalid escape sequence '\\d'"] if sys.version_info >= (3, 12) else []
            assert kept == own + ["another notice"]
    """)
    # A fresh interpreter: this one has imported mmdet_opt, whose own filters would pass the check.
    scratch.runpytest_subprocess("test_notices.py").assert_outcomes(passed=1)
