"""Video depth metrics: per-sequence alignment, the Temporal Alignment Error (TAE) and a pose-free flicker figure.

Where this follows Video Depth Anything (VDA; Chen et al. 2025, ``benchmark/eval/eval.py`` and ``eval_tae.py``,
which take the protocol from DepthCrafter):

- **One alignment per clip.** A relative or disparity output is fitted to the ground truth once, over all valid
  pixels of all frames of the clip (VDA: least squares scale and shift in disparity), then AbsRel and δ1 are
  computed per frame and averaged over the frames that have valid pixels. A per-frame fit would absorb exactly the
  scale jumps that make a video flicker.
- **TAE.** Frame t's aligned depth is lifted to 3-D with frame t's intrinsics, moved into frame t+1's camera with
  the ground-truth poses (camera-to-world: ``inv(P[t+1]) @ P[t]``), projected, and compared with frame t+1's
  aligned prediction: mean |d[t+1] − z'| / d[t+1] over the pixels that land in the image, in both directions
  (t→t+1 and t+1→t), averaged over all pairs, ×100. Predictions are clipped to the protocol's depth range first,
  as VDA clips to [1e-3, max depth].

Where it deviates (each makes the figure measure the prediction rather than the resampling):

- VDA rounds each projected point to the nearest pixel and writes it there in arbitrary order (no depth test), so
  a hidden point can overwrite the visible one and a slanted floor carries half a pixel of error. Here the front-
  most point per pixel wins (a z-buffer) and frame t+1's prediction is read bilinearly at the exact sub-pixel
  location (interpolated in inverse depth, which is affine across a plane); a perfect, consistent prediction of a
  static scene of planes then scores 0 instead of a resampling floor.
- A pair with no overlap is left out of the mean (VDA counts it as 0, which flatters a model).
- Pixels outside the protocol's crop (NYU's white border) and pixels on a moving object (the synthetic suite's
  ``moving`` mask; a reprojection with the camera's pose is wrong there) are left out; VDA masks only Sintel.
- VDA fits disparity for every model; here the fit is ``metrics.DEFAULT_ALIGN`` per output kind (least squares
  in disparity for disparity models, as VDA; median scale for relative depth; none for metric models), or as asked.

The flicker figure needs no pose: corresponding pixels of consecutive frames (from the renderer's exact depth and
poses, or from optical flow on real video, ``flow_correspondences``) compare the prediction's change with the
ground truth's: 100·mean |ln(p[t+1](x')/p[t](x)) − ln(g[t+1](x')/g[t](x))|. A per-frame scale jitter of k %
gives ≈ k, like TAE; the camera's own motion cancels because the ground truth moves the same way.

Depth arrays are float (H,W) metres; 0 or non-finite is invalid. Intrinsics (3,3) pixels; poses (4,4)
camera-to-world (x right, y down, z forward), as ``data.sample.make_sample`` stores them.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .metrics import DEFAULT_ALIGN, Protocol, compute_metrics, mean_metrics, to_metres

# A forward and a backward flow vector agree (not an occlusion) when they cancel to within this, in pixels, plus a
# share of their length (Sundaram, Brox & Keutzer 2010, as most flow-warping consistency metrics use).
FB_ABS, FB_REL = 0.5, 0.01
# Two depths of one surface seen from two frames agree within this ratio when correspondences come from depth.
SAME_SURFACE = 0.02


def align_sequence(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray], masks: Sequence[np.ndarray],
                   output: str = "metric", mode: str | None = None) -> list[np.ndarray]:
    """Align a clip's raw predictions to metres with ONE fit over all frames (``metrics.to_metres`` on the frames
    stacked; ``mode`` default ``DEFAULT_ALIGN[output]``). preds, gts, masks: T arrays (H,W) (masks: bool, the
    pixels the fit uses). Returns T float64 (H,W) depths in metres."""
    if not preds:
        return []
    heights = np.cumsum([p.shape[0] for p in preds])[:-1]
    stacked = to_metres(np.concatenate(preds, 0), np.concatenate(gts, 0), np.concatenate(masks, 0), output,
                        DEFAULT_ALIGN[output] if mode is None else mode)
    return np.split(stacked, heights, 0)


def sequence_metrics(depths: Sequence[np.ndarray], gts: Sequence[np.ndarray], masks: Sequence[np.ndarray],
                     protocol: Protocol) -> dict[str, float]:
    """The standard metrics (``compute_metrics``) of each frame of an aligned clip, averaged over the frames."""
    return mean_metrics([compute_metrics(d, g, protocol, valid=m) for d, g, m in zip(depths, gts, masks)])


def relative_pose(pose_from: np.ndarray, pose_to: np.ndarray) -> np.ndarray:
    """(4,4) mapping camera ``pose_from``'s coordinates into camera ``pose_to``'s (both camera-to-world)."""
    return np.linalg.inv(np.asarray(pose_to, np.float64)) @ np.asarray(pose_from, np.float64)


def project(depth: np.ndarray, k_from: np.ndarray, k_to: np.ndarray, pose_from: np.ndarray, pose_to: np.ndarray,
            mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Move the pixels of ``depth`` (H,W, metres, taken by camera ``pose_from``) into camera ``pose_to``.

    Returns (u, v, z, src): the sub-pixel column, row and depth in the target camera of each source pixel with
    valid depth (and ``mask``) that lands in front of it, and those pixels' flat indices in the source."""
    h, w = depth.shape
    ok = np.isfinite(depth) & (depth > 0)
    if mask is not None:
        ok &= mask
    src = np.flatnonzero(ok)
    ys, xs = np.divmod(src, w)
    z = depth.ravel()[src]
    k_from, k_to = np.asarray(k_from, np.float64), np.asarray(k_to, np.float64)
    pts = np.stack([(xs - k_from[0, 2]) / k_from[0, 0] * z, (ys - k_from[1, 2]) / k_from[1, 1] * z, z])
    rel = relative_pose(pose_from, pose_to)
    pts = rel[:3, :3] @ pts + rel[:3, 3:]
    front = pts[2] > 1e-6
    pts, src = pts[:, front], src[front]
    u = k_to[0, 0] * pts[0] / pts[2] + k_to[0, 2]
    v = k_to[1, 1] * pts[1] / pts[2] + k_to[1, 2]
    return u, v, pts[2], src


