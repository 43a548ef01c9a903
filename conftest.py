"""Options and shared fixtures of the suite: the model and stock reference results are built once.

On a GPU the defaults are the study's: both sizes, every variant, 20 timed rounds. On a CPU they
shrink to a smoke run: one reduced size, the variants that run there, few rounds. The defaults
themselves are in mmdet_opt/suite/defaults.py, which also says what a complete run holds.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from mmdet_opt.suite.defaults import (
    CPU_SIZES,
    GPU_SIZES,
    PARITY_IMAGES,
    QUICK_GPU_SIZES,
    TRAINED_PARITY_IMAGES,
)


def pytest_addoption(parser):
    group = parser.getgroup("mmdet-opt", "mmdet-opt benchmark and parity options")
    group.addoption("--variants", default=None,
                    help="comma-separated variants (default: all; those needing CUDA are skipped on CPU)")
    group.addoption("--sizes", default=None,
                    help="comma-separated cases: WxH (the study's protocol: the photo resized to the test scale "
                         f"WxH) or WxH@WxH (a photo at its own size @ test scale); default {GPU_SIZES} on GPU, "
                         f"{CPU_SIZES} on CPU")
    group.addoption("--device", default=None, help="cuda, cuda:N or cpu (default: cuda if available)")
    group.addoption("--checkpoint", default=None,
                    help="real mmdet checkpoint: a file, or an http(s) URL downloaded once into "
                         "~/.cache/mmdet-opt/checkpoints and checked by the sha256 prefix in its name "
                         "(-xxxxxxxx.pth) or URL#sha256=<64 hex> (default: seeded, calibrated synthetic weights)")
    group.addoption("--config", default=None,
                    help="mmdet config file (default: mmdet's mask_rcnn_r50_fpn_2x_coco)")
    group.addoption("--seed", type=int, default=0, help="seed of the synthetic weights")
    group.addoption("--rounds", type=int, default=None,
                    help="timed rounds per benchmark (default 20 GPU, 10 with --quick, 3 CPU)")
    group.addoption("--warmup-rounds", type=int, default=None,
                    help="untimed rounds first (default 5 GPU, 2 with --quick, 1 CPU)")
    group.addoption("--quick", action="store_true",
                    help=f"the headline table only: each variant's total at {QUICK_GPU_SIZES} (GPU) against stock, "
                         "10 rounds, and parity on one image; no throughput or stream")
    group.addoption("--every-stage", action="store_true",
                    help="time every stage at every case (default: every stage of the study's variants at the "
                         "protocol cases, total elsewhere; the full grid takes well over half an hour on a GPU)")
    group.addoption("--mutation", default=None,
                    help="break every variant's results for the parity tests with this mutation of "
                         "mmdet_opt.suite.mutations (transpose_masks, shift_8px, roll_labels; identity is the "
                         "control): the parity tests must then fail")
    group.addoption("--bench-image", default="astronaut",
                    help="image the timings use: a sample name, sceneN, or an image file (resized to each case's "
                         "photo size, as the samples are)")
    group.addoption("--parity-images", default=None,
                    help=f"comma-separated images the parity tests use, names or image files (default "
                         f"{','.join(PARITY_IMAGES)}; with --checkpoint trained, held-out scenes "
                         f"{','.join(TRAINED_PARITY_IMAGES)}; the first alone with --quick)")
    group.addoption("--parity-min-matched", type=float, default=None,
                    help="fraction of stock detections a variant must match (default 0.95; given, or with "
                         "--checkpoint, these fixed thresholds replace the rounding-spread rule)")
    group.addoption("--parity-min-mask-iou", type=float, default=None,
                    help="mean mask IoU over matched detections (default 0.97)")


@dataclass
class Settings:
    device: str
    sizes: list
    variants: dict  # requested name -> the Variant as it runs on ``device``
    unavailable: dict  # name -> why it cannot run on ``device``
    checkpoint: str | None
    config: str | None
    seed: int
    rounds: int
    warmup_rounds: int
    bench_image: str
    parity_images: list
    min_matched: float
    min_mask_iou: float
    fixed_thresholds: bool  # judge parity by the thresholds above, not stock's own rounding spread
    quick: bool = False
    every_stage: bool = False
    mutation: str | None = None  # an output mutation the parity tests' results go through

    @property
    def on_gpu(self) -> bool:
        return self.device.startswith("cuda")


def _settings(config) -> Settings:
    from mmdet_opt.arguments import check_device, default_device
    from mmdet_opt.checkpoint import CheckpointError, resolve_checkpoint
    from mmdet_opt.images import IMAGE_NAMES, is_image_name
    from mmdet_opt.inputs import ImageInputError, load_image
    from mmdet_opt.parity import DEFAULT_MIN_MASK_IOU, DEFAULT_MIN_MATCHED, TRAINED_MIN_MASK_IOU, TRAINED_MIN_MATCHED
    from mmdet_opt.suite import defaults
    from mmdet_opt.suite.cases import parse_case
    from mmdet_opt.suite.defaults import split as _split
    from mmdet_opt.suite.mutations import OUTPUT_MUTATIONS
    from mmdet_opt.variants import VARIANTS, VariantUnavailable, variant_for_device

    opt = config.getoption
    try:
        device = check_device(opt("--device") or default_device())
    except ValueError as exc:
        raise pytest.UsageError(f"--device: {exc}") from None
    on_gpu = device.startswith("cuda")
    names = _split(opt("--variants")) if opt("--variants") else list(VARIANTS)
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        raise pytest.UsageError(f"--variants: unknown {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    variants, unavailable = {}, {}
    for name in names:  # each as it runs on this device (on a CPU: its CPU composition)
        try:
            variants[name] = variant_for_device(name, device)
        except VariantUnavailable as exc:
            unavailable[name] = str(exc)
    checkpoint = opt("--checkpoint")
    trained, quick = checkpoint == "trained", opt("--quick")
    # The project's trained model is judged on held-out scenes of what it was trained for.
    parity_images = _split(opt("--parity-images") or ",".join(defaults.parity_images(trained, quick)))
    mutation = opt("--mutation")
    if mutation and mutation not in OUTPUT_MUTATIONS:
        raise pytest.UsageError(f"--mutation: unknown {mutation}; known: {', '.join(OUTPUT_MUTATIONS)}")
    images = [opt("--bench-image")] + parity_images
    unknown = [i for i in images if not is_image_name(i) and not Path(i).exists()]
    if unknown:
        raise pytest.UsageError(f"unknown image {', '.join(unknown)}; known: {', '.join(IMAGE_NAMES)}, "
                                "sceneN (held-out scenes), or an image file")
    for path in {i for i in images if not is_image_name(i)}:
        try:  # an unusable file is a usage error now, not a failure of every test that uses it
            load_image(path)
        except ImageInputError as exc:
            raise pytest.UsageError(f"image file: {exc}") from None
    if checkpoint:
        try:  # the form only: a URL is downloaded when the model is built, not for --collect-only
            resolve_checkpoint(checkpoint, download=False)
        except CheckpointError as exc:
            raise pytest.UsageError(f"--checkpoint: {exc}") from None
    cfg_path = opt("--config")
    if cfg_path and not Path(cfg_path).is_file():
        raise pytest.UsageError(f"--config: no such file: {cfg_path}")
    default_rounds, default_warmup = defaults.rounds(on_gpu, quick)
    rounds = opt("--rounds") if opt("--rounds") is not None else default_rounds
    warmup = opt("--warmup-rounds") if opt("--warmup-rounds") is not None else default_warmup
    if rounds < 1 or warmup < 0:
        raise pytest.UsageError("--rounds must be >= 1 and --warmup-rounds >= 0")
    try:
        sizes = [parse_case(s) for s in _split(opt("--sizes"))] if opt("--sizes") else defaults.sizes(on_gpu, quick)
    except ValueError as exc:
        raise pytest.UsageError(f"--sizes: {exc}") from None
    return Settings(
        device=device,
        sizes=sizes,
        variants=variants,
        unavailable=unavailable,
        checkpoint=checkpoint,
        config=cfg_path,
        seed=opt("--seed"),
        rounds=rounds,
        warmup_rounds=warmup,
        bench_image=opt("--bench-image"),
        parity_images=parity_images,
        min_matched=opt("--parity-min-matched") or (TRAINED_MIN_MATCHED if trained else DEFAULT_MIN_MATCHED),
        min_mask_iou=opt("--parity-min-mask-iou") or (TRAINED_MIN_MASK_IOU if trained else DEFAULT_MIN_MASK_IOU),
        fixed_thresholds=bool(checkpoint or opt("--parity-min-matched") or opt("--parity-min-mask-iou")),
        quick=quick,
        every_stage=opt("--every-stage"),
        mutation=mutation,
    )


def pytest_report_header(config):
    from importlib.metadata import PackageNotFoundError, version

    def installed(name):
        try:
            return version(name)
        except PackageNotFoundError:
            return "-"

    settings = config._mmdet_opt
    packages = ("torch", "torchvision", "mmcv-full", "mmdet", "opencv-python-headless", "numpy")
    lines = [f"mmdet-opt: device {settings.device}; variants {', '.join(v.name for v in settings.variants.values())}",
             "mmdet-opt: " + ", ".join(f"{name} {installed(name)}" for name in packages)]
    lines += [f"mmdet-opt: not run: {reason}" for reason in settings.unavailable.values()]
    note = getattr(config, "_mmdet_opt_compare_note", None)
    return lines + [f"mmdet-opt: {note}"] if note else lines


def pytest_configure(config):
    from mmdet_opt.quiet import import_quietly

    import_quietly()
    config._mmdet_opt = _settings(config)
    _make_output_folders(config)
    config._mmdet_opt_parity = []
    config._mmdet_opt_not_run = []
    from mmdet_opt.machine import device_slug

    # Keep each device's runs apart, so --benchmark-compare only compares like with like.
    storage = config.getoption("benchmark_storage", None)
    if storage and storage.rstrip("/").endswith("baselines"):
        config.option.benchmark_storage = f"{storage.rstrip('/')}/{device_slug(config._mmdet_opt.device)}"
    _check_compare_baselines(config)


def _make_output_folders(config):
    """The folders that --benchmark-json and --benchmark-histogram write into, made before anything
    runs: pytest-benchmark writes the JSON only at the end, into a folder that must already exist."""
    json_path = config.getoption("benchmark_json", None)
    if hasattr(json_path, "write"):  # older pytest-benchmark opens the file while parsing; newer gives a Path
        json_path = json_path.name
    histogram = config.getoption("benchmark_histogram", None)  # [prefix]: files PREFIX-<group>.svg
    if json_path and Path(json_path).is_dir():
        raise pytest.UsageError(f"--benchmark-json: {json_path} is a folder; give a file path")
    folders = {"--benchmark-json": json_path and Path(json_path).parent,
               "--benchmark-histogram": histogram and Path(f"{histogram[0]}.svg").parent}
    for option, folder in folders.items():
        try:
            if folder:
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise pytest.UsageError(f"{option}: cannot make the folder {folder}: {exc.strerror or exc}") from None


def _check_compare_baselines(config):
    """--benchmark-compare: a usage error naming the file, before pytest-benchmark loads it.

    Left to itself, pytest-benchmark crashes on a path that does not exist, and only warns (then
    compares against nothing, so --benchmark-compare-fail passes) on a name that matches no run,
    an empty or corrupt file, or a run of another device (whose timings say nothing about this one).
    A bare --benchmark-compare with no stored run yet keeps pytest-benchmark's warning: a first run;
    with stored runs it takes the latest baseline (``_latest_baseline``).
    """
    compare = config.getoption("benchmark_compare", None)
    storage = config.getoption("benchmark_storage", None) or ""
    if not compare or ("://" in storage and not storage.startswith("file://")):
        return
    from pytest_benchmark.storage.file import FileStorage
    from pytest_benchmark.utils import get_machine_id

    from mmdet_opt.machine import device_name
    from mmdet_opt.suite.runs import ReportError, load_run, same_weights

    root = Path(storage.removeprefix("file://"))
    stored = FileStorage(root, logger=None, default_machine_id=get_machine_id())
    weights = _weights(config._mmdet_opt)  # once: it reads the whole checkpoint file for its hash
    if compare is True:
        files = _latest_baseline(config, stored.query("[0-9][0-9][0-9][0-9]_"), weights, root)
    else:
        try:
            files = stored.query(compare)
        except ValueError:  # pytest-benchmark's reaction to a path that is not a file
            raise pytest.UsageError(f"--benchmark-compare: no such file: {compare}") from None
        if not files:
            elsewhere = sorted(p for p in root.parent.glob(f"*/*/{compare.rstrip('*')}*.json")
                               if root not in p.parents)
            hint = "" if not elsewhere else (
                f"; runs of other devices match: {', '.join(map(str, elsewhere))} (timings compare only "
                "on one device; `pytest-benchmark compare` shows runs side by side)")
            raise pytest.UsageError(f"--benchmark-compare: no stored run matches {compare!r} under {root}"
                                    + hint)
    here = device_name(config._mmdet_opt.device)
    for path in files:
        try:
            run = load_run(path)
        except ReportError as exc:
            raise pytest.UsageError(f"--benchmark-compare: {exc}") from None
        info = run.get("machine_info")
        recorded = info.get("device") if isinstance(info, dict) else None
        if recorded and recorded != here:
            raise pytest.UsageError(f"--benchmark-compare: {path} was recorded on {recorded}, this run is on "
                                    f"{here}; compare against a run of this device (baselines/<device>/)")
        if not same_weights(run, {"weights": weights}):
            raise pytest.UsageError(f"--benchmark-compare: {path} measured {run['weights']}, this run {weights}; "
                                    "the detections, and so the timings, differ with the weights")


def _latest_baseline(config, stored: list, weights: str, root: Path) -> list:
    """A bare --benchmark-compare: the latest stored run that is a baseline (a complete run of the
    default suite from a clean checkout, ``mmdet_opt.suite.baseline``) of the same weights. Later
    runs are passed over, in one header line; with none, nothing is compared, and the header says so.
    A broken file is still a usage error."""
    from mmdet_opt.suite.baseline import is_baseline
    from mmdet_opt.suite.runs import ReportError, load_run, same_weights

    passed_over = []
    for path in reversed(stored):
        try:
            run = load_run(path)
        except ReportError as exc:
            raise pytest.UsageError(f"--benchmark-compare: {exc}") from None
        if is_baseline(run) and same_weights(run, {"weights": weights}):
            config.option.benchmark_compare = str(path)
            note = f"--benchmark-compare: {path.name}, the latest baseline"
            if passed_over:
                note += f"; passed over the later {', '.join(passed_over)} (not complete and clean, or other weights)"
            config._mmdet_opt_compare_note = note
            return [path]
        passed_over.append(path.name)
    if stored:  # only partial, dirty or other-weights runs: comparing with one would mislead
        config.option.benchmark_compare = False
        config._mmdet_opt_compare_note = (f"--benchmark-compare: no baseline in {root} (passed over "
                                          f"{', '.join(passed_over)}: not complete and clean, or other weights); "
                                          "nothing is compared")
    return []


@pytest.fixture(scope="session")
def parity_records(request) -> list:
    """Each parity case's figures, stored with the run's JSON (``pytest_benchmark_update_json``)."""
    return request.config._mmdet_opt_parity


def _weights(settings: Settings) -> str:
    from mmdet_opt.checkpoint import describe_checkpoint

    if settings.checkpoint:
        return f"checkpoint {describe_checkpoint(settings.checkpoint)}"
    return f"synthetic, seed {settings.seed}"


def pytest_benchmark_update_json(config, benchmarks, output_json):
    from mmdet_opt.machine import gpu_state

    settings = config._mmdet_opt
    # Which weights the run measured: parity on the trained model and on synthetic weights differ
    # by design, so the history keeps them apart.
    output_json["weights"] = _weights(settings)
    # Outside machine_info, which pytest-benchmark compares whole: clocks and temperatures always
    # differ, and it would warn on every compare.
    start = getattr(config, "_mmdet_opt_gpu_start", None) or {"unavailable": "not recorded at session start"}
    output_json["gpu_state"] = {"start": start, "end": gpu_state(settings.device)}
    records = getattr(config, "_mmdet_opt_parity", None)
    if records:
        output_json["parity"] = records
    if getattr(config, "_mmdet_opt_not_run", None):  # batches too large for this GPU, measured as such
        output_json["not_run"] = config._mmdet_opt_not_run
    if settings.mutation:  # parity broken on purpose: never a baseline
        output_json["mutation"] = settings.mutation


def _run_json(config, benchmarks) -> dict:
    """The run as pytest-benchmark writes it to --benchmark-json, with this suite's parity records."""
    bench_session = config._benchmarksession
    commit_info = config.hook.pytest_benchmark_generate_commit_info(config=config)
    output = config.hook.pytest_benchmark_generate_json(config=config, benchmarks=benchmarks, include_data=False,
                                                       machine_info=bench_session.get_machine_info(),
                                                       commit_info=commit_info)
    config.hook.pytest_benchmark_update_json(config=config, benchmarks=benchmarks, output_json=output)
    return output


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, config):
    """After pytest-benchmark's tables: the study's tables, with each variant's speed-up over stock."""
    bench_session = getattr(config, "_benchmarksession", None)
    benchmarks = [b for b in getattr(bench_session, "benchmarks", []) if not b.has_error]
    if not benchmarks or bench_session.disabled:
        return
    from mmdet_opt.suite.report import ReportError, markdown

    try:
        text = markdown(_run_json(config, benchmarks))
    except ReportError:  # no stage, stream or parity figures in this run
        return
    terminalreporter.write_sep("=", "mmdet-opt report (medians in ms; speed-up over stock)")
    terminalreporter.write_line(text)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session):
    """A run of parity tests alone still writes its figures to --benchmark-json.

    pytest-benchmark writes nothing when no benchmark ran; the parity records (and the machine
    and commit info) then go into the same JSON shape, with an empty benchmark list.
    """
    config = session.config
    path, records = config.getoption("benchmark_json", None), getattr(config, "_mmdet_opt_parity", None)
    bench_session = getattr(config, "_benchmarksession", None)
    if not path or not records or bench_session is None or bench_session.benchmarks:
        return
    bench_session.save_json(_run_json(config, []))


