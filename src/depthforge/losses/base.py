"""What every loss shares: the registry, the validity mask and a masked mean.

Every loss is an ``nn.Module`` whose ``forward(pred, target, valid)`` takes depth [N,1,H,W] in metres and a bool
mask [N,1,H,W], and returns a scalar tensor. A pixel counts only where ``valid`` is True and the target is finite
and > 0; invalid pixels never produce NaN (an all-invalid batch gives 0 with a zero gradient). A loss that works
in other units (the seed's depth / max_depth, log depth) converts inside itself.
"""
from __future__ import annotations

import torch

from ..registry import Registry

Tensor = torch.Tensor
LOSSES = Registry("loss")


def valid_mask(target: Tensor, valid: Tensor | None) -> Tensor:
    """Where a pixel counts: ``valid`` (if given) and a finite target > 0."""
    m = torch.isfinite(target) & (target > 0)
    return m if valid is None else m & valid.bool()


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of x over mask (whole batch); 0 with a zero gradient when the mask is empty."""
    return torch.where(mask, x, 0).sum() / mask.sum().clamp(min=1)


