"""``depthforge export``: a checkpoint as an ONNX model, and an onnxruntime Predictor behind the same API.

The graph is the network alone, image [N,3,H,W] in [0,1] -> depth [N,1,H,W], with dynamic N, H and W (H and W
multiples of the model's ``multiple``); resizing and padding stay outside, in ``inference.infer``, shared with
PyTorch. The checkpoint's metadata travels in the model's ``metadata_props``: ``depthforge`` (the checkpoint's
info: model, config with the training size) and ``depthforge.model`` (metric, max_depth, multiple), so
``depthforge.load("model.onnx")`` predicts exactly as ``depthforge.load(checkpoint)``.
"""
from __future__ import annotations

import argparse
import io
import json
import logging
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .api import Predictor, from_module, train_size
from .data.io import write_bytes
from .errors import DepthforgeError

log = logging.getLogger(__name__)

INPUT, OUTPUT = "image", "depth"
META_KEY, MODEL_KEY = "depthforge", "depthforge.model"
EXPORTERS = ("torchscript", "dynamo")


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else type(e).__name__


def _example_size(model: torch.nn.Module, info: dict) -> tuple[int, int]:
    m = int(getattr(model, "multiple", 1))
    h, w = train_size(info) or (8 * m, 8 * m)
    return -(-h // m) * m, -(-w // m) * m


def _to_proto(model: torch.nn.Module, example: torch.Tensor, opset: int, exporter: str):
    import onnx

    if exporter == "torchscript":
        buf = io.BytesIO()
        axes = {0: "batch", 2: "height", 3: "width"}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(model, (example,), buf, dynamo=False, input_names=[INPUT], output_names=[OUTPUT],
                              dynamic_axes={INPUT: axes, OUTPUT: axes}, opset_version=opset)
        return onnx.load_from_string(buf.getvalue())
    m = int(getattr(model, "multiple", 1))
    dim = torch.export.Dim
    shapes = {"image": {0: dim("batch", min=1), 2: m * dim("h", min=1), 3: m * dim("w", min=1)}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (example,), dynamo=True, input_names=[INPUT], output_names=[OUTPUT],
                                    dynamic_shapes=shapes, opset_version=opset, verbose=False)
    return program.model_proto


def export_module(model: torch.nn.Module, info: dict, onnx_path: str | os.PathLike, opset: int | None = None,
                  exporter: str = "torchscript", check: bool = True) -> dict[str, Any]:
    """Export a depth model with its checkpoint metadata to ``onnx_path`` (atomic write).

    Returns {"path", "opset", "exporter", "bytes", "max_abs_diff"}; the last compares onnxruntime with PyTorch
    on a random batch of 2 at a size other than the example's, so the dynamic axes are checked too
    (None with ``check=False``).
    """
    import onnx

    if exporter not in EXPORTERS:
        raise DepthforgeError(f"exporter must be one of {', '.join(EXPORTERS)}, got {exporter!r}")
    path = Path(onnx_path)
    if path.suffix.lower() != ".onnx":
        raise DepthforgeError(f"{path}: the ONNX file name must end in .onnx (depthforge.load goes by the suffix)")
    opset = opset or (17 if exporter == "torchscript" else 18)
    model = model.cpu().eval()
    h, w = _example_size(model, info)
    example = torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(0))
    try:
        proto = _to_proto(model, example, opset, exporter)
    except Exception as e:  # exporters raise many types; the user needs the first line
        raise DepthforgeError(f"{path}: ONNX export ({exporter}, opset {opset}) failed: {_first_line(e)}") from None
    attrs = {"metric": bool(getattr(model, "metric", True)), "max_depth": float(getattr(model, "max_depth", 0.0)),
             "multiple": int(getattr(model, "multiple", 1))}
    for key, value in ((META_KEY, info), (MODEL_KEY, attrs)):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    proto.producer_name = "depthforge"
    data = proto.SerializeToString()
    onnx.checker.check_model(data)
    write_bytes(path, data)
    diff = None
    if check:
        m = attrs["multiple"]
        x = torch.rand(2, 3, h + m, w + 2 * m, generator=torch.Generator().manual_seed(1))
        with torch.inference_mode():
            ref = model(x).numpy()
        out = _session(path, ["CPUExecutionProvider"]).run([OUTPUT], {INPUT: x.numpy()})[0]
        diff = float(np.abs(out - ref).max())
    return {"path": str(path), "opset": opset, "exporter": exporter, "bytes": len(data), "max_abs_diff": diff}


def export_onnx(checkpoint: str | os.PathLike, onnx_path: str | os.PathLike, opset: int | None = None,
                exporter: str = "torchscript", check: bool = True) -> dict[str, Any]:
    """Checkpoint -> ONNX file; see ``export_module``."""
    from .checkpoint import load_checkpoint

    model, info = load_checkpoint(checkpoint)
    return export_module(model, info, onnx_path, opset, exporter, check)


