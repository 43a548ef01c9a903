"""Reading stored runs: pytest-benchmark JSON files, as the report, the history and the gate use them."""
from __future__ import annotations

import errno
import json
import re
from collections import defaultdict
from pathlib import Path

STORED_RUN = re.compile(r"(\d{4})_.*\.json")  # pytest-benchmark's NNNN_NAME.json


class ReportError(ValueError):
    """The file is not a pytest-benchmark JSON with this suite's stage benchmarks."""


def load_run(path: str | Path) -> dict:
    path = Path(path)
    try:
        text = path.read_text()
        if not text.strip():
            raise ReportError(f"{path} is empty; was the run interrupted?")
        data = json.loads(text)
    except FileNotFoundError:
        raise ReportError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ReportError(f"{path} is a directory, not a benchmark JSON file") from None
    except OSError as exc:
        raise ReportError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReportError(f"{path} is not valid JSON ({exc}); was the run interrupted?") from None
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise ReportError(f"{path} is not a pytest-benchmark JSON (no 'benchmarks' list)")
    for i, bench in enumerate(data["benchmarks"]):
        # What pytest-benchmark itself needs of each entry (it skips the whole file otherwise).
        stats = bench.get("stats") if isinstance(bench, dict) else None
        if not isinstance(stats, dict) or not isinstance(stats.get("median"), (int, float)):
            name = bench.get("fullname", "?") if isinstance(bench, dict) else repr(bench)
            raise ReportError(f"{path}: benchmark #{i} ({name}) has no stats.median; "
                              "not a pytest-benchmark JSON, or a damaged one")
    return data


def stored_runs(folder: str | Path) -> list:
    """The runs pytest-benchmark stored in ``folder`` (``NNNN_*.json``), oldest first."""
    runs = [p for p in Path(folder).iterdir() if STORED_RUN.fullmatch(p.name)]
    return sorted(runs, key=lambda p: int(STORED_RUN.fullmatch(p.name).group(1)))


def newest_usable(runs: list, usable, load=load_run) -> tuple:
    """The newest of ``runs`` (oldest first) whose ``load``-ed run ``usable`` accepts, or None, and
    the names of the newer runs passed over. What ``load`` raises for a broken file, it raises."""
    passed_over = []
    for path in reversed(runs):
        if usable(load(path)):
            return path, passed_over
        passed_over.append(path.name)
    return None, passed_over


def medians(data: dict) -> dict:
    """{size: {variant: {stage: median ms}}} from the stage benchmarks of a run."""
    table = defaultdict(lambda: defaultdict(dict))
    for bench in data["benchmarks"]:
        info = bench.get("extra_info", {})
        if {"variant", "size", "stage"} <= info.keys():
            table[info["size"]][info["variant"]][info["stage"]] = bench["stats"]["median"] * 1000
    if not table:
        raise ReportError("the run has no stage benchmarks (extra_info variant/size/stage)")
    return table


def size_key(size: str):
    """Protocol cases first, by area; then photos at their own size, by test scale and photo area."""
    from .cases import parse_case

    case = parse_case(size)
    return case.natural, case.scale[0] * case.scale[1], case.image[0] * case.image[1]


def injected_delay(run: dict) -> float:
    """The --inject-delay-ms a run was timed with (0 for a real run)."""
    return max((float((b.get("extra_info") or {}).get("injected_delay_ms", 0)) for b in run["benchmarks"]),
               default=0.0)


def same_weights(a: dict, b: dict) -> bool:
    """Whether two runs measured the same weights, as far as they say (runs before the key say nothing)."""
    return not (a.get("weights") and b.get("weights")) or a["weights"] == b["weights"]


def device_of(run: dict) -> str | None:
    return (run.get("machine_info") or {}).get("device")


def short_commit(run: dict) -> str:
    """'536fd90', with '*' for a dirty working tree (the commit is then not the measured code)."""
    commit = run.get("commit_info") or {}
    return str(commit.get("id") or "unknown")[:7] + ("*" if commit.get("dirty") else "")


def make_chart_folder(path: str | Path) -> None:
    """--chart's folder, made before any table is printed: a path that cannot be written fails first."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
