"""Export: a model as an ONNX file that ``depthforge.load`` runs with ONNX Runtime or OpenVINO.

The graph is the network alone, image [N,3,H,W] in [0,1] -> depth [N,1,H,W], with dynamic N, H and W (H and W
multiples of the model's ``multiple``); resizing and padding stay outside, in ``inference.resize.infer``, shared
with PyTorch. What the contract adds travels too: a model that estimates the camera (``camera``: Depth Pro) has a
second output ``fov`` [N], its horizontal field of view in degrees, and a model that takes a depth prompt
(``prompt``: Prompt Depth Anything) a second input ``prompt`` [N,1,h,w] in metres at any h×w. A model whose
network fixes the batch in Python (``DepthModel.export_batch``) exports at that batch, which the back ends feed
in chunks. The checkpoint's metadata travels in the model's ``metadata_props``: ``depthforge`` (the checkpoint's
info: model, recipe), ``depthforge.contract`` (the model's contract) and ``depthforge.io`` (what each input and
output holds, in words, for other runtimes), so ``depthforge.load("model.onnx")`` predicts exactly as
``depthforge.load(checkpoint)``.
"""
from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DepthforgeError, error_line
from ..files import atomic_path, remove_partial_writes, work_dir
from ..models.base import DepthModel
from .onnx import CONTRACT_KEY, FOV, INPUT, IO_KEY, META_KEY, OUTPUT, PROMPT, session
from .runtime import need

log = logging.getLogger(__name__)

EXPORTERS = ("torchscript", "dynamo")
MIN_OPSET = 7  # the oldest the TorchScript exporter writes
# Weights (bytes) above which they go to ``NAME.onnx.data`` beside the graph: one protobuf message holds at most
# 2 GiB, and Depth Pro's 952 M fp32 parameters are 3.8 GB.
EXTERNAL_ABOVE = 1 << 30


