"""What a benchmark ran on, for pytest-benchmark's machine_info and storage folders.

The GPU's state (clocks, power limit, temperature, throttle reasons) comes from ``nvidia-smi``, taken
at the start of a session and again when the run is saved: a run slowed by a power cap or heat shows
it in its own JSON, and ``python -m mmdet_opt.suite.report`` warns about it.
"""
from __future__ import annotations

import re
import subprocess

# nvidia-smi --query-gpu field names (nvidia-smi --help-query-gpu), each with older spellings after
# it: drivers from R535 call throttle reasons "clocks event reasons" and keep the old name as an alias.
GPU_STATE_FIELDS = {
    "driver_version": ("driver_version",),
    "pstate": ("pstate",),
    "sm_clock_mhz": ("clocks.sm",),
    "memory_clock_mhz": ("clocks.mem",),
    "max_sm_clock_mhz": ("clocks.max.sm",),
    "power_limit_w": ("power.limit",),
    "enforced_power_limit_w": ("enforced.power.limit",),
    "power_draw_w": ("power.draw",),
    "temperature_c": ("temperature.gpu",),
    "throttle_reasons": ("clocks_event_reasons.active", "clocks_throttle_reasons.active"),
    # Microseconds spent in each reason since boot (newer drivers only): end minus start is the
    # time the run was held back, which a snapshot at either end can miss.
    "sw_power_cap_us": ("clocks_event_reasons_counters.sw_power_cap",),
    "sw_thermal_slowdown_us": ("clocks_event_reasons_counters.sw_thermal_slowdown",),
    "hw_thermal_slowdown_us": ("clocks_event_reasons_counters.hw_thermal_slowdown",),
    "hw_power_brake_slowdown_us": ("clocks_event_reasons_counters.hw_power_brake_slowdown",),
}
# NVML's clocks event (throttle) reason bits.
THROTTLE_BITS = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}
# Reasons that are settings or an idle GPU, not a slowdown of the work being timed.
NOT_SLOWDOWNS = {"gpu_idle", "applications_clocks_setting", "sync_boost", "display_clock_setting"}
TEXT_FIELDS = {"driver_version", "pstate", "throttle_reasons"}  # the rest are numbers
SMI_TIMEOUT_S = 10


