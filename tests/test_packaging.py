"""What the package's extras install: the report's charts need pygal from the extra tox installs."""
import configparser
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def test_the_extra_tox_installs_brings_the_report_charts_library():
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    tox = configparser.ConfigParser()
    tox.read(ROOT / "tox.ini")
    installed = tox["testenv"]["extras"].split()
    names = {re.split(r"[\[<>=~! ]", requirement)[0] for extra in installed for requirement in extras[extra]}
    assert "pygal" in names  # suite/report.py --chart and suite/history.py import it
