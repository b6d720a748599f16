"""Scale-invariant log losses: the toolbox's / BTS's / AdaBins' SILog and Depth Anything V2's."""
from __future__ import annotations

import torch
from torch import nn

from .base import LOSSES, Tensor, masked_mean, valid_mask


@LOSSES.register("silog")
class SILogLoss(nn.Module):
    """Scale-invariant log loss (Eigen et al.) as BTS/AdaBins/BinsFormer train with it:

    ``10·sqrt(mean(g²) − λ·mean(g)²)``, g = ln pred − ln target over the valid pixels of the whole batch, λ = 0.85.
    (AdaBins writes it as var(g) + 0.15·mean(g)², the same with the population variance.) pred is clamped to
    ``min_depth`` metres before the log; an all-invalid batch gives 0.
    """

    def __init__(self, lam: float = 0.85, factor: float = 10.0, min_depth: float = 1e-3):
        super().__init__()
        self.lam, self.factor, self.min_depth = lam, factor, min_depth

    def forward(self, pred: Tensor, target: Tensor, valid: Tensor | None = None) -> Tensor:
        m = valid_mask(target, valid)
        g = torch.log(pred.clamp(min=self.min_depth)) - torch.log(torch.where(m, target, 1.0))
        d = masked_mean(g.square(), m) - self.lam * masked_mean(g, m).square()
        # sqrt's gradient is infinite at 0 (pred == target, or nothing valid): return 0 there, with a zero gradient.
        ok = d > 1e-12
        return self.factor * torch.where(ok, torch.where(ok, d, 1.0).sqrt(), 0.0)
