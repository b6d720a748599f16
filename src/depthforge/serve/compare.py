"""What the page shows beyond one depth map: how two models' depths of one photo disagree, and a bounded point
sample for the 3-D view."""
from __future__ import annotations

import math

import numpy as np

from ..encode import image_bytes
from ..evaluation.metrics import ordinal_error
from ..viz.colors import lut
from ..viz.pointcloud import backproject

PAIRS = 100_000  # pixel pairs sampled for the depth-order disagreement
VIEW_POINTS = 40_000  # points sent to the 3-D view (WebGL draws this many smoothly on a laptop)


def as_depth(depth: np.ndarray, output: str) -> np.ndarray:
    """A prediction as something ordered like depth: a disparity model's output is inverted (0 stays invalid)."""
    if output != "disparity":
        return depth
    with np.errstate(divide="ignore"):
        return np.where(depth > 0, 1.0 / depth, 0.0).astype(np.float32)


def disagreement(a: np.ndarray, b: np.ndarray, pairs: int = PAIRS, seed: int = 0) -> dict:
    """Two depths (H,W) of one photo -> {"median_rel_diff": median of |b - a| / a over pixels valid in both,
    "order_disagreement": share of sampled pixel pairs that the two put in a different depth order (one says
    nearer, the other farther or equal), "pairs": how many pairs were sampled, "pixels": valid in both}. The
    pairs are drawn with a fixed seed, so the same depths always give the same figure."""
    valid = np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0)
    va, vb = a[valid].astype(np.float64), b[valid].astype(np.float64)
    out = {"pixels": int(va.size), "pairs": 0, "median_rel_diff": None, "order_disagreement": None}
    if va.size < 2:
        return out
    out["median_rel_diff"] = float(np.median(np.abs(vb - va) / va))
    # evaluation's depth-order error with A as the reference; ratio 1: every pair A does not tie counts
    share = ordinal_error(b.astype(np.float64), a.astype(np.float64), valid, n_pairs=pairs, ratio=1.0, seed=seed)
    out.update(pairs=pairs, order_disagreement=None if np.isnan(share) else share)
    return out


def diff_png(a: np.ndarray, b: np.ndarray) -> tuple[bytes, float]:
    """The relative difference (b - a) / a as a picture (red: b nearer, blue: b farther, white: equal, black:
    invalid in either), clipped at ±limit, the 98th percentile of |difference| (at least 1%); -> (PNG, limit)."""
    valid = np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0)
    rel = np.zeros(a.shape, np.float32)
    rel[valid] = (b[valid] - a[valid]) / a[valid]
    limit = max(0.01, float(np.percentile(np.abs(rel[valid]), 98))) if valid.any() else 0.01
    index = np.rint((np.clip(rel / limit, -1, 1) + 1) * 127.5).astype(np.uint8)
    rgb = lut("RdBu")[index]
    rgb[~valid] = 0
    return image_bytes(rgb, "png", compress_level=1), limit


def view_points(depth: np.ndarray, image: np.ndarray, intrinsics: np.ndarray, limit: int = VIEW_POINTS) -> bytes:
    """At most ``limit`` points of the depth's cloud for the page's 3-D view, as bytes: uint32 count N, then N x 3
    float32 (x right, y down, z forward, metres), then N x 3 uint8 colours from the photo. Every k-th row and
    column is kept (k from the pixel count), so the sample covers the whole picture evenly."""
    h, w = depth.shape
    s = max(1, math.ceil(math.sqrt(h * w / limit)))
    k = np.array(intrinsics, np.float32)
    k[:2] /= s  # striding from pixel 0 by s divides fx, fy, cx, cy by s exactly
    points, colors = backproject(depth[::s, ::s], k, image[::s, ::s])
    points, colors = points[:limit], colors[:limit]
    return (np.uint32(len(points)).tobytes() + np.ascontiguousarray(points, "<f4").tobytes()
            + np.ascontiguousarray(colors, np.uint8).tobytes())
