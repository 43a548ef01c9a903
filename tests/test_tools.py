"""Every script in tools/ imports without running, answers --help with its usage and nothing else
(no start-up notices of mmcv or mmdet), and every shell script parses. New tools are found by the glob."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mmdet_opt.suite.timing import median_ms, timed

TOOLS_DIR = Path(__file__).resolve().parents[1] / "tools"
TOOLS = sorted(TOOLS_DIR.glob("*.py"))
SCRIPTS = sorted(TOOLS_DIR.glob("*.sh"))
NOISE = ("Warning:", "No CUDA runtime is found")  # a Python warning, as printed; torch's CUDA_HOME notice


@pytest.fixture(scope="module")
def helps() -> dict:
    """Every tool's ``--help`` in one subprocess (run_tools_help.py): torch is imported once."""
    proc = subprocess.run([sys.executable, str(Path(__file__).with_name("run_tools_help.py")), *map(str, TOOLS)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("tool", TOOLS, ids=lambda path: path.name)
def test_tool_imports_without_running(tool, capsys):
    spec = importlib.util.spec_from_file_location(f"tool_{tool.stem}", tool)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert callable(getattr(module, "main", None)), f"{tool.name} has no main()"
    assert capsys.readouterr() == ("", "")


@pytest.mark.slow  # each tool imports mmcv and mmdet afresh
@pytest.mark.parametrize("tool", TOOLS, ids=lambda path: path.name)
def test_tool_help_is_its_usage_alone(tool, helps):
    status, output = helps[str(tool)]
    assert status == 0, output
    assert output.startswith(f"usage: python tools/{tool.name} "), output
    assert not [noise for noise in NOISE if noise in output], output


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_shell_script_parses(script):
    proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_timing_helpers_time_the_calls_after_the_warmup():
    calls = []
    out, ms = timed(lambda: calls.append(1) or "result")
    assert out == "result" and ms >= 0 and len(calls) == 1
    median_ms(lambda: calls.append(1), runs=3, warmup=2)
    assert len(calls) == 1 + 2 + 3
