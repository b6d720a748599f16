"""Export: a model as an ONNX file that ``depthforge.load`` runs with ONNX Runtime or OpenVINO.

The graph is the network alone, image [N,3,H,W] in [0,1] -> [N,1,H,W], with dynamic N, H and W (H and W
multiples of the model's ``multiple``); resizing and padding stay outside, in ``inference.resize.infer``, shared
with PyTorch. The checkpoint's metadata travels in the model's ``metadata_props``: ``depthforge`` (the checkpoint's
info: model, recipe) and ``depthforge.contract`` (the model's contract), so ``depthforge.load("model.onnx")``
predicts exactly as ``depthforge.load(checkpoint)``.
"""
from __future__ import annotations

import io
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DepthforgeError, error_line
from ..files import remove_partial_writes, write_bytes
from ..models.base import DepthModel
from .onnx import CONTRACT_KEY, INPUT, META_KEY, OUTPUT, session

log = logging.getLogger(__name__)

EXPORTERS = ("torchscript", "dynamo")
MIN_OPSET = 7  # the oldest the TorchScript exporter writes


def _example_size(model: DepthModel) -> tuple[int, int]:
    m = model.multiple
    h, w = model.contract.input_size or (8 * m, 8 * m)
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
    m = model.multiple
    dim = torch.export.Dim
    shapes = {"image": {0: dim("batch", min=1), 2: m * dim("h", min=1), 3: m * dim("w", min=1)}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (example,), dynamo=True, input_names=[INPUT], output_names=[OUTPUT],
                                    dynamic_shapes=shapes, opset_version=opset, verbose=False)
    return program.model_proto


def export_module(model: DepthModel, info: dict, onnx_path: str | os.PathLike, opset: int | None = None,
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
    if opset is None:
        opset = 17 if exporter == "torchscript" else 18
    if not MIN_OPSET <= opset <= onnx.defs.onnx_opset_version():
        raise DepthforgeError(f"opset {opset}: ONNX opsets are {MIN_OPSET}..{onnx.defs.onnx_opset_version()} here")
    check_target(path)
    model = model.cpu().eval()
    h, w = _example_size(model)
    example = torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(0))
    try:
        proto = _to_proto(model, example, opset, exporter)
    except Exception as e:  # exporters raise many types; the user needs the first line
        raise DepthforgeError(f"{path}: ONNX export ({exporter}, opset {opset}) failed: {error_line(e)}") from None
    for key, value in ((META_KEY, info), (CONTRACT_KEY, model.contract.to_dict())):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    proto.producer_name = "depthforge"
    data = proto.SerializeToString()
    onnx.checker.check_model(data)
    write_bytes(path, data)
    diff = None
    if check:
        m = model.multiple
        x = torch.rand(2, 3, h + m, w + 2 * m, generator=torch.Generator().manual_seed(1))
        with torch.inference_mode():
            ref = model(x).numpy()
        out = session(path, ["CPUExecutionProvider"]).run([OUTPUT], {INPUT: x.numpy()})[0]
        diff = float(np.abs(out - ref).max())
    return {"path": str(path), "opset": opset, "exporter": exporter, "bytes": len(data), "max_abs_diff": diff}


def check_target(path: Path) -> None:
    """Refuse an output path that is a folder (before the slow export, not at its final rename), and remove the
    temp files a killed export left beside it."""
    if path.is_dir():
        raise DepthforgeError(f"{path}: is a folder; give the ONNX file's name, e.g. {path / 'model.onnx'}")
    remove_partial_writes(path.parent, [path.name])


def export_onnx(checkpoint: str | os.PathLike, onnx_path: str | os.PathLike, opset: int | None = None,
                exporter: str = "torchscript", check: bool = True, int8: int = 0) -> dict[str, Any]:
    """A checkpoint, Hugging Face folder or hub id -> ONNX file; see ``export_module``. With ``int8`` > 0, also a
    static int8 model beside it (``NAME-int8.onnx``), calibrated on up to that many images of the checkpoint's
    training data, or of the built-in synthetic rooms for a model without a recipe (``int8_path``,
    ``int8_images``: how many it was, ``int8_max_abs_diff`` in the result)."""
    from .load import open_module

    if int8 < 0:
        raise DepthforgeError(f"int8: the number of calibration images must be positive, got {int8}")
    path = Path(onnx_path)
    int8_path = path.with_name(f"{path.stem}-int8.onnx")
    if int8:
        check_target(int8_path)
    model, info, _ = open_module(checkpoint)
    result = export_module(model, info, onnx_path, opset, exporter, check)
    if int8:
        from .quantize import quantize_onnx

        calibration = calibration_from_recipe(info, model, int8)
        if len(calibration) < int8:
            log.warning("int8: the training split has %d readable image(s), fewer than the %d asked; calibrating on "
                        "those", len(calibration), int8)
        quantize_onnx(path, int8_path, calibration)
        result["int8_path"], result["int8_images"] = str(int8_path), len(calibration)
        if check:
            x = torch.rand(2, 3, *_example_size(model), generator=torch.Generator().manual_seed(1))
            with torch.inference_mode():
                ref = model(x).numpy()
            out = session(int8_path, ["CPUExecutionProvider"]).run([OUTPUT], {INPUT: x.numpy()})[0]
            result["int8_max_abs_diff"] = float(np.abs(out - ref).max())
    return result


def calibration_from_recipe(info: dict, model: DepthModel, n: int) -> list[np.ndarray]:
    """``n`` images spread evenly over the training split of the checkpoint's recipe (a model without one, as a
    Hugging Face folder: the default recipe's synthetic rooms), at the model's input size (what
    ``resize="train"`` predicts at), as calibration batches [1,3,H,W]."""
    from ..data import SkipBad, build_dataset
    from ..data.transforms import resize
    from ..recipe import validate

    if info.get("config"):
        recipe = validate(info["config"], "checkpoint recipe")
        data = SkipBad(build_dataset(recipe.data.spec(recipe.size), split="train"))
        size, name = model.contract.input_size or recipe.size, recipe.data.name
    else:  # a Hugging Face folder: no training data of its own
        size, name = model.contract.input_size or (240, 320), "synth"
        log.info("int8: the model carries no recipe; calibrating on %d built-in synthetic rooms", n)
        data = SkipBad(build_dataset({"name": "synth", "n": n, "cache": False, "progress": False}, split="train",
                                     size=size))
    out = []
    for k in range(min(n, len(data))):
        sample = data[int(k * len(data) / min(n, len(data)))]
        if sample is not None:
            out.append(resize(sample, size)["image"][None].numpy())
    if not out:
        raise DepthforgeError(f"{name}: no training image could be read for int8 calibration")
    return out