def _session(path: str | os.PathLike, providers: list[str]):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
    except Exception as e:  # onnxruntime raises its own exception types for unreadable models
        raise DepthforgeError(f"{path}: not a loadable ONNX model ({_first_line(e)})") from None


def load_onnx(path: str | os.PathLike, device: str | None = None, **options: Any) -> Predictor:
    """An exported ``.onnx`` -> Predictor running onnxruntime (CUDA provider for device "cuda").

    ``options`` as for ``depthforge.load``. Resizing/padding run in PyTorch on the CPU around the session.
    """
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise DepthforgeError(f"{path}: ONNX model not found")
    available = ort.get_available_providers()
    kind = (torch.device(device).type if device is not None
            else "cuda" if "CUDAExecutionProvider" in available else "cpu")
    if kind == "cuda":
        if "CUDAExecutionProvider" not in available:
            raise DepthforgeError(f"{path}: device cuda requested but onnxruntime has no CUDA provider "
                                  "(install onnxruntime-gpu)")
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    elif kind == "cpu":
        providers = ["CPUExecutionProvider"]
    else:
        raise DepthforgeError(f"{path}: device {device!r} is not supported for ONNX models (use cpu or cuda)")
    session = _session(path, providers)
    meta = session.get_modelmeta().custom_metadata_map
    try:
        info, attrs = json.loads(meta[META_KEY]), json.loads(meta[MODEL_KEY])
    except (KeyError, ValueError):
        raise DepthforgeError(f"{path}: not a depthforge ONNX export (no depthforge metadata)") from None

    def forward(x: torch.Tensor) -> torch.Tensor:
        y = session.run([OUTPUT], {INPUT: np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)})[0]
        return torch.from_numpy(y).to(x.device)

    predictor = Predictor(forward, info, metric=attrs["metric"], max_depth=attrs["max_depth"],
                          multiple=attrs["multiple"], device=torch.device("cpu"), source=str(path), **options)
    predictor.providers = session.get_providers()
    return predictor


def bench_onnx(checkpoint: str | os.PathLike, size: tuple[int, int] = (240, 320), n: int = 5) -> dict[str, Any]:
    """PyTorch vs onnxruntime latency on CPU, ms per image (batch 1, median of ``n`` interleaved runs).

    ``size`` is rounded up to the model's multiple. Returns {"size", "n", "torch_ms", "onnx_ms", "speedup"
    (torch_ms / onnx_ms), "max_abs_diff"}.
    """
    from .checkpoint import load_checkpoint

    model, info = load_checkpoint(checkpoint)
    torch_predictor = from_module(model, info, "cpu", resize="pad")
    m = torch_predictor.multiple
    h, w = (-(-int(s) // m) * m for s in size)
    with tempfile.TemporaryDirectory(prefix="depthforge-bench-") as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        export_module(model, info, onnx_path, check=False)
        onnx_predictor = load_onnx(onnx_path, "cpu", resize="pad")
        x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0))
        times: dict[str, list[float]] = {"torch": [], "onnx": []}
        outputs = {}
        for i in range(n + 1):  # the first round warms up and is not counted
            for name, predictor in (("torch", torch_predictor), ("onnx", onnx_predictor)):
                start = time.perf_counter()
                outputs[name] = predictor.predict_tensor(x)
                if i:
                    times[name].append((time.perf_counter() - start) * 1000)
    torch_ms, onnx_ms = statistics.median(times["torch"]), statistics.median(times["onnx"])
    return {"size": [h, w], "n": n, "torch_ms": torch_ms, "onnx_ms": onnx_ms, "speedup": torch_ms / onnx_ms,
            "max_abs_diff": float((outputs["torch"] - outputs["onnx"]).abs().max())}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="depthforge checkpoint to export")
    parser.add_argument("--onnx", required=True, help="output file, e.g. model.onnx")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default 17; 18 with --exporter dynamo)")
    parser.add_argument("--exporter", choices=EXPORTERS, default="torchscript",
                        help="torch.onnx exporter: torchscript (fast, default) or dynamo (torch.export based)")
    parser.add_argument("--no-check", action="store_true", help="skip the onnxruntime vs PyTorch comparison")


def run(args: argparse.Namespace) -> int:
    result = export_onnx(args.checkpoint, args.onnx, args.opset, args.exporter, check=not args.no_check)
    print(f"wrote {result['path']} ({result['bytes'] / 1e6:.1f} MB, opset {result['opset']}, "
          f"{result['exporter']} exporter; dynamic batch, height and width)")
    if result["max_abs_diff"] is not None:
        print(f"onnxruntime vs PyTorch on a random 2-image batch: max |difference| {result['max_abs_diff']:.2e}")
    print(f"use it: depthforge.load({str(result['path'])!r})  # same API as the checkpoint")
    return 0
