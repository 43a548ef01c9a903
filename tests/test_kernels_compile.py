"""Every Triton kernel compiles for an H100/H200 (sm_90), here, without a GPU.

Triton's interpreter runs a kernel's Python, not its compilation: a construct the compiler refuses
(an enum held in a variable, say) passes the interpreter and fails on the first GPU. Triton compiles
for a target named in advance with its own ptxas, so each kernel is compiled here with the types and
settings its launcher passes.
"""
import pytest

triton = pytest.importorskip("triton")
compiler = pytest.importorskip("triton.compiler")
backends = pytest.importorskip("triton.backends.compiler")

from mmdet_opt import normalize_kernel  # noqa: E402
from mmdet_opt.graphed import bias_pass, greedy_kernel, max_pool, roi_align, row_copy, suppression_kernel  # noqa: E402

SM90 = backends.GPUTarget("cuda", 90, 32)


def kernels():
    """(name, kernel, {argument: type}, {constexpr: value}, {option: value}) as the launchers call them."""
    yield ("suppression", suppression_kernel._suppression,
           dict(boxes="*fp32", out="*fp16", n="i32", threshold="fp32"),
           dict(BLOCK_J=suppression_kernel.BLOCK, BLOCK_I=suppression_kernel.BLOCK), dict(enable_fp_fusion=False))
    for matrix in ("*fp16", "*u8"):
        yield (f"greedy {matrix}", greedy_kernel._greedy, dict(suppress=matrix, valid="*i1", keep="*i1", n="i32"),
               dict(BLOCK=greedy_kernel.BLOCK), dict(num_warps=8))
    yield ("max_pool", max_pool._max_pool,
           dict(src="*fp16", dst="*fp16", rows="i32", height="i32", width="i32", out_height="i32",
                out_width="i32", channels="i32"),
           dict(KERNEL=3, STRIDE=2, PAD=1, BLOCK_R=64, BLOCK_C=64), {})
    for per_row in (False, True):
        yield (f"add_bias per_row={per_row}", bias_pass._add_bias,
               dict(x="*fp16", bias="*fp16", rows="i32", length="i32", channels="i32"),
               dict(PER_ROW=per_row, RELU=True, BLOCK_R=16, BLOCK_L=256), {})
    yield ("add_upsampled", bias_pass._add_upsampled,
           dict(fine="*fp16", coarse="*fp16", bias="*fp16", rows="i32", height="i32", width="i32", channels="i32"),
           dict(BLOCK_R=16, BLOCK_C=256), {})
    yield ("copy_rows", row_copy._copy_rows,
           dict(dst="*fp16", src="*fp16", rows="i32", height="i32", length="i32", image_stride="i64",
                row_stride="i32"),
           dict(BLOCK_R=2, BLOCK_L=2048), {})
    yield ("normalize_pad", normalize_kernel._normalize_pad,
           dict(img="*u8", out="*fp16", mean="*fp32", scale="*fp32", height="i32", width="i32", pad_h="i32",
                pad_w="i32", stride_c="i32", stride_h="i32", stride_w="i32"),
           dict(TO_RGB=True, MULTIPLY=True, BLOCK_W=normalize_kernel.BLOCK_W), {})
    yield ("roi_align_nhwc", roi_align._roi_align_nhwc,
           dict(canvas="*fp16", rois="*fp32", out="*fp32", height="i32", width="i32", batch_stride="i64",
                spatial_scale="fp32"),
           dict(CHANNELS=256, BLOCK_C=64, POOLED_H=7, POOLED_W=7, BINS=64, SAMPLING=0, ALIGNED=True),
           dict(enable_fp_fusion=False))


@pytest.mark.parametrize("name, kernel, arguments, constants, options",
                         [pytest.param(*case, id=case[0]) for case in kernels()])
def test_kernel_compiles_for_sm90(name, kernel, arguments, constants, options):
    signature = {**arguments, **dict.fromkeys(constants, "constexpr")}
    assert list(signature) == kernel.arg_names, f"{name}: the launcher's arguments are {kernel.arg_names}"
    source = compiler.ASTSource(fn=kernel, signature=signature, constexprs=constants)
    try:
        compiled = triton.compile(source, target=SM90, options={"num_warps": 4, **options})
    except RuntimeError as error:
        if "ptxas" in str(error) and "not found" in str(error):
            pytest.skip(f"this Triton has no ptxas: {error}")
        raise
    assert compiled.asm["cubin"], name
