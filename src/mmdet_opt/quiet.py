"""Start-up notices of other packages that say nothing about a run of this one, each dropped by its text."""
from __future__ import annotations

import contextlib
import logging
import warnings

CPP_EXTENSION_LOGGER = "torch.utils.cpp_extension"
CUDA_HOME_NOTICE = "No CUDA runtime is found"
MMCV_V2_NOTICE = r"On January 1, 2023, MMCV will release v2\.0\.0"
IMAGE_TO_TENSOR_NOTICE = r'"ImageToTensor" pipeline is replaced'
INVALID_ESCAPE_NOTICE = r"invalid escape sequence"
OPEN_MMLAB_SOURCES = r".*[\\/](mmdet|mmcv)[\\/]"
MMCV_AUTOCAST_NOTICE = r"`torch\.cuda\.amp\.autocast\(args\.\.\.\)` is deprecated"


class _DropCudaHomeNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(CUDA_HOME_NOTICE)


def drop_cuda_home_notice() -> None:
    """torch.utils.cpp_extension, which mmcv imports, logs "No CUDA runtime is found, using
    CUDA_HOME=..." at import on a machine with a CUDA toolkit and no GPU. CUDA_HOME matters only
    for compiling extensions, which nothing here does; every other record of that logger passes."""
    logger = logging.getLogger(CPP_EXTENSION_LOGGER)
    if not any(isinstance(f, _DropCudaHomeNotice) for f in logger.filters):
        logger.addFilter(_DropCudaHomeNotice())


def ignore_mmcv_v2_notice() -> None:
    """mmcv 1.x warns at every import that 2.0 will rename it: news about a release we do not use."""
    warnings.filterwarnings("ignore", message=MMCV_V2_NOTICE, category=UserWarning)


def ignore_invalid_escape_warnings() -> None:
    """Python 3.12 compiles mmdet's docstrings with a SyntaxWarning per invalid escape sequence
    (printed with the docstring's first lines) wherever no .pyc was written: not about a run.
    Only mmdet's and mmcv's sources: the warning's module is the compiled file's path."""
    for category in (SyntaxWarning, DeprecationWarning):  # DeprecationWarning before Python 3.12
        warnings.filterwarnings("ignore", message=INVALID_ESCAPE_NOTICE, category=category,
                                module=OPEN_MMLAB_SOURCES)


def ignore_image_to_tensor_notice() -> None:
    """mmdet's ``inference_detector`` warns at every call that the config's own test pipeline
    has ImageToTensor, advice for batch configs: once per image of a long evaluation."""
    warnings.filterwarnings("ignore", message=IMAGE_TO_TENSOR_NOTICE, category=UserWarning)


@contextlib.contextmanager
def without_image_to_tensor_notice():
    """``ignore_image_to_tensor_notice`` inside the block only; every other warning as the caller has it."""
    with warnings.catch_warnings():
        ignore_image_to_tensor_notice()
        yield


def ignore_mmcv_autocast_notice() -> None:
    """mmcv 1.x's fp16 mode (``wrap_fp16_model``: the ``inference_fp16`` variants) calls
    ``torch.cuda.amp.autocast``, which torch >= 2.4 calls deprecated at every forward: about mmcv's
    code, nothing a user can change. Only where mmcv makes the call."""
    warnings.filterwarnings("ignore", message=MMCV_AUTOCAST_NOTICE, category=FutureWarning, module=r"mmcv\.")


def quiet_start_up() -> None:
    """The notices that come while mmcv and mmdet are imported: before the first import of either."""
    drop_cuda_home_notice()
    ignore_mmcv_v2_notice()
    ignore_invalid_escape_warnings()


def import_quietly() -> None:
    """Import mmcv and mmdet's models under the filters above, whatever warning state the caller runs in
    (pytest swaps the filters around its own stages); later imports of them are then silent no-ops."""
    with warnings.catch_warnings():
        quiet_start_up()
        import mmcv  # noqa: F401
        import mmdet.apis  # noqa: F401
        import mmdet.models  # noqa: F401
