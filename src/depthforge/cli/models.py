"""``depthforge models``: the registered models — family, parameters, GFLOPs, output kind, weights."""
from __future__ import annotations

import argparse

MAX_SIDE = 4096  # the FLOPs are counted by running every model once at --size


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", type=int, nargs=2, default=(240, 320), metavar=("H", "W"),
                   help="image size the GFLOPs are counted at (default 240 320)")
    p.add_argument("--json", action="store_true", help="print the table as JSON")


def run(args: argparse.Namespace) -> int:
    import json

    from ..errors import DepthforgeError
    from ..models.catalog import catalog

    if not all(16 <= s <= MAX_SIDE for s in args.size):
        raise DepthforgeError(f"--size {args.size[0]} {args.size[1]}: each side must be 16..{MAX_SIDE}")
    rows = catalog(tuple(args.size))
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"depthforge models (GFLOPs at {args.size[0]}x{args.size[1]}, default sizes)")
    for col in ("name", "family", "parameters", "GFLOPs", "output", "max depth", "multiple", "camera", "prompt",
                "pretrained weights"):
        table.add_column(col, justify="right" if col in ("parameters", "GFLOPs", "max depth", "multiple") else "left")
    for r in rows:
        table.add_row(r["name"], r["family"], f"{r['parameters'] / 1e6:.1f} M", f"{r['gflops']:.1f}", r["output"],
                      f"{r['max_depth']:g} m", str(r["multiple"]), "estimated" if r["camera"] else "-",
                      "depth prompt" if r["prompt"] else "-", r["weights"])
    Console(width=200).print(table)
    return 0
