"""CUDA graph capture, and the global flags a capture bakes in."""
from __future__ import annotations

import contextlib

import torch


class CapturedCall:
    """``fn(*inputs)`` captured once as a CUDA graph; calling it replays the graph.

    The inputs are static buffers: write new data into them, then call with those same buffers
    (the signature stays ``fn``'s, so callers do not care whether a step is captured).
    """

    def __init__(self, fn, *inputs, warmup: int = 1, pool=None):
        for _ in range(warmup):  # lazy initialisation (cuBLAS/cuDNN handles) must not be captured
            fn(*inputs)
        torch.cuda.synchronize()
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, pool=pool):
            self.outputs = fn(*inputs)
        # The graph reads tensors by address: keep alive everything ``fn`` refers to (constants held
        # by closures), or their memory goes back to the allocator and other code overwrites it.
        self.fn, self.inputs = fn, inputs
        # Capture computes nothing: replay once so that the outputs hold real values before the
        # next graph's warm-up reads them.
        self.graph.replay()

    def release(self) -> None:
        """Free the graph and what it keeps alive now, not when the garbage collector next runs:
        ``fn`` is often a bound method of the object that holds this call (a reference cycle)."""
        self.graph.reset()
        self.fn = self.inputs = self.outputs = None

    def __call__(self, *inputs):
        if len(inputs) != len(self.inputs) or any(a is not b for a, b in zip(inputs, self.inputs)):
            raise ValueError("a captured step reads the buffers it was captured with; pass those")
        self.graph.replay()
        return self.outputs


class Steps:
    """A plan's steps by name: each its eager callable until ``capture``, then its graph's replay.

    ``steps.features(x)`` (or ``steps["features"](x)``) calls whichever is current.
    """

    def __init__(self, **eager):
        self._eager = eager
        self._current = dict(eager)

    @classmethod
    def of(cls, owner, names) -> Steps:
        """The table of ``owner``'s eager methods ``names``."""
        return cls(**{name: getattr(owner, name) for name in names})

    def __getitem__(self, name: str):
        return self._current[name]

    def __getattr__(self, name: str):
        try:
            return self.__dict__["_current"][name]
        except KeyError:
            raise AttributeError(f"no step {name!r}: unknown, or the plan was released") from None

    def capture(self, name: str, *inputs, warmup: int = 1, pool=None) -> CapturedCall:
        """Capture step ``name`` over ``inputs``; its replay is the step from now on."""
        call = self._current[name] = CapturedCall(self._eager[name], *inputs, warmup=warmup, pool=pool)
        return call

    def release(self) -> None:
        """Free the captures now, not when the garbage collector next runs (the eager steps are
        bound methods of the plan that holds this table); the plan is not used after this."""
        for call in self._current.values():
            if isinstance(call, CapturedCall):
                call.release()
        self._current, self._eager = {}, {}


@contextlib.contextmanager
def matmul_tf32(enabled: bool):
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous


@contextlib.contextmanager
def strict_fp32(deterministic: bool = False):
    """No TF32 anywhere: convolutions and matrix products in full fp32 (stock runs cuDNN in TF32);
    ``deterministic`` also keeps cuDNN to deterministic algorithms."""
    with matmul_tf32(False), torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=deterministic,
                                                          allow_tf32=False):
        yield


def capture_flags(tf32: bool):
    """The cuDNN / TF32 settings a capture bakes in (no cuDNN autotuning: docs/options.md); the
    global flags stay as they were for the other variants."""
    stack = contextlib.ExitStack()
    stack.enter_context(torch.no_grad())
    stack.enter_context(torch.backends.cudnn.flags(enabled=True, benchmark=False))
    stack.enter_context(matmul_tf32(tf32))
    return stack
