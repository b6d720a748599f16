"""The ONNX Runtime back end: an exported model behind the same ``Predictor`` as PyTorch."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..errors import DepthforgeError, error_line
from ..models.base import Contract
from .predictor import Backend, Predictor
from .runtime import need

INPUT, OUTPUT = "image", "depth"
PROMPT, FOV = "prompt", "fov"  # the second input of a prompt model's export, the second output of a camera model's
META_KEY, CONTRACT_KEY, IO_KEY = "depthforge", "depthforge.contract", "depthforge.io"
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


def backend_calls(run: Callable[[dict[str, np.ndarray]], list[np.ndarray]], inputs: Sequence[str],
                  outputs: Sequence[str], batch: int | None) -> dict[str, Any]:
    """A runtime's ``run(feed) -> [outputs]`` on an export's graph -> the ``Backend`` keywords that run it:
    ``forward(x, prompt=None) -> depth``, ``camera`` (``-> (depth, FoV [N] degrees)``, where the graph has the
    ``fov`` output) and ``needs_prompt`` (whether it has the ``prompt`` input). A fixed ``batch`` runs in chunks
    of it."""

    def chunks(x: torch.Tensor, prompt: torch.Tensor | None) -> list[torch.Tensor]:
        if (prompt is None) == (PROMPT in inputs):
            raise DepthforgeError("the export's graph takes a depth prompt" if prompt is None else
                                  "the export's graph takes the image alone")
        step, parts = batch or x.shape[0], []
        for i in range(0, x.shape[0], step):
            feed = {INPUT: np.ascontiguousarray(x[i:i + step].detach().cpu().numpy(), dtype=np.float32)}
            if prompt is not None:
                feed[PROMPT] = np.ascontiguousarray(prompt[i:i + step].detach().cpu().numpy(), dtype=np.float32)
            parts.append(run(feed))
        return [torch.from_numpy(np.concatenate(p)).to(x.device) for p in zip(*parts)]

    def forward(x: torch.Tensor, prompt: torch.Tensor | None = None) -> torch.Tensor:
        return chunks(x, prompt)[0]

    def camera(x: torch.Tensor, prompt: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        depth, fov = chunks(x, prompt)[:2]
        return depth, fov

    return {"forward": forward, "camera": camera if FOV in outputs else None, "needs_prompt": PROMPT in inputs}


def session(path: str | os.PathLike, providers: list[str]):
    ort = need("onnxruntime")

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
    ort = need("onnxruntime")
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
    inputs = [i.name for i in sess.get_inputs()]
    outputs = [o.name for o in sess.get_outputs()][:2]
    batch = sess.get_inputs()[0].shape[0]
    calls = backend_calls(lambda feed: sess.run(outputs, feed), inputs, outputs,
                          batch if isinstance(batch, int) else None)
    backend = Backend("onnxruntime", device=torch.device("cpu"), details={"providers": sess.get_providers()},
                      **calls)
    return Predictor(backend, contract, info, source=str(path), **options)
