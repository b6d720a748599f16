"""Depth-correct transforms on sample dicts ([3,H,W] image, [1,H,W] depth/valid tensors).

Depth is never blended across holes: it is resized with nearest neighbour, so an invalid pixel stays 0
and a valid one keeps a measured value.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

from .sample import scale_intrinsics


def resize(sample: dict, size: tuple[int, int]) -> dict:
    """Resize a sample to (H, W): image with area/bilinear filtering, depth and valid with nearest neighbour."""
    h0, w0 = sample["image"].shape[-2:]
    h, w = size
    if (h0, w0) == (h, w):
        return sample
    out = dict(sample)
    mode = "area" if h < h0 and w < w0 else "bilinear"
    kw = {} if mode == "area" else {"align_corners": False}
    out["image"] = F.interpolate(sample["image"][None], size=(h, w), mode=mode, **kw)[0].clamp(0, 1)
    out["depth"] = F.interpolate(sample["depth"][None], size=(h, w), mode="nearest-exact")[0]
    out["valid"] = out["depth"] > 0
    if "intrinsics" in sample:
        k = scale_intrinsics(sample["intrinsics"].numpy(), h / h0, w / w0)
        out["intrinsics"] = torch.from_numpy(k)
    return out


def hflip(sample: dict) -> dict:
    """Mirror left-right; the principal point moves to W-1-cx."""
    out = dict(sample)
    for key in ("image", "depth", "valid"):
        out[key] = sample[key].flip(-1)
    if "intrinsics" in sample:
        k = sample["intrinsics"].clone()
        k[0, 2] = sample["image"].shape[-1] - 1 - k[0, 2]
        out["intrinsics"] = k
    return out
