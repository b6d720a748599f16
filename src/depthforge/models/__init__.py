"""models/: depth networks by name, each declaring its contract (``base.Contract``).

Adding a model touches one place: a module here that registers itself with ``@MODELS.register(...)``,
imported below.
"""
from __future__ import annotations

from typing import Any

from torch import nn

from .base import MODELS, Contract, DepthModel
from . import binsformer, depthformer, dinov3, hf, marigold, seed_unet, unet  # noqa: F401  (register themselves)
from .seed_unet import SeedUNet


def build_model(name: str, **kwargs: Any) -> DepthModel:
    """Build a registered model, e.g. ``build_model("seed-unet", width=0.5)``."""
    return MODELS.build(name, **kwargs)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["MODELS", "Contract", "DepthModel", "build_model", "count_parameters", "SeedUNet"]
