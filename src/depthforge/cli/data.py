"""``depthforge data synth`` and ``depthforge data check``."""
from __future__ import annotations

import argparse

from . import path_arg


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    s = sub.add_parser("synth", help="render built-in synthetic rooms to a dataset folder (RGB PNG + 16-bit mm PNG)")
    s.add_argument("--out", required=True, type=path_arg, help="output folder")
    s.add_argument("--n", type=int, default=100, help="number of scenes (default 100)")
    s.add_argument("--size", type=int, nargs=2, default=(240, 320), metavar=("H", "W"))
    s.add_argument("--split", choices=("train", "val", "test"), default="train")
    s.add_argument("--holes", action="store_true", help="Kinect-like holes and noise in the depth")
    c = sub.add_parser("check", help="counts, sizes, depth ranges and every bad file of a dataset")
    c.add_argument("dataset", type=path_arg, help="a dataset folder, zip or .mat, or a registered name")
    c.add_argument("--splits", nargs="+", default=["train", "test"])
    c.add_argument("--encoding", help="depth encoding of the depth files (mm, kitti256, tum5000, sunrgbd, ...); "
                                      "default: the dataset's own")


def run(args: argparse.Namespace) -> int:
    if args.data_command == "synth":
        from ..data.synth import write_dataset

        out = write_dataset(args.out, args.n, size=tuple(args.size), split=args.split, holes=args.holes)
        print(f"{args.n} scenes written to {out}")
        return 0
    import os
    from pathlib import Path

    from ..data import DATASETS
    from ..data.check import check_dataset, format_report
    from ..data.io import check_encoding
    from ..errors import DepthforgeError

    if args.dataset not in DATASETS and not Path(args.dataset).exists():
        raise DepthforgeError(f"{args.dataset}: dataset not found (a path, or one of {', '.join(sorted(DATASETS))})")
    spec = {"name": args.dataset} if args.dataset in DATASETS else {"name": "auto", "root": args.dataset}
    bad = [s for s in args.splits if not s.strip() or "/" in s or os.sep in s]
    if bad:
        raise DepthforgeError(f"--splits {bad[0]!r}: a split is a name like train or test, not a path")
    if args.encoding is not None:  # the layout is still detected: nyu, kitti and folder all take it
        check_encoding(args.encoding, "--encoding")
        spec["depth_encoding"] = args.encoding
    report = check_dataset(spec, splits=tuple(args.splits))
    print(format_report(report))
    return 0 if report.ok else 1  # a script can tell a dataset with problems
