"""``depthforge export``: a model as ONNX (fp32, or int8 calibrated on training data)."""
from __future__ import annotations

import argparse

from ..inference.export import EXPORTERS
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="depthforge checkpoint to export")
    parser.add_argument("--onnx", required=True, help="output file, e.g. model.onnx")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default 17; 18 with --exporter dynamo)")
    parser.add_argument("--exporter", choices=EXPORTERS, default="torchscript",
                        help="torch.onnx exporter: torchscript (fast, default) or dynamo (torch.export based)")
    parser.add_argument("--no-check", action="store_true", help="skip the onnxruntime vs PyTorch comparison")


def run(args: argparse.Namespace) -> int:
    from ..inference.export import export_onnx

    result = export_onnx(args.checkpoint, args.onnx, args.opset, args.exporter, check=not args.no_check)
    print(f"wrote {result['path']} ({result['bytes'] / 1e6:.1f} MB, opset {result['opset']}, "
          f"{result['exporter']} exporter; dynamic batch, height and width)")
    if result["max_abs_diff"] is not None:
        print(f"onnxruntime vs PyTorch on a random 2-image batch: max |difference| {result['max_abs_diff']:.2e}")
    print(f"use it: depthforge.load({str(result['path'])!r})  # same API as the checkpoint")
    return 0
