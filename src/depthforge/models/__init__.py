"""Models by name. Every model maps an image batch [N,3,H,W] in [0,1] to depth [N,1,H,W] and carries:

- ``metric`` (bool): True when the output is metres, False for relative depth that evaluation must align;
- ``max_depth`` (float): the largest depth it can output, metres;
- ``multiple`` (int): H and W must be multiples of it (the predictor pads to it).

Adding a model touches one place: ``MODELS`` below.
"""
from __future__ import annotations

from typing import Any, Callable

from torch import nn

from .seed_unet import SeedUNet

MODELS: dict[str, Callable[..., nn.Module]] = {
    "seed-unet": SeedUNet,
}


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model, e.g. ``build_model("seed-unet", width=0.5)``."""
    try:
        factory = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(sorted(MODELS))}") from None
    return factory(**kwargs)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["MODELS", "build_model", "count_parameters", "SeedUNet"]
