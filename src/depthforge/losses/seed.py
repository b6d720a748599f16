"""The seed's loss (SSIM + edge + L1), matching TensorFlow's ``tf.image.ssim`` and ``image_gradients``.

It works in the seed's units, depth / max_depth in [0,1]; ``SeedLoss`` takes metres and normalises inside.
"""
from __future__ import annotations

from functools import partial

import torch
from torch import nn

from .base import LOSSES, Tensor, masked_mean, valid_mask

# tf.image.ssim's defaults.
SSIM_SIZE, SSIM_SIGMA, SSIM_K1, SSIM_K2 = 11, 1.5, 0.01, 0.03


def image_gradients(x: Tensor) -> tuple[Tensor, Tensor]:
    """Forward differences as ``tf.image.image_gradients``.

    x: [N,C,H,W]. Returns (dy, dx), each [N,C,H,W]: dy[..., i, j] = x[..., i+1, j] - x[..., i, j] with the last
    row zero, dx likewise along columns with the last column zero. Units: x's units per pixel.
    """
    dy = torch.zeros_like(x)
    dx = torch.zeros_like(x)
    dy[..., :-1, :] = x[..., 1:, :] - x[..., :-1, :]
    dx[..., :, :-1] = x[..., :, 1:] - x[..., :, :-1]
    return dy, dx


