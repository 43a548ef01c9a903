"""``python TOOL --help`` for each tool given, each in a child process forked from this one.

Most of a tool's start-up is importing torch, torchvision and matplotlib (through mmdet), which
print nothing: paid here once. Each child then runs the tool as ``python TOOL --help`` would
(``__main__``, its folder first on sys.path), importing the rest itself: mmdet_opt, mmcv and mmdet,
with whatever they print on the way. Prints {tool: [exit status, output]} as JSON.
"""
import json
import os
import runpy
import sys
import tempfile
import traceback

import matplotlib.pyplot  # noqa: F401  shared by the forked children
import torch  # noqa: F401
import torchvision  # noqa: F401


def run_as_main(tool: str) -> int:
    sys.argv = [tool, "--help"]
    sys.path[0] = os.path.dirname(os.path.abspath(tool))
    try:
        runpy.run_path(tool, run_name="__main__")
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    return code


def run_help(tool: str) -> list:
    with tempfile.TemporaryFile() as out:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            os.dup2(out.fileno(), 1)
            os.dup2(out.fileno(), 2)
            os._exit(run_as_main(tool))
        _, status = os.waitpid(pid, 0)
        out.seek(0)
        return [os.waitstatus_to_exitcode(status), out.read().decode(errors="replace")]


if __name__ == "__main__":
    print(json.dumps({tool: run_help(tool) for tool in sys.argv[1:]}))
