"""Layers shared by several model files: mmcv's conv-BN-activation block and DETR's sine positional encoding."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def conv_bn(cin: int, cout: int, k: int = 3, act: nn.Module | None = None) -> nn.Sequential:
    """mmcv ``ConvModule`` / smp ``Conv2dReLU`` with BN: conv k×k (no bias: BN's shift replaces it) -> BN -> act
    (default ReLU). Its state_dict keys are ``0.weight``, ``1.*``: checkpoints depend on that order."""
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout),
                         act if act is not None else nn.ReLU(inplace=True))


def sine_positions(x: Tensor, dim: int, normalize: bool = False, temperature: float = 10000.0,
                   dtype: torch.dtype | None = None) -> Tensor:
    """mmcv's ``SinePositionalEncoding(num_feats=dim/2)`` for a map x [N,C,h,w] -> [N,h,w,dim] in ``dtype``
    (default x's): channels [0, dim/2) encode the row, [dim/2, dim) the column, each coordinate i = 1..h
    (×2π/h with ``normalize``) divided by temperature^(2⌊j/2⌋ / (dim/2)), sin on even j and cos on odd j.

    Coordinates come from a cumulative sum (not ``arange(h)``), so an exported graph keeps h and w dynamic."""
    ones = torch.ones_like(x[:, 0], dtype=dtype)
    y, xx = ones.cumsum(1), ones.cumsum(2)  # 1-based row / column
    if normalize:
        y = y / (y[:, -1:] + 1e-6) * (2 * math.pi)
        xx = xx / (xx[:, :, -1:] + 1e-6) * (2 * math.pi)
    half = dim // 2
    k = torch.arange(half, device=x.device, dtype=ones.dtype)
    freq = temperature ** (2 * torch.div(k, 2, rounding_mode="floor") / half)

    def embed(c: Tensor) -> Tensor:  # [N,h,w] -> [N,h,w,half], sin/cos interleaved
        p = c[..., None] / freq
        return torch.stack((p[..., 0::2].sin(), p[..., 1::2].cos()), dim=-1).flatten(3)

    return torch.cat((embed(y), embed(xx)), dim=-1)
