"""Opening a model: ``open_model`` is the one way from any model source (checkpoint, export, Hugging Face folder
or hub id) to a ``Predictor`` on the right back end, its recipe and the baselines a training checkpoint carries;
``depthforge.load`` gives just the predictor.

    import depthforge
    predict = depthforge.load("runs/quick/checkpoints/best.ckpt")  # or "model.onnx", a Hugging Face folder or
    depth = predict("photo.jpg")                                  # hub id; device="cuda"; runtime="openvino"
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

import torch

from ..errors import DepthforgeError
from ..models.base import DepthModel
from ..models.hub import HUB_ID
from ..recipe import Recipe, validate
from .predictor import Predictor, from_module
from .runtime import RUNTIMES, need
CHECKPOINT_SUFFIXES = (".ckpt", ".pt", ".pth")
EXPORT_SUFFIXES = (".onnx", ".xml")


class Opened(NamedTuple):
    predictor: Predictor
    recipe: Recipe | None  # the recipe it was trained with, None when it has none (or one of an older version)
    baselines: dict | None  # a training checkpoint's trivial baselines ({"constant", "mean_map"}), else None
    kind: str  # "checkpoint", "export" or "pretrained" (a Hugging Face folder or hub id)


def kind_of(source: str | os.PathLike) -> str:
    """How ``source`` is opened: "export" (.onnx/.xml), "pretrained" (a folder, or a hub id that is no file),
    else "checkpoint"."""
    path = Path(source)
    suffix = path.suffix.lower()
    if suffix in EXPORT_SUFFIXES:
        return "export"
    if path.is_dir() or (not path.exists() and HUB_ID.fullmatch(str(source)) and suffix not in CHECKPOINT_SUFFIXES):
        return "pretrained"
    return "checkpoint"


def load(source: str | os.PathLike, device: str | torch.device | None = None, runtime: str | None = None,
         **options: Any) -> Predictor:
    """A model -> ``Predictor``. ``source``: a depthforge checkpoint (``.ckpt``/``.pt``, loaded safely), an
    exported ``.onnx`` (or OpenVINO ``.xml``), a Hugging Face model folder, or a hub id
    (``depth-anything/Depth-Anything-V2-Small-hf``).

    ``device``: "cpu", "cuda", ... (default: CUDA when available). ``runtime``: "torch", "onnxruntime" or
    "openvino" (default: by the file). ``options``: ``resize`` ("train" | "pad"), ``flip`` (bool),
    ``batch_size`` (int) — the Predictor's defaults, each overridable per call.
    """
    return open_model(source, device, runtime, **options).predictor


def open_module(source: str | os.PathLike) -> tuple[DepthModel, dict, dict | None]:
    """A source PyTorch runs (a depthforge checkpoint, a Hugging Face folder or hub id) -> (model in eval mode on
    CPU, its ``depthforge`` metadata, a training checkpoint's baselines or None): what ``load``, ``export`` and
    ``bench`` start from."""
    kind = kind_of(source)
    if kind == "export":
        raise DepthforgeError(f"{source}: an exported model cannot be opened as a PyTorch module; give the checkpoint "
                              "or Hugging Face folder it was exported from")
    if kind == "pretrained":
        from ..models import MODELS
        from ..models.checkpoint import meta
        from ..models.hf import from_pretrained_path

        model = from_pretrained_path(str(source))
        return model, meta(MODELS.name_of(model), {}, model), None
    from ..models.checkpoint import model_from, read_checkpoint

    ckpt = read_checkpoint(Path(source))
    model, info = model_from(ckpt, source)
    return model, info, ckpt.get("baselines")


def open_model(source: str | os.PathLike, device: str | torch.device | None = None, runtime: str | None = None,
               **options: Any) -> Opened:
    """``source`` (as for ``load``) -> ``Opened``: the predictor (``device``, ``runtime``, ``options`` as for
    ``load``), the recipe it carries, and a training checkpoint's baselines."""
    path = Path(source)
    kind = kind_of(source)
    if runtime is not None and runtime not in RUNTIMES:
        raise DepthforgeError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    if runtime not in (None, "torch"):  # a missing package first: exporting would not help
        need(runtime)
    baselines = None
    if kind == "export":
        if runtime == "openvino" or path.suffix.lower() == ".xml":
            from .openvino import load_openvino

            predictor = load_openvino(path, device=device, **options)
        elif runtime not in (None, "onnxruntime"):
            raise DepthforgeError(f"{path}: an ONNX file runs with runtime onnxruntime or openvino, not {runtime!r}")
        else:
            from .onnx import load_onnx

            predictor = load_onnx(path, device=device, **options)
    else:
        if runtime not in (None, "torch"):
            raise DepthforgeError(f"{path}: runtime {runtime!r} needs an exported model; export it first "
                                  "(depthforge export --onnx model.onnx)")
        model, info, baselines = open_module(source)
        predictor = from_module(model, info, device, **options)
        predictor.source = str(source)
    cfg = predictor.info.get("config") or {}
    try:
        recipe = validate(cfg) if cfg else None
    except DepthforgeError:  # a recipe of an older version: evaluation then needs --data
        recipe = None
    return Opened(predictor, recipe, baselines, kind)
