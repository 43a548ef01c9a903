"""What ``eval`` prints and writes: the table of each variant against stock, and the verdict."""
from __future__ import annotations

import sys

COLUMNS = ("variant", "bbox mAP", "Δ bbox", "segm mAP", "Δ segm", "images/s")


def table(rows: list) -> str:
    """One line per variant, stock (the first row) with no deltas."""
    stock = rows[0]
    lines = []
    for row in rows:
        name = f"{row['runs_as']} (stock)" if row is stock else row["runs_as"]
        deltas = ["-", "-"] if row is stock else [f"{row[k] - stock[k]:+.4f}" for k in ("bbox_mAP", "segm_mAP")]
        lines.append((name, f"{row['bbox_mAP']:.4f}", deltas[0], f"{row['segm_mAP']:.4f}", deltas[1],
                      f"{row['images_per_s']:.2f}"))
    width = max(len(COLUMNS[0]), *(len(line[0]) for line in lines))
    fmt = f"{{:<{width}}}" + "  {:>9}" * (len(COLUMNS) - 1)
    return "\n".join(fmt.format(*line) for line in [COLUMNS, *lines])


def outside_tolerance(rows: list, tolerance: float) -> list:
    """The variants whose segm mAP differs from stock's by more than ``tolerance``."""
    return [row for row in rows[1:] if abs(row["segm_mAP"] - rows[0]["segm_mAP"]) > tolerance]


def report(args, rows: list, source: dict, device: str, processes: int) -> int:
    """Print the table and the verdict, write --json; the exit code (see the command's help)."""
    from .results_file import write_json

    what = (f"{source['scenes']} held-out scenes" if "scenes" in source else f"{source['annotations']}")
    print(f"{what}: {source['image_count']} images, {source['smallest']} to {source['largest']}; "
          f"{args.config} {args.checkpoint} on {device}" + (f" x {processes} processes" if processes > 1 else ""))
    print(table(rows))
    failed = outside_tolerance(rows, args.tolerance)
    print(f"segm mAP within {args.tolerance} of stock's: "
          + ("every variant" if not failed else "no for " + ", ".join(row["runs_as"] for row in failed)))
    skipped = [row for row in rows if row["skipped"]]
    for row in skipped:
        print(f"{row['runs_as']}: {row['skipped']} images skipped, scored on the {row['images']} done",
              file=sys.stderr)
    if args.json:
        write_json(args.json, {"dataset": source, "config": args.config, "checkpoint": args.checkpoint,
                               "device": device, "processes": processes, "tolerance": args.tolerance,
                               "variants": rows})
    return 1 if failed or skipped else 0