def _example_size(model: DepthModel) -> tuple[int, int]:
    m = model.multiple
    h, w = model.contract.input_size or (8 * m, 8 * m)
    return -(-h // m) * m, -(-w // m) * m


class _Camera(torch.nn.Module):
    """The graph of a camera-estimating model: image -> (depth, horizontal FoV [N] degrees)."""

    def __init__(self, model: DepthModel):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.forward_camera(image)


def graph_io(contract) -> tuple[list[str], list[str]]:
    """The export's (input names, output names) for a model of ``contract``."""
    return [INPUT, PROMPT] if contract.prompt else [INPUT], [OUTPUT, FOV] if contract.camera else [OUTPUT]


def describe_io(contract, batch: int | None) -> dict[str, str]:
    """``depthforge.io``: what each input and output holds, for someone running the file without depthforge."""
    n = "N" if batch is None else str(batch)
    out = {INPUT: f"[{n},3,H,W] float32 RGB in [0,1] (normalisation is inside); H, W multiples of "
                  f"{contract.multiple}; resize the photo as depthforge.contract says",
           OUTPUT: f"[{n},1,H,W] float32 depth, {contract.output}" + (" (metres)" if contract.metric else "")}
    if contract.prompt:
        out[PROMPT] = (f"[{n},1,h,w] float32 depth prompt in metres at any h×w (e.g. a 192×256 LiDAR map; the "
                       "network resizes it), holes filled; its min..max sets the output's metres")
    if contract.camera:
        out[FOV] = (f"[{n}] float32 horizontal field of view in degrees of the image given (W wide): its focal "
                    "length in those pixels is f = 0.5·W / tan(fov/2); at the photo's size fx = f·W_photo/W_resized, "
                    "fy = f·H_photo/H_resized (the contract's resize; Depth Pro resizes inside, so fx = fy = "
                    "0.5·W_photo / tan(fov/2)), principal point at the photo's centre ((W−1)/2, (H−1)/2)")
    return out


def _example(model: DepthModel, batch: int, size: tuple[int, int], seed: int) -> tuple[torch.Tensor, ...]:
    """Random inputs of the export's graph: the image [batch,3,H,W] and, for a prompt model, a prompt in metres
    at a low resolution that changes with the size (so a check at another size tests the prompt's axes too)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 3, *size, generator=g)
    if not model.contract.prompt:
        return (x,)
    low = (max(2, size[0] // 8), max(2, size[1] // 6))
    return x, 0.5 + 3 * torch.rand(batch, 1, *low, generator=g)


def _to_proto(model: torch.nn.Module, example: tuple[torch.Tensor, ...], names: tuple[list[str], list[str]],
              batch: int | None, multiple: int, opset: int, exporter: str, folder: Path):
    onnx = need("onnx")
    inputs, outputs = names
    axes = {} if batch else {0: "batch"}
    if exporter == "torchscript":
        # into a file in ``folder``, not a buffer: over 2 GiB the exporter must write the weights beside the graph
        file = folder / "model.onnx"
        dynamic = {INPUT: axes | {2: "height", 3: "width"}, OUTPUT: axes | {2: "height", 3: "width"},
                   PROMPT: axes | {2: "prompt_height", 3: "prompt_width"}, FOV: axes}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(model, example, str(file), dynamo=False, input_names=inputs, output_names=outputs,
                              dynamic_axes={k: v for k, v in dynamic.items() if k in inputs + outputs and v},
                              opset_version=opset)
        return onnx.load(str(file))  # with the weights, wherever the exporter put them
    dim = torch.export.Dim
    n = {} if batch else {0: dim("batch", min=1)}
    shapes = {"image": n | {2: multiple * dim("h", min=1), 3: multiple * dim("w", min=1)}}
    if PROMPT in inputs:
        shapes["prompt"] = n | {2: dim("ph", min=2), 3: dim("pw", min=2)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, example, dynamo=True, input_names=inputs, output_names=outputs,
                                    dynamic_shapes=shapes, opset_version=opset, verbose=False)
    return program.model_proto


def _write(proto, path: Path) -> Path | None:
    """Write the model atomically. Weights over ``EXTERNAL_ABOVE`` go to ONNX external data, one file
    ``NAME.onnx.data`` beside the graph, where ONNX Runtime and OpenVINO look for it; it is written first, so a
    complete ``.onnx`` always has its weights. Returns the data file's path, or None."""
    onnx = need("onnx")
    from onnx.external_data_helper import convert_model_to_external_data, write_external_data_tensors

    data = None
    if sum(len(t.raw_data) for t in proto.graph.initializer) > EXTERNAL_ABOVE:
        data = path.with_name(f"{path.name}.data")
        with atomic_path(data) as tmp:
            convert_model_to_external_data(proto, all_tensors_to_one_file=True, location=tmp.name)
            write_external_data_tensors(proto, str(tmp.parent))
        for tensor in proto.graph.initializer:  # the graph names the file by its final name
            for entry in tensor.external_data:
                if entry.key == "location":
                    entry.value = data.name
    raw = proto.SerializeToString()
    with atomic_path(path) as tmp:
        tmp.write_bytes(raw)
        onnx.checker.check_model(str(tmp))  # by path: the checker finds the weights' file beside it
    return data


def compare(model: DepthModel, path: Path, size: tuple[int, int], seed: int = 1) -> float:
    """Max |onnxruntime − PyTorch| over the export's outputs, on random inputs at ``size`` (the FoV relative to
    its value: degrees and metres do not add)."""
    batch = model.export_batch or 2
    example = _example(model, batch, size, seed)
    inputs, outputs = graph_io(model.contract)
    with torch.inference_mode():
        ref = model.forward_camera(*example) if model.contract.camera else (model(*example),)
    got = session(path, ["CPUExecutionProvider"]).run(outputs, {k: v.numpy() for k, v in zip(inputs, example)})
    diffs = [float(np.abs(got[0] - ref[0].numpy()).max())]
    if model.contract.camera:
        diffs.append(float((np.abs(got[1] - ref[1].numpy()) / np.abs(ref[1].numpy())).max()))
    return max(diffs)


def export_module(model: DepthModel, info: dict, onnx_path: str | os.PathLike, opset: int | None = None,
                  exporter: str = "torchscript", check: bool = True) -> dict[str, Any]:
    """Export a depth model with its checkpoint metadata to ``onnx_path`` (atomic write).

    Returns {"path", "data", "opset", "exporter", "bytes", "batch", "max_abs_diff"}: ``data`` the weights' file
    beside the graph for a model over ``EXTERNAL_ABOVE`` bytes (else None), ``bytes`` both files; ``batch`` None
    when dynamic, else the fixed batch size; ``max_abs_diff`` compares onnxruntime with PyTorch on a random batch
    (of 2 where the batch is dynamic) at a size other than the example's, so the dynamic axes are checked too (None
    with ``check=False``).
    """
    onnx = need("onnx")
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
    batch = model.export_batch
    names = graph_io(model.contract)
    net = _Camera(model) if model.contract.camera else model
    # without autograd: a trace with it keeps every activation for a backward pass that never comes (measured on a
    # 0.4 GB Depth Pro at its 1536x1536: 17.8 GB peak with, 6.4 GB without; the real one's export was killed at 24 GB)
    with work_dir(path, "export") as folder, torch.no_grad():
        try:
            proto = _to_proto(net, _example(model, batch or 2, (h, w), 0), names, batch, model.multiple, opset,
                              exporter, Path(folder))
        except Exception as e:  # exporters raise many types; the user needs the first line
            raise DepthforgeError(f"{path}: ONNX export ({exporter}, opset {opset}) failed: {error_line(e)}") \
                from None
    for key, value in ((META_KEY, info), (CONTRACT_KEY, model.contract.to_dict()),
                       (IO_KEY, describe_io(model.contract, batch))):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value, ensure_ascii=False)
    proto.producer_name = "depthforge"
    data = _write(proto, path)
    diff = compare(model, path, (h + model.multiple, w + 2 * model.multiple)) if check else None
    return {"path": str(path), "data": data and str(data), "opset": opset, "exporter": exporter,
            "bytes": path.stat().st_size + (data.stat().st_size if data else 0), "batch": batch,
            "max_abs_diff": diff}


