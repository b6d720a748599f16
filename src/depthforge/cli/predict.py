"""``depthforge predict``: depth for images, folders, videos or a webcam."""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from . import path_arg


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="image files, folders (a dataset folder with rgb/ and depth/ brings its ground truth), "
                        "a video file, or a camera index such as 0")
    p.add_argument("--checkpoint", required=True, type=path_arg, help="a depthforge checkpoint (.ckpt) or exported .onnx")
    p.add_argument("--out", default="outputs/predict", type=path_arg, help="output folder (default: outputs/predict)")
    p.add_argument("--gt", type=path_arg, help="ground-truth depth file (or folder matched by file stem) for the panel")
    p.add_argument("--gt-encoding", default="mm", help="ground truth encoding: mm, kitti256, tum5000, sunrgbd, "
                   "nyu8bit, metres (.npy)")
    p.add_argument("--ply", action="store_true", help="also write a coloured point cloud (PLY) per image")
    p.add_argument("--intrinsics", nargs=4, type=float, metavar=("FX", "FY", "CX", "CY"),
                   help="camera intrinsics for --ply (default: a dataset folder's intrinsics.txt, else the "
                        "model's estimate of the camera (Depth Pro), else a 60° field of view)")
    p.add_argument("--prompt-depth", type=path_arg, metavar="FILE",
                   help="a depth prompt for a model that takes one (prompt-depth-anything): a low-resolution depth "
                        "map of the same view, 16-bit PNG in millimetres or .npy in metres (or a folder of them "
                        "matched by file stem)")
    p.add_argument("--flip", action="store_true", help="average with the mirrored image's prediction")
    p.add_argument("--resize", choices=("train", "pad"), default="train",
                   help="run at the training size (default) or pad the full image")
    p.add_argument("--max-frames", type=int, help="videos/cameras: stop after N frames")
    p.add_argument("--video-out", nargs="+", choices=("color", "depth", "npy", "png"), default=["color"],
                   metavar="KIND", help="videos/cameras: what to write, one or more of color (the frame beside its "
                   "colour-mapped depth, H.264 NAME_depth.mp4; the default), depth (16-bit depth video, lossless "
                   "FFV1 NAME_depth.mkv, encoded as the 16-bit PNGs), npy (float32 per frame) and png (16-bit PNG "
                   "per frame), the last two in NAME_depth_frames/")
    p.add_argument("--no-stabilize", action="store_true",
                   help="videos/cameras: per-frame depth as the model gives it (default: stabilised over time)")
    p.add_argument("--stabilize-scale", action="store_true",
                   help="videos/cameras: rescale a metric model's frames to a running reference too (relative "
                        "and disparity outputs always are; a metric one is only smoothed by default)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")


def run(args: argparse.Namespace) -> int:
    from ..data.io import check_encoding
    from ..data.sample import intrinsics_matrix
    from ..errors import DepthforgeError
    from ..files import ensure_dir
    from ..inference.photos import collect_inputs, distinct, output_names, predict_images
    from ..inference.load import load
    from ..inference.video import is_video_source, predict_video

    # every option checked before the model loads: a bad one costs one line, not a model load and a half run
    if args.intrinsics and not all(0 < v < float("inf") for v in args.intrinsics[:2]):
        raise DepthforgeError(f"--intrinsics: fx and fy must be positive numbers, got {args.intrinsics[:2]}")
    if args.intrinsics and not all(math.isfinite(v) for v in args.intrinsics):
        raise DepthforgeError(f"--intrinsics: cx and cy must be finite numbers, got {args.intrinsics[2:]}")
    if args.max_frames is not None and args.max_frames < 1:
        raise DepthforgeError(f"--max-frames: at least 1 frame, got {args.max_frames}")
    if args.gt is not None and not Path(args.gt).exists():
        raise DepthforgeError(f"--gt {args.gt}: no such file or folder")
    check_encoding(args.gt_encoding, "--gt-encoding")
    if args.prompt_depth is not None and not Path(args.prompt_depth).exists():
        raise DepthforgeError(f"--prompt-depth {args.prompt_depth}: no such file or folder")
    predictor = load(args.checkpoint, device=args.device, resize=args.resize, flip=args.flip)
    if args.prompt_depth is not None:
        predictor.check_prompt_taken()
    else:
        predictor.check_prompt_needed()
    out = ensure_dir(args.out)
    videos = [a for a in args.inputs if is_video_source(a)]
    images = [a for a in args.inputs if a not in videos]
    if args.prompt_depth is not None and videos:
        raise DepthforgeError(f"--prompt-depth: depth prompts go with photos, not videos ({videos[0]})")
    cameras = list(dict.fromkeys(int(a) for a in videos if a.isdigit()))
    files = distinct([Path(a) for a in videos if not a.isdigit()])
    k = intrinsics_matrix(*args.intrinsics) if args.intrinsics else None
    written = failed = 0
    for source, name in [*((c, f"camera{c}") for c in cameras), *zip(files, output_names(files))]:
        stats = predict_video(predictor, source, out / f"{name}_depth.mp4", max_frames=args.max_frames,
                              stabilize=not args.no_stabilize, align=True if args.stabilize_scale else None,
                              outputs=tuple(args.video_out))
        print(f"{source}: {stats['frames']} frames at {stats['fps']:.1f} frames/s "
              f"({stats['video_fps']:g} frames/s video) -> {', '.join(stats['files'])}")
        written += 1
    if images:
        d, f = predict_images(predictor, collect_inputs(images, exclude=out), out, gt=args.gt, gt_encoding=args.gt_encoding,
                              ply=args.ply, intrinsics=k, prompt=args.prompt_depth)
        written, failed = written + d, failed + f
    print(f"{written} written to {out}" + (f", {failed} failed (see warnings)" if failed else ""))
    return 0 if written or not failed else 1