def device_name(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return "cpu"


def slug(name: str) -> str:
    """A folder name for a device name: 'NVIDIA H100 80GB HBM3' -> 'NVIDIA_H100_80GB_HBM3'."""
    return re.sub(r"[^A-Za-z0-9.]+", "_", name).strip("_")


def device_slug(device: str) -> str:
    """A folder name for the device: 'NVIDIA_H100_80GB_HBM3', 'cpu'."""
    return slug(device_name(device))


def baselines_folder(device: str, root: str = "baselines") -> str:
    """Where the suite stores this device's runs on this machine: ``baselines/<device>/<machine id>``
    (pytest-benchmark's ``<OS>-<Python>-<version>-<bits>bit``), the folder ``compare --latest-in`` reads."""
    from pytest_benchmark.utils import get_machine_id

    return f"{root}/{device_slug(device)}/{get_machine_id()}"


def accelerator_info(device: str) -> dict:
    import mmcv
    import mmdet
    import torch

    info = {
        "device": device_name(device),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "mmcv": mmcv.__version__,
        "mmdet": mmdet.__version__,
    }
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(torch.device(device))
        info["gpu_memory_gib"] = round(props.total_memory / 1024**3, 1)
        info["gpu_capability"] = f"{props.major}.{props.minor}"
    return info


def gpu_state(device: str) -> dict:
    """The GPU's clocks, power, temperature and throttle state now, or ``{"unavailable": why}``."""
    if not device.startswith("cuda"):
        return {"unavailable": "not a CUDA run"}
    import torch

    props = torch.cuda.get_device_properties(torch.device(device))
    # -1 where torch does not say: then only a machine with one GPU gets an answer.
    pci = tuple(getattr(props, name, -1) for name in ("pci_domain_id", "pci_bus_id", "pci_device_id"))
    return query_gpu_state(pci)


def query_gpu_state(pci: tuple) -> dict:
    """``nvidia-smi --query-gpu`` for the GPU at PCI (domain, bus, device).

    The GPU is picked by PCI address rather than index, since CUDA_VISIBLE_DEVICES renumbers
    devices for CUDA but not for nvidia-smi. All fields are asked in one call; a driver that does
    not know one of them fails the whole call, so then each is asked alone (and by its older
    names), and what the driver does not know is recorded as None.
    """
    try:
        rows = _smi_rows([names[0] for names in GPU_STATE_FIELDS.values()])
    except _SmiUnusable as exc:
        return {"unavailable": str(exc)}
    except _SmiRefused as exc:
        state = {key: _value(key, _field_alone(names, pci)) for key, names in GPU_STATE_FIELDS.items()}
        return state if any(v is not None for v in state.values()) else {"unavailable": str(exc)}
    row = _row_of(rows, pci)
    if row is None:
        return {"unavailable": f"nvidia-smi lists no GPU at PCI {_pci_text(pci)}"}
    return {key: _value(key, text) for key, text in zip(GPU_STATE_FIELDS, row)}


class _SmiUnusable(OSError):
    """nvidia-smi is not there, or does not answer."""


class _SmiRefused(RuntimeError):
    """nvidia-smi ran and refused the query (an unknown field, no driver loaded)."""


def _smi_rows(fields: list) -> list:
    """One row per GPU: its PCI bus id, then the fields' values as text."""
    cmd = ["nvidia-smi", f"--query-gpu=pci.bus_id,{','.join(fields)}", "--format=csv,noheader,nounits"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=SMI_TIMEOUT_S, check=False)
    except FileNotFoundError:
        raise _SmiUnusable("nvidia-smi not found") from None
    except (OSError, subprocess.SubprocessError) as exc:
        raise _SmiUnusable(f"nvidia-smi failed: {exc}") from None
    if done.returncode != 0:
        message = (done.stdout + done.stderr).strip().splitlines()
        raise _SmiRefused(f"nvidia-smi exited {done.returncode}: {message[0] if message else 'no output'}")
    return [[cell.strip() for cell in line.split(",")] for line in done.stdout.splitlines() if line.strip()]


def _field_alone(names: tuple, pci: tuple) -> str | None:
    for name in names:
        try:
            row = _row_of(_smi_rows([name]), pci)
        except (_SmiUnusable, _SmiRefused):
            continue
        if row is not None:
            return row[0]
    return None


def _row_of(rows: list, pci: tuple) -> list | None:
    """The row of the GPU at ``pci``; the only row when nvidia-smi lists one GPU."""
    for row in rows:
        m = re.fullmatch(r"([0-9A-Fa-f]+):([0-9A-Fa-f]+):([0-9A-Fa-f]+)\.\d+", row[0])
        if m and tuple(int(part, 16) for part in m.groups()) == tuple(pci):
            return row[1:]
    return rows[0][1:] if len(rows) == 1 else None


def _pci_text(pci: tuple) -> str:
    return "{:08X}:{:02X}:{:02X}.0".format(*pci) if min(pci) >= 0 else "(torch does not report it)"


def _value(key: str, text: str | None):
    """The field's value: text or a number; None for nvidia-smi's '[N/A]', '[Not Supported]' and the like."""
    if not text or text.startswith("[") or text in ("N/A", "Not Supported"):
        return None
    if key in TEXT_FIELDS:
        return text
    try:
        number = float(text)
    except ValueError:
        return None
    return int(number) if number.is_integer() else number


def throttle_reasons(mask) -> list:
    """Names of the reasons set in an nvidia-smi reasons mask ('0x0000000000000004')."""
    try:
        bits = int(str(mask), 16)
    except ValueError:
        return []
    names = [name for bit, name in THROTTLE_BITS.items() if bits & bit]
    unknown = bits & ~sum(THROTTLE_BITS)
    return names + ([f"unknown reason {unknown:#x}"] if unknown else [])


def stored_gpu_state(run: dict) -> dict | None:
    """A run's ``{"start": ..., "end": ...}`` GPU state: a top-level key, or inside ``machine_info`` in
    runs stored before it moved out (where it made pytest-benchmark warn on every compare that the
    machine differed, since clocks and temperatures always do)."""
    if not isinstance(run, dict):
        return None
    states = run.get("gpu_state")
    if states is None and isinstance(run.get("machine_info"), dict):
        states = run["machine_info"].get("gpu_state")
    return states if isinstance(states, dict) else None


def throttle_warning(run: dict) -> str | None:
    """One line when the stored GPU state shows the run was slowed (power cap, heat, HW slowdown).

    Looks at the reasons active at the start and the end of the run, and, where the driver keeps
    them, at the time each slowdown counter advanced in between. Runs without a GPU state say nothing.
    """
    states = stored_gpu_state(run)
    if states is None:
        return None
    found = []
    for when in ("start", "end"):
        state = states.get(when)
        if isinstance(state, dict) and state.get("throttle_reasons"):
            slow = [r for r in throttle_reasons(state["throttle_reasons"]) if r not in NOT_SLOWDOWNS]
            if slow:
                found.append(f"{', '.join(slow)} active at the {when}")
    start, end = states.get("start"), states.get("end")
    if isinstance(start, dict) and isinstance(end, dict):
        for key in (k for k in GPU_STATE_FIELDS if k.endswith("_us")):
            before, after = start.get(key), end.get(key)
            if isinstance(before, (int, float)) and isinstance(after, (int, float)) and after > before:
                found.append(f"{(after - before) / 1e6:.2f} s of {key[:-3]} during the run")
    if not found:
        return None
    return f"WARNING: the GPU was throttled ({'; '.join(found)}): timings of this run may be slow"


def gpu_state_line(run: dict) -> str | None:
    """'GPU: driver 580.65.06; SM clock 1980 -> 1980 MHz, ...' from the stored start and end state."""
    states = stored_gpu_state(run)
    if states is None:
        return None
    start, end = states.get("start") or {}, states.get("end") or {}
    if "unavailable" in end:
        return f"GPU state: unavailable ({end['unavailable']})"
    parts = []
    for key, label, unit in (("sm_clock_mhz", "SM clock", "MHz"), ("memory_clock_mhz", "memory clock", "MHz"),
                             ("enforced_power_limit_w", "power limit", "W"), ("temperature_c", "temperature", "C")):
        values = [s.get(key) for s in (start, end)]
        if any(v is not None for v in values):
            parts.append(f"{label} {' -> '.join('?' if v is None else f'{v:g}' for v in values)} {unit}")
    if any(s.get("throttle_reasons") for s in (start, end)):
        reasons = [", ".join(throttle_reasons(s.get("throttle_reasons") or "0x0")) or "none" for s in (start, end)]
        parts.append(f"clock event reasons {' -> '.join(reasons)}")
    return f"GPU state (start -> end): driver {end.get('driver_version') or '?'}; " + "; ".join(parts)


def main(argv=None) -> int:
    import argparse

    from .arguments import default_device

    parser = argparse.ArgumentParser(prog="python -m mmdet_opt.machine",
                                     description="Print the folder of this device's stored runs (baselines/<device>/"
                                                 "<machine id>), e.g. for compare --latest-in.")
    parser.add_argument("--device", default=default_device())
    args = parser.parse_args(argv)
    print(baselines_folder(args.device))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
