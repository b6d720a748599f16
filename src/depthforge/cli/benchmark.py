"""``depthforge benchmark``: models on the zero-shot benchmark sets under a data root, aligned as the papers
align, in one paper-style table (Markdown, JSON, an HTML page with each set's worst images)."""
from __future__ import annotations

import argparse

from . import path_arg


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..evaluation.benchmark import ALIGNMENTS, ENV

    p.add_argument("--model", action="append", default=[], type=path_arg, metavar="SRC", required=True,
                   help="a checkpoint, an exported .onnx, a Hugging Face model folder or hub id (repeatable)")
    p.add_argument("--root", type=path_arg, help=f"data root holding the benchmark folders (default: ${ENV})")
    p.add_argument("--sets", help="comma-separated benchmark sets or groups, e.g. nyu,realdata (default: all found)")
    p.add_argument("--protocol", choices=list(ALIGNMENTS),
                   help="alignment, as the papers name it (default: metric for metric models, marigold for "
                        "relative depth, depth-anything for disparity)")
    p.add_argument("--limit", type=int, help="at most N images per set")
    p.add_argument("--out", default="outputs/benchmark", type=path_arg,
                   help="report folder (default: outputs/benchmark); finished pairs are kept in OUT/pairs and "
                        "not run again")
    p.add_argument("--overwrite", action="store_true",
                   help="compute every pair again, replacing the results stored in OUT/pairs")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    import shlex
    import sys
    from pathlib import Path

    from ..evaluation.benchmark import benchmark

    from ..errors import DepthforgeError

    sets = [s.strip() for s in args.sets.split(",") if s.strip()] if args.sets is not None else None
    if sets == []:
        raise DepthforgeError("--sets: name at least one benchmark set, or leave it out for every set found")
    report = benchmark(args.model, root=args.root, sets=sets, protocol=args.protocol, out=args.out,
                       limit=args.limit, device=args.device, overwrite=args.overwrite,
                       progress=not args.no_progress, command=shlex.join(["depthforge", *sys.argv[1:]]))
    print((Path(report["out"]) / "benchmark.md").read_text())
    print(f"report: {report['out']}/index.html (also benchmark.md, benchmark.json)")
    return 0
