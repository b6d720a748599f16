"""The ONNX Runtime back end: an exported model behind the same ``Predictor`` as PyTorch."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DepthforgeError, error_line
from ..models.base import Contract
from .predictor import Backend, Predictor

INPUT, OUTPUT = "image", "depth"
META_KEY, CONTRACT_KEY = "depthforge", "depthforge.contract"
LEGACY_KEY = "depthforge.model"  # depthforge 0.1: {metric, max_depth, multiple}


def read_metadata(path: str | os.PathLike, meta: dict[str, str]) -> tuple[dict, Contract]:
    """An export's ``metadata_props`` -> (checkpoint info, contract); one line when they are missing."""
    try:
        info = json.loads(meta[META_KEY])
        if CONTRACT_KEY in meta:
            return info, Contract.from_dict(json.loads(meta[CONTRACT_KEY]))
        old = json.loads(meta[LEGACY_KEY])
        size = ((info.get("config") or {}).get("data") or {}).get("size")
        return info, Contract("metric" if old["metric"] else "relative", old["max_depth"] or 10.0,
                              old["multiple"], size, (0.0,) * 3, (1.0,) * 3)
    except (KeyError, ValueError, TypeError):
        raise DepthforgeError(f"{path}: not a depthforge export (no depthforge metadata)") from None


def session(path: str | os.PathLike, providers: list[str]):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
    except Exception as e:  # onnxruntime raises its own exception types for unreadable models
        raise DepthforgeError(f"{path}: not a loadable ONNX model ({error_line(e)})") from None


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
    sess = session(path, providers)
    info, contract = read_metadata(path, sess.get_modelmeta().custom_metadata_map)

    def forward(x: torch.Tensor) -> torch.Tensor:
        y = sess.run([OUTPUT], {INPUT: np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)})[0]
        return torch.from_numpy(y).to(x.device)

    backend = Backend("onnxruntime", forward, torch.device("cpu"), details={"providers": sess.get_providers()})
    return Predictor(backend, contract, info, source=str(path), **options)
