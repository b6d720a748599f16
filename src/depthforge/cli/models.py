"""``depthforge models``: the registered models — family, parameters, GFLOPs, output kind, weights.

The table comes from the facts recorded in ``model_facts`` (no model is built: that took a minute, ZoeDepth
alone has 333 M parameters); ``--measure`` builds every model and counts them at ``--size``."""
from __future__ import annotations

import argparse

MAX_SIDE = 4096  # the FLOPs are counted by running every model once at --size
WIDTH = 120  # the table's most columns


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--measure", action="store_true",
                   help="build every model and count its parameters and GFLOPs now (a minute or more) instead of "
                        "reading the recorded facts")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"),
                   help="image size the GFLOPs are counted at with --measure (default 240 320)")
    p.add_argument("--json", action="store_true", help="print the table as JSON")


def run(args: argparse.Namespace) -> int:
    import json
    import shutil

    from ..errors import DepthforgeError
    from .model_facts import FACTS, SIZE

    size = tuple(args.size or SIZE)
    if not all(16 <= s <= MAX_SIDE for s in size):
        raise DepthforgeError(f"--size {size[0]} {size[1]}: each side must be 16..{MAX_SIDE}")
    if args.size and not args.measure:
        raise DepthforgeError(f"--size: the recorded GFLOPs are at {SIZE[0]}x{SIZE[1]}; add --measure to count "
                              "them at another size")
    if args.measure:
        from ..models.catalog import catalog

        rows = catalog(size)
    else:
        rows = [{"name": name, **facts} for name, facts in FACTS.items()]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    from rich.console import Console
    from rich.table import Table

    how = "measured now" if args.measure else "recorded; --measure counts them now"
    table = Table(title=f"depthforge models (GFLOPs at {size[0]}x{size[1]}, {how})")
    for col in ("name", "family", "params", "GFLOPs", "output", "max depth", "pretrained weights"):
        table.add_column(col, justify="right" if col in ("params", "GFLOPs", "max depth") else "left",
                         no_wrap=col in ("name", "params", "GFLOPs", "max depth"))
    for r in rows:
        output = r["output"] + (" + camera" if r.get("camera") else "") + (" + prompt" if r.get("prompt") else "")
        table.add_row(r["name"], r["family"], f"{r['parameters'] / 1e6:.1f} M", f"{r['gflops']:.1f}", output,
                      f"{r['max_depth']:g} m", r["weights"])
    Console(width=min(WIDTH, shutil.get_terminal_size((WIDTH, 24)).columns)).print(table)
    return 0
