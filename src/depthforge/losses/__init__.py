"""losses/: training losses by name, each taking depth in metres (see ``base``).

Adding a loss touches one place: a module here registering it with ``@LOSSES.register(...)``, imported below.
"""
from __future__ import annotations

from typing import Any

from torch import nn

from .base import LOSSES, masked_mean, valid_mask
from .seed import SeedLoss, image_gradients, seed_loss, ssim_map, ssim_tf
from .silog import SILogLoss
from . import bins, gradient  # noqa: F401  (register themselves)


def build_loss(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered loss, e.g. ``build_loss("seed", w_l1=0.5)``."""
    return LOSSES.build(name, **kwargs)


__all__ = ["LOSSES", "build_loss", "SeedLoss", "SILogLoss", "seed_loss", "ssim_tf", "ssim_map", "image_gradients",
           "masked_mean", "valid_mask"]