def check_target(path: Path) -> None:
    """Refuse an output path that is a folder (before the slow export, not at its final rename), and remove the
    temp files a killed export left beside it."""
    if path.is_dir():
        raise DepthforgeError(f"{path}: is a folder; give the ONNX file's name, e.g. {path / 'model.onnx'}")
    remove_partial_writes(path.parent, [path.name, f"{path.name}.data"])


def check_int8_size(what: str | os.PathLike, weights: int, advice: str) -> None:
    """Refuse an int8 model of ``weights`` bytes over ``EXTERNAL_ABOVE``: the quantiser takes one ONNX file, and
    such weights are written beside the graph. ``what``: the thing the error names; ``advice``: what to do
    instead, said after the reason."""
    if weights > EXTERNAL_ABOVE:
        raise DepthforgeError(f"{what}: int8 quantisation takes models of up to {EXTERNAL_ABOVE / 1e9:.1f} GB "
                              f"of weights (one ONNX file); this one has {weights / 1e9:.1f} GB: {advice}")


def export_onnx(checkpoint: str | os.PathLike, onnx_path: str | os.PathLike, opset: int | None = None,
                exporter: str = "torchscript", check: bool = True, int8: int = 0,
                int8_ops: tuple[str, ...] | None = None) -> dict[str, Any]:
    """A checkpoint, Hugging Face folder or hub id -> ONNX file; see ``export_module``. With ``int8`` > 0, also a
    static int8 model beside it (``NAME-int8.onnx``), calibrated on up to that many images of the checkpoint's
    training data, or of the built-in synthetic rooms for a model without a recipe (``int8_path``,
    ``int8_images``: how many it was, ``int8_max_abs_diff`` in the result); ``int8_ops``: the ONNX op types
    quantised (default ``quantize.OPS``, the convolutions; see ``quantize.OP_SETS``)."""
    from .load import open_module

    if int8 < 0:
        raise DepthforgeError(f"int8: the number of calibration images must be positive, got {int8}")
    path = Path(onnx_path)
    int8_path = path.with_name(f"{path.stem}-int8.onnx")
    if int8:
        check_target(int8_path)
    model, info, _ = open_module(checkpoint)
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values()) if int8 else 0
    check_int8_size(int8_path, weights, "export it without --int8")  # said before the long export, not after it
    result = export_module(model, info, onnx_path, opset, exporter, check)
    if int8:
        from .quantize import OPS, quantize_onnx

        calibration = calibration_from_recipe(info, model, int8)
        if len(calibration) < int8:
            log.warning("int8: the training split has %d readable image(s), fewer than the %d asked; calibrating on "
                        "those", len(calibration), int8)
        quantize_onnx(path, int8_path, calibration, ops=int8_ops or OPS)
        result["int8_path"], result["int8_images"] = str(int8_path), len(calibration)
        if check:
            result["int8_max_abs_diff"] = compare(model, int8_path, _example_size(model))
    return result


def calibration_from_recipe(info: dict, model: DepthModel, n: int) -> list[np.ndarray]:
    """``n`` images spread evenly over the training split of the checkpoint's recipe (a model without one, as a
    Hugging Face folder: the default recipe's synthetic rooms), at the model's input size (what
    ``resize="train"`` predicts at), as calibration batches [1,3,H,W]; for a model that takes a depth prompt,
    pairs (image, prompt [1,1,h,w]): each image's ground truth downsampled as evaluation prompts
    (``inference.prompt.prompt_from_depth``)."""
    from ..data import SkipBad, build_dataset
    from ..data.transforms import resize
    from ..recipe import validate
    from .prompt import prompt_from_depth

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
        if sample is None:
            continue
        sample = resize(sample, size)
        image = sample["image"][None].numpy()
        if not model.contract.prompt:
            out.append(image)
            continue
        depth = np.where(sample["valid"][0].numpy(), sample["depth"][0].numpy(), 0)
        try:
            out.append((image, prompt_from_depth(depth)[None, None]))
        except DepthforgeError as e:  # no usable ground truth to prompt with, as evaluation skips it
            log.warning("int8: calibration image %d: %s; skipped", k, e)
    if not out:
        raise DepthforgeError(f"{name}: no training image could be read for int8 calibration")
    return out


