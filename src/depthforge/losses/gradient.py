"""MiDaS's scale-and-shift-invariant loss with multi-scale gradient matching (Ranftl et al., TPAMI 2020), and the
gradient-matching term on log depth it takes from MegaDepth (Li & Snavely, CVPR 2018).

Follows the MiDaS authors' reference PyTorch loss (gist dvdhfnr/732c26b61a0e63a0abc8a5d769dbebd0, which DPT and
Omnidata train with), "batch-based" reduction:

- per image, (s, t) = argmin Σ_valid (s·p + t − d*)² in closed form (s = t = 0 where the 2×2 system is singular:
  fewer than two distinct valid predictions);
- data term: Σ_valid (s·p + t − d*)² / (2·Σ valid) over the batch (ssimse, the paper's eq. 4 with least squares);
- gradient matching: for K = 4 scales, the residual R = mask·(aligned − d*) subsampled by 2^k;
  Σ (|∂x R| + |∂y R|) over differences whose two pixels are valid, divided by the number of valid pixels at that
  scale; summed over scales; total = data + α·gradient with α = 0.5.

The paper also has trimmed/median-based variants (ssitrim, ssimae); this is the least-squares one the authors
released. Depth maps come in metres (depthforge's loss contract); ``space="disparity"`` (MiDaS's and DPT's
output) compares the prediction with 1/target, ``space="depth"`` with target itself.
"""
from __future__ import annotations

import torch
from torch import nn

from .base import LOSSES, Tensor, valid_mask


def scale_and_shift(pred: Tensor, target: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Least-squares (s, t) per image with s·pred + t ≈ target over mask. Shapes [N,1,H,W] -> ([N], [N])."""
    m = mask.to(pred.dtype)
    p, t = pred * m, torch.where(mask, target, 0)
    dims = (1, 2, 3)
    a00, a01, a11 = (p * pred).sum(dims), p.sum(dims), m.sum(dims)
    b0, b1 = (p * t).sum(dims), t.sum(dims)
    det = a00 * a11 - a01 * a01
    ok = det > 0
    safe = torch.where(ok, det, 1.0)
    s = torch.where(ok, (a11 * b0 - a01 * b1) / safe, 0.0)
    shift = torch.where(ok, (a00 * b1 - a01 * b0) / safe, 0.0)
    return s, shift


def gradient_matching(residual: Tensor, mask: Tensor, scales: int = 4) -> Tensor:
    """Σ over scales k < ``scales`` of Σ(|∂x R_k| + |∂y R_k|) / Σ mask_k, R_k = (mask·residual) subsampled by 2^k,
    counting a difference only where both of its pixels are valid. residual, mask: [N,1,H,W] -> scalar."""
    total = residual.new_zeros(())
    for k in range(scales):
        step = 2**k
        m = mask[..., ::step, ::step]
        r = torch.where(m, residual[..., ::step, ::step], 0)
        gx = (r[..., :, 1:] - r[..., :, :-1]).abs() * (m[..., :, 1:] & m[..., :, :-1])
        gy = (r[..., 1:, :] - r[..., :-1, :]).abs() * (m[..., 1:, :] & m[..., :-1, :])
        total = total + (gx.sum() + gy.sum()) / m.sum().clamp(min=1)
    return total


@LOSSES.register("ssi-gradient", pred="disparity")  # by default; space="depth" takes depth
class SSIGradientLoss(nn.Module):
    """MiDaS's loss for relative training: scale-and-shift-invariant MSE + α · multi-scale gradient matching.

    pred [N,1,H,W]: the model's output (disparity by default); target: depth in metres (0/non-finite invalid);
    valid: optional bool mask. ``space="disparity"`` aligns pred to 1/target, ``"depth"`` to target. Scalar.
    """

    def __init__(self, alpha: float = 0.5, scales: int = 4, space: str = "disparity"):
        super().__init__()
        if space not in ("disparity", "depth"):
            raise ValueError(f"space must be 'disparity' or 'depth', not {space!r}")
        self.alpha, self.scales, self.space = alpha, int(scales), space

    def forward(self, pred: Tensor, target: Tensor, valid: Tensor | None = None) -> Tensor:
        m = valid_mask(target, valid)
        t = torch.where(m, target, 1.0)
        t = torch.where(m, 1.0 / t if self.space == "disparity" else t, 0.0)
        s, shift = scale_and_shift(pred, t, m)
        res = torch.where(m, s.view(-1, 1, 1, 1) * pred + shift.view(-1, 1, 1, 1) - t, 0.0)
        loss = res.square().sum() / (2 * m.sum().clamp(min=1))
        if self.alpha:
            loss = loss + self.alpha * gradient_matching(res, m, self.scales)
        return loss

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, scales={self.scales}, space={self.space}"


@LOSSES.register("gradient-matching")
class GradientMatchingLoss(nn.Module):
    """MegaDepth's scale-invariant gradient matching on log depth, the term MiDaS adopts: ``gradient_matching``
    of R = ln pred − ln target (pred clamped to ``min_depth``), over ``scales`` scales. Scalar; usually added to a
    data term (it is blind to a constant offset of log depth, i.e. to global scale)."""

    def __init__(self, scales: int = 4, min_depth: float = 1e-3):
        super().__init__()
        self.scales, self.min_depth = int(scales), min_depth

    def forward(self, pred: Tensor, target: Tensor, valid: Tensor | None = None) -> Tensor:
        m = valid_mask(target, valid)
        r = torch.log(pred.clamp(min=self.min_depth)) - torch.log(torch.where(m, target, 1.0))
        return gradient_matching(torch.where(m, r, 0.0), m, self.scales)
