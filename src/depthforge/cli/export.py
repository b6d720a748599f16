"""``depthforge export``: a model as ONNX (fp32, or int8 calibrated on training data)."""
from __future__ import annotations

import argparse

from ..errors import DepthforgeError
from ..inference.export import EXPORTERS
from . import path_arg


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, type=path_arg, help="model to export: a depthforge checkpoint, Hugging Face folder or hub id")
    parser.add_argument("--onnx", required=True, type=path_arg, help="output file, e.g. model.onnx")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default 17; 18 with --exporter dynamo)")
    parser.add_argument("--exporter", choices=EXPORTERS, default="torchscript",
                        help="torch.onnx exporter: torchscript (fast, default) or dynamo (torch.export based)")
    parser.add_argument("--no-check", action="store_true", help="skip the onnxruntime vs PyTorch comparison")
    parser.add_argument("--int8", nargs="?", type=int, const=200, default=None, metavar="N",
                        help="also write NAME-int8.onnx, static int8 calibrated on N training images (default 200); "
                             "run it with onnxruntime or depthforge.load(path, runtime='openvino')")
    parser.add_argument("--int8-ops", default="conv", metavar="OPS",
                        help="what --int8 quantises: conv (default) or conv,matmul (also a transformer's matrix "
                             "products: faster where the CPU has VNNI/AMX, less exact)")


def run(args: argparse.Namespace) -> int:
    from ..inference.export import export_onnx
    from ..inference.quantize import parse_ops

    if args.int8 is not None and args.int8 < 1:
        raise DepthforgeError(f"--int8 {args.int8}: the number of calibration images must be 1 or more")
    ops = parse_ops(args.int8_ops)
    result = export_onnx(args.checkpoint, args.onnx, args.opset, args.exporter, check=not args.no_check,
                         int8=args.int8 or 0, int8_ops=ops)
    batch = result["batch"]
    print(f"wrote {result['path']} ({result['bytes'] / 1e6:.1f} MB, opset {result['opset']}, "
          f"{result['exporter']} exporter; " + ("dynamic batch, height and width)" if batch is None else
                                              f"dynamic height and width, batch fixed at {batch})"))
    if result["data"]:
        print(f"its weights are in {result['data']} (ONNX external data, over 1 GB): keep the two files together")
    if result["max_abs_diff"] is not None:
        print(f"onnxruntime vs PyTorch on a random {batch or 2}-image batch: max |difference| "
              f"{result['max_abs_diff']:.2e}")
    if result.get("int8_path"):
        diff = result.get("int8_max_abs_diff")
        print(f"wrote {result['int8_path']} (int8, calibrated on {result['int8_images']} training images)"
              + (f"; max |difference| vs PyTorch {diff:.3g}" if diff is not None else ""))
    print(f"use it: depthforge.load({str(result['path'])!r})  # same API as the source model")
    return 0
