"""``depthforge bench``: speed and memory figures, side by side in one run."""
from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    p.add_argument("--size", type=int, nargs=2, default=(240, 320), metavar=("H", "W"))
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=2, help="timed training steps per configuration (best is kept)")
    p.add_argument("--width", type=float, default=1.0, help="U-Net width multiplier (1.0 = the seed's)")
    p.add_argument("--no-onnx", action="store_true", help="skip the onnxruntime comparison")


def run(args: argparse.Namespace) -> int:
    from ..bench import bench

    results = bench(tuple(args.size), args.batch, args.steps, args.width, progress=not args.json,
                    onnx=not args.no_onnx)
    if args.json:
        print(json.dumps(results))
        return 0
    for key, value in results.items():
        print(f"{key:48s} {value:.3f}" if isinstance(value, float) else f"{key:48s} {value}")
    return 0


