"""depthforge checkpoints: safe to load (``weights_only=True``), written atomically, self-describing.

A checkpoint is a dict holding ``state_dict`` and ``depthforge``: {"format": 2, "model": {"name", "kwargs"},
"contract": {...}, "config": {the recipe}} (training checkpoints from Lightning add optimizer and loop state,
used by ``--resume``). ``kwargs`` rebuild the architecture offline (``DepthModel.spec_kwargs``). Format 1
(depthforge 0.1) had no contract: the model's own is used, with the input size of its recipe.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import DepthforgeError, error_line
from ..files import atomic_path
from .base import MODELS, Contract, DepthModel

FORMAT = 2
FORMATS = (1, 2)


def meta(name: str, kwargs: dict[str, Any], model: DepthModel, config: dict[str, Any] | None = None) -> dict:
    """The ``depthforge`` entry of a checkpoint of ``model``, built as ``build_model(name, **kwargs)``."""
    return {"format": FORMAT, "model": {"name": name, "kwargs": model.spec_kwargs(dict(kwargs))},
            "contract": model.contract.to_dict(), "config": config or {}}


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
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as e:  # permissions, a vanished network mount ...
        raise DepthforgeError(f"{path}: cannot read the checkpoint ({e.strerror or e})") from None
    if magic != b"PK\x03\x04":  # torch.save writes a zip archive
        raise DepthforgeError(f"{path}: not a depthforge checkpoint (not a PyTorch checkpoint file)")
    try:
        # mmap: checking a training checkpoint need not read its optimiser state into memory
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # torch raises many types for a bad file; all mean the same to the user
        reason = error_line(e, 160)
        raise DepthforgeError(f"{path}: not a depthforge checkpoint (cannot be loaded safely: {reason})") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("depthforge"), dict) or "state_dict" not in ckpt:
        raise DepthforgeError(f"{path}: not a depthforge checkpoint (no depthforge metadata)")
    if ckpt["depthforge"].get("format") not in FORMATS:
        raise DepthforgeError(f"{path}: unsupported depthforge checkpoint format {ckpt['depthforge'].get('format')!r}")
    return ckpt


def load_checkpoint(path: str | os.PathLike) -> tuple[DepthModel, dict]:
    """Checkpoint -> (model in eval mode on CPU, its ``depthforge`` metadata)."""
    return model_from(read_checkpoint(path), path)


def model_from(ckpt: dict, path: str | os.PathLike) -> tuple[DepthModel, dict]:
    """A checkpoint dict already read by ``read_checkpoint`` -> (model in eval mode, metadata)."""
    info = ckpt["depthforge"]
    try:
        model = MODELS.build(info["model"]["name"], **info["model"]["kwargs"])
        contract = Contract.from_dict(info["contract"]) if "contract" in info else model.contract
    except (KeyError, TypeError, ValueError) as e:
        raise DepthforgeError(f"{path}: checkpoint names a model that cannot be built ({e})") from None
    if "contract" not in info:  # format 1
        size = ((info.get("config") or {}).get("data") or {}).get("size")
        try:
            contract = Contract.from_dict({**contract.to_dict(), "input_size": size})
        except (TypeError, ValueError):
            raise DepthforgeError(f"{path}: checkpoint config data.size must be [H, W], got {size!r}") from None
    model.set_contract(contract)
    state = ckpt["state_dict"]
    prefix = info.get("state_prefix", "")
    state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise DepthforgeError(f"{path}: weights do not fit model {info['model']['name']!r} "
                              f"({error_line(e, None)})") from None
    return model.eval(), info
