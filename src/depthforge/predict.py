"""``depthforge predict``: depth for photos, folders, videos and webcams.

Per image it writes NAME_color.png (plasma, near = bright), NAME_depth.png (16-bit, millimetres), NAME.npy
(float32 metres), with ground truth the seed's panel NAME_panel.png (prediction | ground truth | image), and
with ``--ply`` a coloured point cloud NAME.ply.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from .data.folder import RGB_DIRS, read_intrinsics_txt
from .data.io import ensure_dir, is_image_file, read_depth, read_image, write_depth_png, write_image, write_npy
from .data.sample import intrinsics_matrix
from .errors import DepthforgeError

log = logging.getLogger(__name__)


def collect_inputs(inputs: list[str]) -> list[tuple[Path, Path | None]]:
    """Images to predict, each with its ground-truth depth when a dataset folder (rgb/ + depth/) holds one.
    Non-image files in a folder are skipped with a warning."""
    items: list[tuple[Path, Path | None]] = []
    for arg in inputs:
        path = Path(arg)
        if path.is_file():
            items.append((path, None))
            continue
        if not path.is_dir():
            raise DepthforgeError(f"{path}: no such file or folder")
        rgb = next((path / d for d in RGB_DIRS if (path / d).is_dir()), None)
        folder = rgb or path
        depths = {p.stem: p for p in (path / "depth").glob("*")} if rgb and (path / "depth").is_dir() else {}
        for f in sorted(folder.iterdir()):
            if f.is_dir():
                continue
            if not is_image_file(f):
                log.warning("%s: not an image, skipped", f)
                continue
            items.append((f, depths.get(f.stem)))
    return items


def _gt_for(image: Path, auto: Path | None, gt: str | None) -> Path | None:
    if gt is None:
        return auto
    g = Path(gt)
    if g.is_dir():
        return next((p for p in g.glob(f"{image.stem}.*")), None)
    return g


def predict_images(predictor, items: list[tuple[Path, Path | None]], out: Path, gt: str | None = None,
                   gt_encoding: str = "mm", ply: bool = False, intrinsics: np.ndarray | None = None,
                   progress: bool = True) -> tuple[int, int]:
    """Predict and write every output; returns (written, failed). A bad file costs one warning line."""
    from tqdm import tqdm

    from .viz import colorize, panel

    done = failed = 0
    for image_path, auto_gt in tqdm(items, desc="predicting", unit="img", disable=not progress or len(items) < 2):
        try:
            image = read_image(image_path)
            depth = predictor(image)
            name = image_path.stem
            write_image(out / f"{name}_color.png", colorize(depth))
            write_depth_png(out / f"{name}_depth.png", depth)
            write_npy(out / f"{name}.npy", depth)
            gt_path = _gt_for(image_path, auto_gt, gt)
            if gt_path is not None:
                gt_depth = read_depth(gt_path, gt_encoding)
                if gt_depth.shape != depth.shape:
                    raise DepthforgeError(f"{gt_path}: ground truth is {gt_depth.shape[1]}x{gt_depth.shape[0]}, "
                                          f"image is {depth.shape[1]}x{depth.shape[0]}")
                write_image(out / f"{name}_panel.png", panel(depth, image, gt_depth))
            if ply:
                from .pointcloud import backproject, write_ply

                k = intrinsics
                if k is None and (image_path.parent.parent / "intrinsics.txt").is_file():
                    k = read_intrinsics_txt(image_path.parent.parent / "intrinsics.txt")
                points, colors = backproject(depth, k, image)
                write_ply(out / f"{name}.ply", points, colors)
            done += 1
        except DepthforgeError as e:
            log.warning("%s", e)
            failed += 1
    return done, failed


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="image files, folders (a dataset folder with rgb/ and depth/ brings its ground truth), "
                        "a video file, or a camera index such as 0")
    p.add_argument("--checkpoint", required=True, help="a depthforge checkpoint (.ckpt) or exported .onnx")
    p.add_argument("--out", default="outputs/predict", help="output folder (default: outputs/predict)")
    p.add_argument("--gt", help="ground-truth depth file (or folder matched by file stem) for the panel")
    p.add_argument("--gt-encoding", default="mm", help="ground truth encoding: mm, kitti256, tum5000, sunrgbd, "
                   "nyu8bit, metres (.npy)")
    p.add_argument("--ply", action="store_true", help="also write a coloured point cloud (PLY) per image")
    p.add_argument("--intrinsics", nargs=4, type=float, metavar=("FX", "FY", "CX", "CY"),
                   help="camera intrinsics for --ply (default: estimated from a 60° field of view)")
    p.add_argument("--flip", action="store_true", help="average with the mirrored image's prediction")
    p.add_argument("--resize", choices=("train", "pad"), default="train",
                   help="run at the training size (default) or pad the full image")
    p.add_argument("--max-frames", type=int, help="videos/cameras: stop after N frames")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")


def run(args: argparse.Namespace) -> int:
    from .api import load
    from .video import is_video_source, predict_video

    predictor = load(args.checkpoint, device=args.device, resize=args.resize, flip=args.flip)
    out = ensure_dir(args.out)
    videos = [a for a in args.inputs if is_video_source(a)]
    images = [a for a in args.inputs if a not in videos]
    k = intrinsics_matrix(*args.intrinsics) if args.intrinsics else None
    written = failed = 0
    for source in videos:
        src = int(source) if source.isdigit() else source
        name = f"camera{source}" if isinstance(src, int) else Path(source).stem
        stats = predict_video(predictor, src, out / f"{name}_depth.mp4", max_frames=args.max_frames)
        print(f"{source}: {stats['frames']} frames at {stats['fps']:.1f} frames/s -> {stats['path']}")
        written += 1
    if images:
        d, f = predict_images(predictor, collect_inputs(images), out, gt=args.gt, gt_encoding=args.gt_encoding,
                              ply=args.ply, intrinsics=k)
        written, failed = written + d, failed + f
    print(f"{written} written to {out}" + (f", {failed} failed (see warnings)" if failed else ""))
    return 0 if written or not failed else 1