def _visible(u: np.ndarray, v: np.ndarray, z: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Indices of the projected points that are the front-most at their nearest target pixel (a z-buffer)."""
    h, w = shape
    x, y = np.rint(u).astype(np.int64), np.rint(v).astype(np.int64)
    inside = np.flatnonzero((x >= 0) & (x < w) & (y >= 0) & (y < h))
    pix = y[inside] * w + x[inside]
    order = np.lexsort((z[inside], pix))  # by pixel, nearest first
    first = np.ones(order.size, bool)
    first[1:] = pix[order][1:] != pix[order][:-1]
    return inside[order[first]]


def sample_bilinear(image: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``image`` (H,W) read at sub-pixel (u, v); NaN outside the image or where a corner is invalid (≤ 0 or not
    finite), so an interpolation never mixes a depth with a hole."""
    h, w = image.shape
    out = np.full(u.shape, np.nan)
    inside = (u >= 0) & (u <= w - 1) & (v >= 0) & (v <= h - 1)
    x0 = np.clip(np.floor(u[inside]).astype(np.int64), 0, max(w - 2, 0))
    y0 = np.clip(np.floor(v[inside]).astype(np.int64), 0, max(h - 2, 0))
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = u[inside] - x0, v[inside] - y0
    corners = [image[y0, x0], image[y0, x1], image[y1, x0], image[y1, x1]]
    good = np.logical_and.reduce([np.isfinite(c) & (c > 0) for c in corners])
    val = (corners[0] * (1 - fx) * (1 - fy) + corners[1] * fx * (1 - fy) + corners[2] * (1 - fx) * fy
           + corners[3] * fx * fy)
    out[inside] = np.where(good, val, np.nan)
    return out


def tae_pair(depth_from: np.ndarray, depth_to: np.ndarray, k_from: np.ndarray, k_to: np.ndarray,
             pose_from: np.ndarray, pose_to: np.ndarray, mask_from: np.ndarray | None = None,
             mask_to: np.ndarray | None = None) -> float:
    """One direction of TAE: mean |d_to(x') − z'| / d_to(x') over the source pixels that are visible in the
    target camera (``project``, z-buffered) and land on a valid target pixel (in ``mask_to``). NaN when none do."""
    u, v, z, _ = project(np.asarray(depth_from, np.float64), k_from, k_to, pose_from, pose_to, mask_from)
    keep = _visible(u, v, z, depth_to.shape)
    u, v, z = u[keep], v[keep], z[keep]
    target = np.asarray(depth_to, np.float64)
    if mask_to is not None:
        target = np.where(mask_to, target, np.nan)
    with np.errstate(divide="ignore"):
        d = 1 / sample_bilinear(1 / target, u, v)  # inverse depth is affine across a plane: exact there
    ok = np.isfinite(d)
    return float(np.mean(np.abs(d[ok] - z[ok]) / d[ok])) if ok.any() else math.nan


def tae_per_pair(depths: Sequence[np.ndarray], intrinsics: Sequence[np.ndarray], poses: Sequence[np.ndarray],
                 masks: Sequence[np.ndarray | None] | None = None) -> list[float]:
    """TAE of each consecutive pair (t, t+1), both directions averaged, ×100: T−1 floats (NaN: no overlap)."""
    masks = list(masks) if masks is not None else [None] * len(depths)
    out = []
    for t in range(len(depths) - 1):
        a = tae_pair(depths[t], depths[t + 1], intrinsics[t], intrinsics[t + 1], poses[t], poses[t + 1],
                     masks[t], masks[t + 1])
        b = tae_pair(depths[t + 1], depths[t], intrinsics[t + 1], intrinsics[t], poses[t + 1], poses[t],
                     masks[t + 1], masks[t])
        out.append(100 * finite_mean([a, b]))
    return out


def finite_mean(values: Sequence[float]) -> float:
    """The mean of the values that are not NaN; NaN when none is."""
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def tae(depths: Sequence[np.ndarray], intrinsics: Sequence[np.ndarray], poses: Sequence[np.ndarray],
        masks: Sequence[np.ndarray | None] | None = None) -> float:
    """The Temporal Alignment Error of a clip of aligned depths (see the module's docstring): the mean of
    ``tae_per_pair`` over the pairs with overlap; NaN for fewer than two frames or no overlap."""
    return finite_mean(tae_per_pair(depths, intrinsics, poses, masks))


# --- correspondences and flicker --------------------------------------------------------------------------------

def depth_correspondences(gt_from: np.ndarray, gt_to: np.ndarray, k_from: np.ndarray, k_to: np.ndarray,
                          pose_from: np.ndarray, pose_to: np.ndarray, mask: np.ndarray | None = None
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact correspondences from exact depth and poses (the synthetic suite): for each pixel of the source frame,
    its sub-pixel (u, v) in the target frame and whether it is seen there (in front, inside, not occluded: the
    target's depth there agrees within ``SAME_SURFACE``). Returns (u, v, valid), each (H,W)."""
    h, w = gt_from.shape
    u_map, v_map = np.full((h, w), np.nan), np.full((h, w), np.nan)
    u, v, z, src = project(np.asarray(gt_from, np.float64), k_from, k_to, pose_from, pose_to, mask)
    seen = sample_bilinear(np.asarray(gt_to, np.float64), u, v)
    ok = np.isfinite(seen) & (np.abs(seen - z) <= SAME_SURFACE * z)
    u_map.flat[src[ok]], v_map.flat[src[ok]] = u[ok], v[ok]
    return u_map, v_map, np.isfinite(u_map)


MIN_FLOW_SIDE = 12  # OpenCV's DIS flow needs a side of 12 pixels or more


def flow_correspondences(image_from: np.ndarray, image_to: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Correspondences from optical flow on real video: OpenCV's DIS flow (medium preset) both ways on the grey
    images (H,W,3 float in [0,1]), kept where the forward and backward vectors cancel (``FB_ABS``, ``FB_REL``):
    occluded and badly matched pixels fail that check. Returns (u, v, valid), each (H,W); none valid in an image
    under 12 pixels each way, too small for DIS."""
    import cv2

    h, w = np.shape(image_from)[:2]
    if max(h, w) < MIN_FLOW_SIDE:
        nowhere = np.full((h, w), np.nan)
        return nowhere, nowhere.copy(), np.zeros((h, w), bool)
    grey = [cv2.cvtColor(np.ascontiguousarray(np.clip(i, 0, 1) * 255, dtype=np.uint8), cv2.COLOR_RGB2GRAY)
            for i in (image_from, image_to)]
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    fwd = dis.calc(grey[0], grey[1], None)
    bwd = dis.calc(grey[1], grey[0], None)
    h, w = grey[0].shape
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    u, v = xs + fwd[..., 0], ys + fwd[..., 1]
    back = cv2.remap(bwd, u, v, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=np.nan)
    err = np.sum((fwd + back) ** 2, -1)
    ok = np.isfinite(err) & (err <= FB_REL * (np.sum(fwd ** 2, -1) + np.sum(back ** 2, -1)) + FB_ABS)
    ok &= (u >= 0) & (u <= w - 1) & (v >= 0) & (v <= h - 1)
    return u.astype(np.float64), v.astype(np.float64), ok


def flicker_pair(pred_from: np.ndarray, pred_to: np.ndarray, u: np.ndarray, v: np.ndarray, valid: np.ndarray,
                 gt_from: np.ndarray | None = None, gt_to: np.ndarray | None = None) -> float:
    """100·mean |ln(p_to(x')/p_from(x)) − ln(g_to(x')/g_from(x))| over corresponding pixels (x → x' = (u, v)) where
    every depth is valid; without ground truth, 100·mean |ln(p_to(x')/p_from(x))| (the raw change: fair only for a
    slowly moving camera). NaN when no pixel qualifies."""
    sel = np.flatnonzero(valid)
    uu, vv = u.ravel()[sel], v.ravel()[sel]
    with np.errstate(divide="ignore", invalid="ignore"):  # holes (0) become -inf and are dropped below
        change = np.log(sample_bilinear(np.asarray(pred_to, np.float64), uu, vv)) - \
            np.log(np.asarray(pred_from, np.float64).ravel()[sel])
        if gt_from is not None and gt_to is not None:
            change -= np.log(sample_bilinear(np.asarray(gt_to, np.float64), uu, vv)) - \
                np.log(np.asarray(gt_from, np.float64).ravel()[sel])
        change = change[np.isfinite(change)]
    return 100 * float(np.mean(np.abs(change))) if change.size else math.nan


def with_invalid(depth: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """``depth`` as float64 with 0 outside ``mask`` (so samplers treat those pixels as holes)."""
    depth = np.asarray(depth, np.float64)
    return depth if mask is None else np.where(mask, depth, 0.0)


def clip_metrics(depths: Sequence[np.ndarray], gts: Sequence[np.ndarray], masks: Sequence[np.ndarray],
                 protocol: Protocol, intrinsics: Sequence[np.ndarray] | None = None,
                 poses: Sequence[np.ndarray] | None = None, static: Sequence[np.ndarray] | None = None,
                 images: Sequence[np.ndarray] | None = None, exact: bool = False) -> dict:
    """Every video figure of one clip of ALIGNED depths (metres, at the ground truth's size).

    masks: the protocol's pixels per frame (``Protocol.mask``); static: where the scene is static (None: all of
    it); intrinsics and poses enable TAE. Correspondences for flicker come from the ground truth and poses with
    ``exact`` (exact depth, as the synthetic suite renders), else from optical flow on ``images`` (H,W,3 in
    [0,1]; real video, whose depth has holes and noise).
    Returns {"frames", "abs_rel", "d1", ... (``sequence_metrics``), "tae", "tae_per_pair": [...], "tae_gt" (the
    ground truth's own TAE: what a perfect prediction would score here), "flicker", "flicker_per_pair": [...]};
    figures that cannot be computed are NaN."""
    n = len(depths)
    row: dict = {"frames": n, **sequence_metrics(depths, gts, masks, protocol)}
    crop = [protocol.crop_mask(*d.shape) for d in depths]
    keep = [c if static is None or static[i] is None else c & static[i] for i, c in enumerate(crop)]
    clipped = [np.clip(np.asarray(d, np.float64), protocol.min_depth, protocol.max_depth) for d in depths]
    clipped = [np.where(np.asarray(d) > 0, c, 0.0) for d, c in zip(depths, clipped)]
    if intrinsics is not None and poses is not None and n > 1:
        row["tae_per_pair"] = tae_per_pair(clipped, intrinsics, poses, keep)
        row["tae"] = finite_mean(row["tae_per_pair"])
        # the ground truth's own TAE: the floor of the measurement (sensor noise, holes, pose error, resampling)
        row["tae_gt"] = tae([with_invalid(g, m) for g, m in zip(gts, masks)], intrinsics, poses, keep)
    else:
        row["tae"], row["tae_gt"], row["tae_per_pair"] = math.nan, math.nan, []
    flick = []
    for t in range(n - 1):
        g0, g1 = with_invalid(gts[t], masks[t] & keep[t]), with_invalid(gts[t + 1], masks[t + 1] & keep[t + 1])
        if exact and intrinsics is not None and poses is not None:
            u, v, ok = depth_correspondences(g0, g1, intrinsics[t], intrinsics[t + 1], poses[t], poses[t + 1])
        elif images is not None:
            u, v, ok = flow_correspondences(images[t], images[t + 1])
        else:
            break
        flick.append(flicker_pair(clipped[t], clipped[t + 1], u, v, ok & keep[t], g0, g1))
    row["flicker_per_pair"] = flick
    row["flicker"] = finite_mean(flick)
    return row


__all__ = ["align_sequence", "sequence_metrics", "relative_pose", "project", "sample_bilinear", "tae_pair",
           "tae_per_pair", "tae", "depth_correspondences", "flow_correspondences", "flicker_pair", "clip_metrics"]
