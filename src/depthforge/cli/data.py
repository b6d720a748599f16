"""``depthforge data synth`` and ``depthforge data check``."""
from __future__ import annotations

import argparse

from . import path_arg


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    s = sub.add_parser("synth", help="render built-in synthetic rooms to a dataset folder (RGB PNG + 16-bit mm PNG), "
                                     "or with --video camera clips through them (frames + poses, and an .mp4)")
    s.add_argument("--out", required=True, type=path_arg, help="output folder")
    s.add_argument("--n", type=int, help="number of scenes (default 100) or, with --video, of clips (default 1)")
    s.add_argument("--size", type=int, nargs=2, default=(240, 320), metavar=("H", "W"))
    s.add_argument("--split", choices=("train", "val", "test"), default=None,
                   help="default: train (scenes), test (clips: the video suite's)")
    s.add_argument("--holes", action="store_true", help="Kinect-like holes and noise in the depth")
    s.add_argument("--video", action="store_true",
                   help="clips of the video suite instead: OUT/clip_NNNN/ (rgb_N.png, depth_N.png, pose.txt, "
                        "intrinsics.txt: `eval --data` reads it) and OUT/clip_NNNN.mp4 (H.264: `predict` reads it)")
    s.add_argument("--frames", type=int, help="frames per clip (--video; default 60)")
    s.add_argument("--path", choices=("walk", "pan", "orbit"), help="camera path (--video; default: each clip's)")
    s.add_argument("--fps", type=float, help="frame rate of the .mp4 (--video; default 15)")
    c = sub.add_parser("check", help="counts, sizes, depth ranges and every bad file of a dataset")
    c.add_argument("dataset", type=path_arg, help="a dataset folder, zip or .mat, or a registered name")
    c.add_argument("--splits", nargs="+", default=["train", "test"])
    c.add_argument("--encoding", help="depth encoding of the depth files (mm, kitti256, tum5000, sunrgbd, ...); "
                                      "default: the dataset's own")


def run(args: argparse.Namespace) -> int:
    if args.data_command == "synth":
        return _synth(args)
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


def _synth(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..data.synth import check_clip, write_clip, write_dataset
    from ..errors import DepthforgeError

    if not args.video:
        given = [f"--{k}" for k in ("frames", "path", "fps") if getattr(args, k) is not None]
        if given:
            raise DepthforgeError(f"{', '.join(given)}: for clips; add --video")
        n = 100 if args.n is None else args.n
        out = write_dataset(args.out, n, size=tuple(args.size), split=args.split or "train", holes=args.holes)
        print(f"{n} scenes written to {out}")
        return 0
    from ..files import atomic_path
    from ..inference.video import VideoWriter

    n = 1 if args.n is None else args.n
    if not 1 <= n <= 10_000:
        raise DepthforgeError(f"--n {n}: clips must be 1..10000")
    if args.holes:
        raise DepthforgeError("--holes is for scenes; the clips' depth is exact")
    frames = 60 if args.frames is None else args.frames
    fps, split = 15.0 if args.fps is None else args.fps, args.split or "test"
    if not 0 < fps <= 1000:
        raise DepthforgeError(f"--fps {fps:g}: the frame rate must be in (0, 1000]")
    check_clip(split, tuple(args.size), frames, args.path)  # before any file is opened
    root = Path(args.out)
    for c in range(n):
        name = f"clip_{c:04d}"
        with atomic_path(root / f"{name}.mp4") as tmp:
            video = VideoWriter(tmp, fps)
            try:
                write_clip(root / name, c, split, tuple(args.size), frames, args.path, on_frame=video.write)
            finally:
                video.close()
        print(f"{root / name} and {root / name}.mp4: {frames} frames")
    return 0
