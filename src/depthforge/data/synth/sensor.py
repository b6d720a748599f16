"""A Kinect-like depth sensor model: holes and depth-dependent noise on exact depth."""
from __future__ import annotations

import numpy as np

from .raycast import camera_rays
from .textures import value_noise


def kinect_holes(depth: np.ndarray, normal: np.ndarray, k: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Kinect-like depth: holes (0) and depth-dependent noise added to an exact depth map.

    depth (H,W) metres, normal (H,W,3) camera-frame unit normals, k (3,3) intrinsics at that size.
    Holes: out of range (< 0.45 m or beyond 7-10 m), grazing surfaces (> ~82 deg), the projector's shadow beside
    near edges (7.5 cm baseline), mixed pixels at depth jumps, and a few random blobs. Noise: axial sigma
    0.0012 + 0.0019 (z - 0.4)^2 m (Nguyen et al. 2012). Returns float32 (H,W), 0 = invalid.
    """
    h, w = depth.shape
    rays = camera_rays(k, (h, w))
    cos = np.abs((normal.transpose(2, 0, 1) * rays).sum(0)) / np.sqrt((rays * rays).sum(0))
    bad = (depth < 0.45) | (depth > rng.uniform(7.0, 10.0)) | (cos < 0.14)
    # The projector sits to one side of the IR camera: a near edge hides the pattern from the background for
    # f * b * (1/z_near - 1/z_far) pixels beside it.
    disparity = k[0, 0] * 0.075 / np.maximum(depth, 1e-3)
    for s in range(1, int(k[0, 0] * 0.075 * (1 / 0.45 - 1 / 10)) + 1):
        bad[:, s:] |= disparity[:, :-s] - disparity[:, s:] > s
    # Mixed pixels where depth jumps: dropped at random on both sides.
    jump = np.zeros_like(bad)
    for axis, before, after in ((1, np.s_[:, :-1], np.s_[:, 1:]), (0, np.s_[:-1], np.s_[1:])):
        j = np.abs(np.diff(depth, axis=axis)) > 0.04 * np.minimum(depth[before], depth[after]) + 0.02
        jump[before] |= j
        jump[after] |= j
    bad |= jump & (rng.random((h, w)) < 0.6)
    # Blobs: dark, shiny or transparent spots the sensor cannot read (peaks of smooth noise).
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) / np.float32(w * rng.uniform(0.08, 0.15))
    ox, oy, oz = rng.uniform(0, 16, 3)
    bad |= value_noise(xx + ox, yy + oy, np.full_like(xx, oz)) > rng.uniform(0.86, 0.95)
    noisy = depth + rng.standard_normal((h, w)).astype(np.float32) * (0.0012 + 0.0019 * (depth - 0.4) ** 2)
    return np.where(bad | (noisy <= 0), 0, noisy).astype(np.float32)
