"""``depthforge.load``: any model source -> a ``Predictor`` on the right back end.

    import depthforge
    predict = depthforge.load("runs/quick/checkpoints/best.ckpt")  # or "model.onnx", a Hugging Face folder or
    depth = predict("photo.jpg")                                  # hub id; device="cuda"; runtime="openvino"
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..errors import DepthforgeError
from ..models.hub import HUB_ID
from .predictor import Predictor, from_module

RUNTIMES = ("torch", "onnxruntime", "openvino")
CHECKPOINT_SUFFIXES = (".ckpt", ".pt", ".pth")


def load(source: str | os.PathLike, device: str | torch.device | None = None, runtime: str | None = None,
         **options: Any) -> Predictor:
    """A model -> ``Predictor``. ``source``: a depthforge checkpoint (``.ckpt``/``.pt``, loaded safely), an
    exported ``.onnx`` (or OpenVINO ``.xml``), a Hugging Face model folder, or a hub id
    (``depth-anything/Depth-Anything-V2-Small-hf``).

    ``device``: "cpu", "cuda", ... (default: CUDA when available). ``runtime``: "torch", "onnxruntime" or
    "openvino" (default: by the file). ``options``: ``resize`` ("train" | "pad"), ``flip`` (bool),
    ``batch_size`` (int) — the Predictor's defaults, each overridable per call.
    """
    path = Path(source)
    suffix = path.suffix.lower()
    if runtime is not None and runtime not in RUNTIMES:
        raise DepthforgeError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    if suffix in (".onnx", ".xml"):
        if runtime == "openvino" or suffix == ".xml":
            from .openvino import load_openvino

            return load_openvino(path, device=device, **options)
        if runtime not in (None, "onnxruntime"):
            raise DepthforgeError(f"{path}: an ONNX file runs with runtime onnxruntime or openvino, not {runtime!r}")
        from .onnx import load_onnx

        return load_onnx(path, device=device, **options)
    if runtime not in (None, "torch"):
        raise DepthforgeError(f"{path}: runtime {runtime!r} needs an exported model; export it first "
                              "(depthforge export --onnx model.onnx)")
    if path.is_dir() or (not path.exists() and HUB_ID.fullmatch(str(source)) and suffix not in CHECKPOINT_SUFFIXES):
        from ..models import MODELS
        from ..models.checkpoint import meta
        from ..models.hf import from_pretrained_path

        model = from_pretrained_path(str(source))
        info = meta(MODELS.name_of(model), {}, model)
    else:
        from ..models.checkpoint import load_checkpoint

        model, info = load_checkpoint(path)
    predictor = from_module(model, info, device, **options)
    predictor.source = str(source)
    return predictor