def pytest_sessionstart(session):
    from mmdet_opt.machine import gpu_state

    # The GPU's clocks, power limit, temperature and throttle reasons before anything runs; the
    # state at the end is taken when pytest-benchmark saves the run (the hook below).
    session.config._mmdet_opt_gpu_start = gpu_state(session.config._mmdet_opt.device)


def pytest_benchmark_update_machine_info(config, machine_info):
    from mmdet_opt.machine import accelerator_info

    machine_info.update(accelerator_info(config._mmdet_opt.device))


def pytest_generate_tests(metafunc):
    settings = metafunc.config._mmdet_opt
    if "stage" in metafunc.fixturenames:  # test_stage: the stages each variant gets at each case
        from mmdet_opt.suite.defaults import stages

        plan = [(variant, case, stage) for name, variant in settings.variants.items() for case in settings.sizes
                for stage in stages(name, case, settings.quick, settings.every_stage)]
        metafunc.parametrize("variant,case,stage", plan, ids=[f"{v.name}-{c}-{s}" for v, c, s in plan],
                             scope="session")
        return
    if "variant" in metafunc.fixturenames:
        metafunc.parametrize("variant", list(settings.variants.values()), ids=lambda v: v.name, scope="session")
    if "case" in metafunc.fixturenames:
        metafunc.parametrize("case", settings.sizes, ids=str, scope="session")
    if "image_name" in metafunc.fixturenames:
        metafunc.parametrize("image_name", settings.parity_images, scope="session")


@pytest.fixture(scope="session")
def settings(request) -> Settings:
    return request.config._mmdet_opt


@pytest.fixture(scope="session")
def suite(settings):
    from mmdet_opt.suite.session import Suite

    return Suite(settings.device, settings.config, settings.checkpoint, settings.seed, mutation=settings.mutation)