def _band(n: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """[n, n-10]: TF's window along one axis as a matrix, column j holding the 11 taps at rows j..j+10, so that
    ``band(H).mT @ x @ band(W)`` is the valid-padding 2-D blur. TF's 2-D window is a softmax over the sum of two
    1-D log-Gaussians, which is exactly the outer product of the two 1-D softmaxes: the blur is separable. As a
    matrix product it runs ~7x faster than a 2-D 11x11 convolution (whose backward is a slow oneDNN path on CPU
    for one channel), which was a fifth of the seed U-Net's bf16 training step."""
    r = torch.arange(SSIM_SIZE, dtype=dtype, device=device) - (SSIM_SIZE - 1) / 2
    g = torch.softmax(r.square() * (-0.5 / SSIM_SIGMA**2), 0)
    m = torch.zeros(n, n - SSIM_SIZE + 1, dtype=dtype, device=device)
    for k in range(SSIM_SIZE):
        m.diagonal(-k).fill_(g[k])  # m[j + k, j] = g[k]
    return m


def ssim_map(x: Tensor, y: Tensor, max_val: float = 1.0) -> Tensor:
    """The SSIM map of ``tf.image.ssim``: 11×11 Gaussian window (σ 1.5), K1 0.01, K2 0.03, valid padding.

    x, y: [N,C,H,W] with H, W >= 11, in units where ``max_val`` is the dynamic range.
    Returns [N,C,H-10,W-10]; entry (i, j) is the window centred on pixel (i+5, j+5).
    """
    if min(x.shape[-2:]) < SSIM_SIZE:
        raise ValueError(f"SSIM needs images of at least {SSIM_SIZE}x{SSIM_SIZE} pixels, got {tuple(x.shape[-2:])}")
    bh, bw = _band(x.shape[-2], x.dtype, x.device), _band(x.shape[-1], x.dtype, x.device)

    def blur(t: Tensor) -> Tensor:
        return bh.mT @ t @ bw
    c1, c2 = (SSIM_K1 * max_val) ** 2, (SSIM_K2 * max_val) ** 2
    # Same association of terms as TF's _ssim_helper, so float32 rounding matches it closely.
    mx, my = blur(x), blur(y)
    num0, den0 = 2 * mx * my, mx.square() + my.square()
    luminance = (num0 + c1) / (den0 + c1)
    cs = (2 * blur(x * y) - num0 + c2) / (blur(x.square() + y.square()) - den0 + c2)
    return luminance * cs


def _window_centres(valid: Tensor) -> Tensor:
    """valid [N,C,H,W] -> [N,C,H-10,W-10]: whether each SSIM window's centre pixel is valid."""
    h = SSIM_SIZE // 2
    return valid[..., h:-h, h:-h]


def ssim_tf(x: Tensor, y: Tensor, max_val: float = 1.0, valid: Tensor | None = None) -> Tensor:
    """``tf.image.ssim``: one SSIM value per image, the mean of the SSIM map over windows and channels.

    x, y: [N,C,H,W] (H, W >= 11); valid: optional bool [N,C,H,W] — average only windows whose centre pixel is valid
    (NaN for an image without one). Returns [N].
    """
    s = ssim_map(x, y, max_val)
    if valid is None:
        return s.mean(dim=(1, 2, 3))
    m = _window_centres(valid)
    count = m.sum(dim=(1, 2, 3))
    mean = torch.where(m, s, 0).sum(dim=(1, 2, 3)) / count.clamp(min=1)
    return torch.where(count > 0, mean, torch.nan)


def seed_loss(pred: Tensor, target: Tensor, mask: Tensor, w_ssim: float = 1.0, w_grad: float = 1.0,
              w_l1: float = 0.1, w_smooth: float = 0.0, max_val: float = 1.0) -> Tensor:
    """The seed's loss per image, masked:

    ``per_i = w_ssim·clip((1 − SSIM_i)/2, 0, 1) + w_grad·mean(|Δy_p − Δy_t| + |Δx_p − Δx_t|) + w_l1·mean|p − t|
    + w_smooth·(mean|∂²p/∂y²| + mean|∂²p/∂x²|)``; the seed's training loss is ``per.mean()``.

    pred, target: [N,1,H,W] (H, W >= 11) in the seed's units, depth / max_depth in [0,1] (``SeedLoss`` divides).
    mask: bool [N,1,H,W], used as given; target may hold anything (NaN too) outside it.
    SSIM is ``tf.image.ssim`` with ``max_val``, one value per image; the other means run over the whole batch, as
    in the seed's Keras loss. The default weights are the seed notebook's; ``w_smooth`` (0 there) is the seed
    article's second-order smoothness. Returns [N].

    Masking (with every pixel in the mask each term equals TensorFlow's):
    - SSIM averages the map over windows whose *centre* pixel is in the mask. Requiring fully valid 11×11 windows
      would drop nearly all of sparse KITTI ground truth and every window touching a sensor hole — which cluster
      at depth edges, the very places the loss should see. Masked-out target pixels inside a window are filled
      with the (detached) prediction, so holes read as agreement rather than as false edges. An image with no
      valid window adds 0.
    - The gradient term counts a difference only where both of its pixels are valid, divided by the number of
      valid pixels (TF divides by all pixels; its zero last row/column adds nothing).
    - L1 averages over valid pixels; the smoothness term over pixel triples that are all valid.
    An empty mask gives 0 with a zero gradient.
    """
    p = pred
    t = torch.where(mask, target, pred.detach())
    per = pred.new_zeros(pred.shape[0])
    if w_ssim:
        s = ssim_tf(p, t, max_val, mask)
        per = per + w_ssim * ((1 - s.nan_to_num(1.0)) * 0.5).clamp(0, 1)
    if w_grad:
        dy_p, dx_p = image_gradients(p)
        dy_t, dx_t = image_gradients(t)
        my, mx = _pair_masks(mask)
        err = torch.where(my, (dy_p - dy_t).abs(), 0) + torch.where(mx, (dx_p - dx_t).abs(), 0)
        per = per + w_grad * masked_mean(err, mask)
    if w_l1:
        per = per + w_l1 * masked_mean((p - t).abs(), mask)
    if w_smooth:
        per = per + w_smooth * (_second_order(p, mask, -2) + _second_order(p, mask, -1))
    return per


@LOSSES.register("seed")
class SeedLoss(nn.Module):
    """``seed_loss(...).mean()`` on metres: both depths are divided by ``max_depth`` inside (the seed trained on
    depth / max_depth), with the project's mask: ``valid`` and a finite target > 0 (see ``seed_loss``)."""

    def __init__(self, w_ssim: float = 1.0, w_grad: float = 1.0, w_l1: float = 0.1, w_smooth: float = 0.0,
                 max_val: float = 1.0, max_depth: float = 10.0):
        super().__init__()
        if not max_depth > 0:
            raise ValueError(f"max_depth must be > 0 metres, not {max_depth!r}")
        self.max_depth = float(max_depth)
        self.weights = dict(w_ssim=w_ssim, w_grad=w_grad, w_l1=w_l1, w_smooth=w_smooth,
                            max_val=float(max_val))

    def forward(self, pred: Tensor, target: Tensor, valid: Tensor | None = None) -> Tensor:
        mask = valid_mask(target, valid)
        return seed_loss(pred / self.max_depth, target / self.max_depth, mask, **self.weights).mean()

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.weights.items())


def _pair_masks(m: Tensor) -> tuple[Tensor, Tensor]:
    """Where a forward difference along y / x has both of its pixels valid (False on the last row / column)."""
    my, mx = torch.zeros_like(m), torch.zeros_like(m)
    my[..., :-1, :] = m[..., :-1, :] & m[..., 1:, :]
    mx[..., :, :-1] = m[..., :, :-1] & m[..., :, 1:]
    return my, mx


def _second_order(p: Tensor, m: Tensor, dim: int) -> Tensor:
    """mean |p[i-1] − 2p[i] + p[i+1]| along ``dim`` over triples whose three pixels are valid."""
    n = p.shape[dim]
    a, b, c = (p.narrow(dim, k, n - 2) for k in range(3))
    ok = m.narrow(dim, 0, n - 2) & m.narrow(dim, 1, n - 2) & m.narrow(dim, 2, n - 2)
    return masked_mean((a - 2 * b + c).abs(), ok)


# The seed article's variant: 0.8·SSIM + 0.1·L1 + 0.1·second-order smoothness, no first-order edge term.
LOSSES.register("seed-article", partial(SeedLoss, w_ssim=0.8, w_grad=0.0, w_l1=0.1, w_smooth=0.1))
