"""Kernel checks that run compiled on a CUDA machine and under Triton's interpreter elsewhere."""
import os
import subprocess
import sys

import torch


def run_check(check, test_file: str, *args: str) -> None:
    """``check("cuda")`` on a CUDA machine. Without one, ``python test_file *args`` in a subprocess
    with ``TRITON_INTERPRET=1`` (it must be set before Triton is imported), which runs the check on
    CPU tensors."""
    if torch.cuda.is_available():
        check("cuda")
        return
    here = os.path.dirname(os.path.abspath(test_file))
    done = subprocess.run([sys.executable, test_file, *args], capture_output=True, text=True, cwd=here,
                          env={**os.environ, "TRITON_INTERPRET": "1"}, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr[-4000:]
