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


@LOSSES.register("silog-dav2")
class SILogDAV2Loss(nn.Module):
    """Depth Anything V2's metric fine-tuning loss (``metric_depth/util/loss.py``):

    ``sqrt(mean(d²) − λ·mean(d)²)``, d = ln target − ln pred over the valid pixels of the whole batch, λ = 0.5, no
    ×10. Valid as DA-V2's train.py: ``valid`` and ``min_depth`` ≤ target ≤ ``max_depth`` (1e-3 m and 20 m indoor
    / 80 m outdoor there). Deviation: pred is clamped to ``min_depth`` before the log (DA-V2's sigmoid head never
    reaches 0; other heads can), and an all-invalid batch or d ≡ 0 gives 0 with a zero gradient instead of NaN.
    """

    def __init__(self, lam: float = 0.5, min_depth: float = 1e-3, max_depth: float = 20.0):
        super().__init__()
        if not 0 < min_depth < max_depth:
            raise ValueError(f"need 0 < min_depth < max_depth metres, got {min_depth!r}, {max_depth!r}")
        self.lam, self.min_depth, self.max_depth = lam, min_depth, max_depth

    def forward(self, pred: Tensor, target: Tensor, valid: Tensor | None = None) -> Tensor:
        m = valid_mask(target, valid) & (target >= self.min_depth) & (target <= self.max_depth)
        d = torch.log(torch.where(m, target, 1.0)) - torch.log(pred.clamp(min=self.min_depth))
        v = masked_mean(d.square(), m) - self.lam * masked_mean(d, m).square()
        ok = v > 1e-12
        return torch.where(ok, torch.where(ok, v, 1.0).sqrt(), 0.0)

    def extra_repr(self) -> str:
        return f"lam={self.lam}, min_depth={self.min_depth}, max_depth={self.max_depth}"
