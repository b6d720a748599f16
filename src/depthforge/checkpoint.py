"""depthforge checkpoints: safe to load (``weights_only=True``), written atomically, self-describing.

A checkpoint is a dict holding ``state_dict`` and ``depthforge``: {"format": 1, "model": {"name", "kwargs"},
"config": {...}} (training checkpoints from Lightning add optimizer and loop state, used by ``--resume``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .data.io import atomic_path
from .errors import DepthforgeError
from .models import build_model

FORMAT = 1


def meta(model_name: str, model_kwargs: dict[str, Any], config: dict[str, Any] | None = None) -> dict:
    return {"format": FORMAT, "model": {"name": model_name, "kwargs": dict(model_kwargs)}, "config": config or {}}


def save_model(path: str | os.PathLike, model: nn.Module, info: dict[str, Any]) -> None:
    """Save weights + ``info`` (from ``meta``) atomically; loadable by ``load_checkpoint``."""
    with atomic_path(path) as tmp:
        torch.save({"depthforge": info, "state_dict": model.state_dict()}, tmp)


def read_checkpoint(path: str | os.PathLike) -> dict:
    """torch.load with weights_only=True; one-line errors for missing, foreign or damaged files."""
    path = Path(path)
    if not path.is_file():
        raise DepthforgeError(f"{path}: checkpoint not found")
    try:
        # mmap: checking a training checkpoint need not read its optimiser state into memory
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # torch raises many types for a bad file; all mean the same to the user
        reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise DepthforgeError(f"{path}: not a depthforge checkpoint (cannot be loaded safely: {reason})") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("depthforge"), dict) or "state_dict" not in ckpt:
        raise DepthforgeError(f"{path}: not a depthforge checkpoint (no depthforge metadata)")
    if ckpt["depthforge"].get("format") != FORMAT:
        raise DepthforgeError(f"{path}: unsupported depthforge checkpoint format {ckpt['depthforge'].get('format')!r}")
    return ckpt


def load_checkpoint(path: str | os.PathLike) -> tuple[nn.Module, dict]:
    """Checkpoint -> (model in eval mode on CPU, its ``depthforge`` metadata)."""
    return model_from(read_checkpoint(path), path)


def model_from(ckpt: dict, path: str | os.PathLike) -> tuple[nn.Module, dict]:
    """A checkpoint dict already read by ``read_checkpoint`` -> (model in eval mode, metadata)."""
    info = ckpt["depthforge"]
    try:
        model = build_model(info["model"]["name"], **info["model"]["kwargs"])
    except (KeyError, TypeError, ValueError) as e:
        raise DepthforgeError(f"{path}: checkpoint names a model that cannot be built ({e})") from None
    state = ckpt["state_dict"]
    prefix = info.get("state_prefix", "")
    state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise DepthforgeError(f"{path}: weights do not fit model {info['model']['name']!r} "
                              f"({str(e).splitlines()[0]})") from None
    return model.eval(), info
