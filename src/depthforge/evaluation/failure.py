"""Failure-mode metrics: where a depth map goes wrong, not only how much on average.

Every function takes ONE image: pred and gt are (H,W) depth maps in metres (numpy or torch; leading size-1 axes are
dropped), pred already at gt's size; gt 0 or non-finite is invalid. Results are plain floats (NaN when the metric
has nothing to measure), so per-image rows average with ``metrics.mean_metrics``.

References (read, re-implemented here):

- iBims-1 (Koch et al., "Evaluation of CNN-based Single-Image Depth Estimation Methods", ECCV-W 2018), T. Koch's
  Python evaluation scripts: depth-boundary errors (DBE), directed depth errors (DDE) and planarity errors (PE).
  Two versions of the scripts circulate; the defaults follow the newer one (the copy in xuefeng-cvr/BS-Net,
  ``evaluate_ibims_error_metrics.py``), the v0.9 settings are reachable through parameters.
- DiverseDepth (Yin et al. 2020), ``lib/utils/evaluate_depth_error.py``: the WHDR-style ordinal error.
- ClearGrasp (Sajjan et al. 2020) / TransCG (Fang et al. 2022): the standard metrics inside a transparent-object
  mask and on the rest of the image.

``failure_row`` computes whichever of these the masks at hand allow; ``sample_masks`` takes them out of a sample.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
from scipy.ndimage import distance_transform_edt

from ..errors import DepthforgeError
from .metrics import Protocol, as_image, valid_pair, compute_metrics, depth_mask, get_protocol

DBE_NAMES = ("dbe_acc", "dbe_comp")
DDE_NAMES = ("dde_0", "dde_m", "dde_p")
PE_NAMES = ("pe_flat", "pe_orient")
# ClearGrasp's extra columns beside the standard nine: MAE (m) and the tighter δ thresholds 1.05 and 1.10
# (δ < 1.25 is the standard "d1").
MASKED_EXTRA = ("mae", "d105", "d110")
PLANE_KINDS = ("wall", "table", "floor")  # iBims-1's annotated plane types


# --- depth-boundary errors (iBims-1) --------------------------------------------------------------------------

def canny_edges(depth, sigma: float = math.sqrt(2), low: float = 0.15, high: float = 0.3) -> np.ndarray:
    """The edges iBims-1's script finds in a depth map: bool (H,W).

    depth: (H,W) metres (or any units: it is min-max normalised); values that are 0 or non-finite are ignored
    (NaN, as the script sets prediction 0 to NaN). The map is normalised to [0, 1] over its finite pixels and
    passed to ``skimage.feature.canny(sigma, low_threshold=low, high_threshold=high)`` (absolute thresholds on
    the gradient magnitude of the smoothed normalised map). A constant map has no edge.
    """
    from skimage import feature

    d = as_image(depth, "depth", np.float32)  # float32 as the script ('f'): thresholds then fall on the same side
    d = np.where(np.isfinite(d) & (d != 0), d, np.float32(np.nan))
    if not np.isfinite(d).any():
        return np.zeros(d.shape, bool)
    d = d - np.nanmin(d)
    top = np.nanmax(d)
    if top <= 0:  # the script would divide by 0 and find nothing: say so without the NaN warnings
        return np.zeros(d.shape, bool)
    return feature.canny(d / top, sigma=sigma, low_threshold=low, high_threshold=high)


def boundary_errors(pred, edges_gt, sigma: float = math.sqrt(2), low: float = 0.15, high: float = 0.3,
                    max_dist: float = 10.0, completeness: str = "symmetric") -> dict[str, float]:
    """iBims-1 depth-boundary errors ε_acc and ε_comp, in pixels (lower is better).

    pred: (H,W) metres, the FULL prediction (the script does not mask it); edges_gt: bool (H,W) annotated depth
    boundaries (iBims-1's ``edges``, or ``occlusion_edges`` of a ground truth without annotations).
    Predicted edges: ``canny_edges(pred, sigma, low, high)``. D_gt, D_est: Euclidean distance transforms of the
    non-edge pixels of gt and prediction. ε_acc = mean D_gt over the predicted edges with D_gt < max_dist.
    ε_comp ("symmetric", the newer script) = (Σ min(D_gt, max_dist) over predicted edges + Σ min(D_est, max_dist)
    over gt edges) / (#predicted + #gt edges); ("directed", v0.9) = mean D_est over gt edges, untruncated.
    When no predicted edge lies within max_dist of a gt edge, both are ``max_dist``.
    Returns {"dbe_acc", "dbe_comp"}; both NaN when gt has no edge.

    Defaults follow the newer script (BS-Net's copy); v0.9 is ``low=0.1, high=0.2, completeness="directed"``.
    Neither reproduces the paper's MATLAB Canny exactly (the v0.9 header says so).
    """
    if completeness not in ("symmetric", "directed"):
        raise DepthforgeError(f"boundary_errors: unknown completeness {completeness!r}; known: symmetric, directed")
    pred = as_image(pred, "pred")
    gt_edges = as_image(edges_gt, "edges_gt", bool)
    if gt_edges.shape != pred.shape:
        raise DepthforgeError(f"edges_gt is {gt_edges.shape[0]}x{gt_edges.shape[1]} but pred is "
                              f"{pred.shape[0]}x{pred.shape[1]}")
    if not gt_edges.any():
        return dict.fromkeys(DBE_NAMES, float("nan"))
    est = canny_edges(pred, sigma, low, high)
    d_gt = distance_transform_edt(~gt_edges)
    near = est & (d_gt < max_dist)
    if not near.any():
        return dict.fromkeys(DBE_NAMES, float(max_dist))
    acc = float(d_gt[near].mean())
    d_est = distance_transform_edt(~est)
    if completeness == "symmetric":
        total = np.minimum(d_gt[est], max_dist).sum() + np.minimum(d_est[gt_edges], max_dist).sum()
        comp = float(total / (est.sum() + gt_edges.sum()))
    else:
        comp = float(d_est[gt_edges].mean())
    return {"dbe_acc": acc, "dbe_comp": comp}


def occlusion_edges(depth, valid=None, ratio: float = 1.05) -> np.ndarray:
    """Ground-truth depth boundaries derived from depth discontinuities, for datasets WITHOUT annotated edges.

    This is NOT iBims-1's annotation (those edges were drawn by hand on distinct depth transitions); it is a
    stand-in so that ``boundary_errors`` can run elsewhere. depth: (H,W) metres; valid: optional bool (H,W),
    ANDed with finite depth > 0. A pixel is an edge when one of its 4-neighbours, both valid, is more than
    ``ratio`` times as far (default 5%: a floor seen at 10 m changes by ≈1.3% per row at NYU's focal length,
    while an object's silhouette jumps by far more). Only the nearer (occluding) pixel of each pair is marked,
    so the edges are one pixel thin like the annotations. Jumps into invalid pixels are not edges (unknown).
    Returns bool (H,W).
    """
    d = as_image(depth, "depth")
    ok = depth_mask(d, valid)
    logd = np.log(np.where(ok, d, 1.0))
    edges = np.zeros(d.shape, bool)
    step = math.log(ratio)
    for axis in (0, 1):
        a = [slice(None)] * 2
        b = [slice(None)] * 2
        a[axis], b[axis] = slice(None, -1), slice(1, None)
        a, b = tuple(a), tuple(b)
        both = ok[a] & ok[b]
        jump = logd[b] - logd[a]  # > 0: the second pixel is farther
        edges[a] |= both & (jump > step)
        edges[b] |= both & (jump < -step)
    return edges


# --- directed depth error (iBims-1) ---------------------------------------------------------------------------

def directed_depth_errors(pred, gt, valid=None, threshold: float = 3.0) -> dict[str, float]:
    """iBims-1 directed depth errors at a depth plane ``threshold`` metres from the camera (shares in [0, 1]).

    pred, gt: (H,W) metres; valid: optional bool (H,W), ANDed with finite gt > 0 and finite pred > 0 (the script
    drops prediction zeros as well). Depths ≤ threshold are "near". dde_0: share of pixels where pred and gt agree
    (both near or both far); dde_m: pred near where gt is far (predicted too close); dde_p: pred far where gt is
    near (predicted too far). dde_0 + dde_m + dde_p = 1. Returns {"dde_0", "dde_m", "dde_p"}; NaN with no valid
    pixel. (The paper's tables print them ×100.)
    """
    pred, gt, mask = valid_pair(pred, gt, valid)
    mask &= np.isfinite(pred) & (pred > 0)
    if not mask.any():
        return dict.fromkeys(DDE_NAMES, float("nan"))
    p_near, g_near = pred[mask] <= threshold, gt[mask] <= threshold
    return {"dde_0": float(np.mean(p_near == g_near)), "dde_m": float(np.mean(p_near & ~g_near)),
            "dde_p": float(np.mean(~p_near & g_near))}


# --- planarity errors (iBims-1) -------------------------------------------------------------------------------

def _plane_points(depth: np.ndarray, inside: np.ndarray, k: np.ndarray) -> np.ndarray:
    """(N,3) points in iBims-1's frame (x right, y forward = depth, z up) of the pixels ``inside``; ``k`` is the
    3x3 intrinsics in 0-based pixel coordinates."""
    fx, fy, cx, cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
    r, c = np.nonzero(inside)
    z = depth[r, c]
    return np.stack([(c - cx) * z / fx, z, -(r - cy) * z / fy], axis=1)


def plane_errors(pred, gt, labels, params, intrinsics, valid=None, min_area: float = 0.05) -> np.ndarray:
    """iBims-1 planarity errors of every annotated plane of one type: float array (K, 2) of (PE_flat cm, PE_orient °).

    pred: (H,W) metres; gt: (H,W) metres or None (then pred is used unscaled); labels: int (H,W), plane j (0-based)
    where labels == j+1; params: (K, ≥7), row j holding plane j's unit normal at [4:7] in iBims-1's frame (x right,
    y forward, z up); intrinsics: (3,3) in 0-based pixel coordinates (iBims-1's calib is 1-based; the reader
    converts); valid: optional bool (H,W). A plane counts where valid, finite pred > 0 (and gt > 0 when given).
    Per plane, as the script: planes covering less than ``min_area`` of the image give NaN (the script divides by
    640·480; this uses H·W, the same at iBims' size); pred is scaled by median(gt)/median(pred) inside the plane;
    its pixels are back-projected; the plane is fitted by PCA (normal = least-variance axis); PE_flat = 100·std of
    the point-to-plane distances (cm); PE_orient = angle between the fitted and annotated normals (°, the fitted
    normal flipped to the annotated one's side).
    """
    pred = as_image(pred, "pred")
    labels = as_image(labels, "labels", np.int64)
    if labels.shape != pred.shape:
        raise DepthforgeError(f"plane labels are {labels.shape[0]}x{labels.shape[1]} but pred is "
                              f"{pred.shape[0]}x{pred.shape[1]}")
    params = np.asarray(params.detach().cpu().numpy() if hasattr(params, "detach") else params, dtype=np.float64)
    params = params.reshape(-1, params.shape[-1]) if params.size else np.zeros((0, 7))
    if params.shape[0] and params.shape[1] < 7:
        raise DepthforgeError(f"plane params have {params.shape[1]} columns; the normal sits at [4:7]")
    k = np.asarray(intrinsics.detach().cpu().numpy() if hasattr(intrinsics, "detach") else intrinsics, np.float64)
    k = k.reshape(k.shape[-2:]) if k.ndim > 2 else k
    ok = np.isfinite(pred) & (pred > 0)
    if gt is not None:
        _, gt, mask = valid_pair(pred, gt, valid)
        ok &= mask
    elif valid is not None:
        ok &= as_image(valid, "valid", bool)
    h, w = pred.shape
    out = np.full((params.shape[0], 2), np.nan)
    for j in range(params.shape[0]):
        inside = ok & (labels == j + 1)
        if inside.sum() / (h * w) < min_area:
            continue
        scale = np.median(gt[inside]) / np.median(pred[inside]) if gt is not None else 1.0
        pts = _plane_points(pred * scale, inside, k)
        centred = pts - pts.mean(axis=0)
        normal = np.linalg.svd(centred, full_matrices=False)[2][2]  # least-variance direction = PCA's 3rd axis
        flat = np.std(centred @ normal) * 100.0
        n_gt = params[j, 4:7]
        if normal @ n_gt < 0:
            normal = -normal
        out[j] = flat, math.degrees(math.atan2(np.linalg.norm(np.cross(n_gt, normal)), normal @ n_gt))
    return out


def planarity_errors(pred, gt, plane_mask, plane_params, intrinsics, valid=None) -> dict[str, float]:
    """iBims-1 planarity errors of one image: {"pe_flat" (cm), "pe_orient" (°), "pe_count"}.

    plane_mask, plane_params: one plane type's labels (H,W) and params (K, ≥7), or a list of such pairs (wall,
    table, floor). See ``plane_errors`` for the definition. pe_flat / pe_orient are the means over the planes that
    qualified (NaN if none); pe_count is their number, so ``Σ pe·count / Σ count`` over images reproduces the
    script's pooling over all planes of the dataset (a plain mean over images weights images, not planes).
    """
    pairs = plane_mask if isinstance(plane_mask, (list, tuple)) else [(plane_mask, plane_params)]
    errs = [plane_errors(pred, gt, lab, par, intrinsics, valid) for lab, par in pairs]
    errs = np.concatenate(errs) if errs else np.zeros((0, 2))
    errs = errs[np.isfinite(errs).all(axis=1)]
    if not len(errs):
        return {"pe_flat": float("nan"), "pe_orient": float("nan"), "pe_count": 0.0}
    return {"pe_flat": float(errs[:, 0].mean()), "pe_orient": float(errs[:, 1].mean()), "pe_count": float(len(errs))}


# --- ordinal error (DiverseDepth) -----------------------------------------------------------------------------

def whdr(pred, gt, valid=None, n_pairs: int = 5000, tolerance: float = 0.02, seed: int = 0) -> float:
    """WHDR-style ordinal error of DiverseDepth: the share of pixel pairs whose depth order the prediction gets wrong.

    pred, gt: (H,W) (any positive scale: only ratios matter); valid: optional bool (H,W), ANDed with finite gt > 0
    and finite pred > 0. As DiverseDepth: two independent random permutations of the valid pixels pair them up,
    pairs of a pixel with itself are dropped, the first ``n_pairs`` are kept; each pair is labelled +1 when
    d₁/d₂ > 1 + tolerance, −1 when < 1 − tolerance, else 0 (equal), for gt and pred alike; the error is the share
    of pairs whose labels differ. 0 = every order right; a depth-reversed map scores ≈ 1 minus the share of
    gt-equal pairs. Deterministic for a ``seed`` (numpy Generator). NaN with fewer than 2 valid pixels.
    Differs from ``metrics.ordinal_error``, which skips gt-equal pairs and counts ties as wrong.
    """
    pred, gt, mask = valid_pair(pred, gt, valid)
    mask &= np.isfinite(pred) & (pred > 0)
    idx = np.flatnonzero(mask)
    if idx.size < 2:
        return float("nan")
    rng = np.random.default_rng(seed)
    p1, p2 = rng.permutation(idx), rng.permutation(idx)
    keep = p1 != p2
    p1, p2 = p1[keep][:n_pairs], p2[keep][:n_pairs]
    if not p1.size:
        return float("nan")

    def labels(d: np.ndarray) -> np.ndarray:
        r = d.flat[p1] / d.flat[p2]
        return np.where(r > 1 + tolerance, 1, np.where(r < 1 - tolerance, -1, 0))

    return float(np.mean(labels(gt) != labels(pred)))


DISTANCE_NAMES = ("abs_rel", "rmse", "log10")


DISTANCE_TOP = 20.0  # metres: the newer iBims-1 script's last band


def distance_errors(pred, gt, valid=None, top: float = DISTANCE_TOP, step: float = 1.0) -> dict[str, np.ndarray]:
    """iBims-1's distance-related errors: AbsRel, RMSE (m) and log10 within each ``step``-metre band of gt depth.

    pred, gt: (H,W) metres; valid: optional bool (H,W), ANDed with finite gt > 0 and finite pred > 0. Band k holds
    the pixels with k·step ≤ gt ≤ (k+1)·step up to ``top`` (both ends inclusive, as the iBims-1 script, so a gt of
    exactly k metres counts in two bands). Returns {"abs_rel", "rmse", "log10": float (K,)}, NaN for an empty
    band; average images per band with ``nanmean``. Follows ``compute_distance_related_errors`` of the newer
    iBims-1 script (1-m bands to 20 m); deviation: pred and gt are masked together, where the script drops zeros of
    each separately (which misaligns them when the prediction has zeros).
    """
    pred, gt, mask = valid_pair(pred, gt, valid)
    mask &= np.isfinite(pred) & (pred > 0)
    p, g = pred[mask], gt[mask]
    edges = np.arange(0.0, top + step / 2, step)
    out = {name: np.full(len(edges) - 1, np.nan) for name in DISTANCE_NAMES}
    for k, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        band = (g >= lo) & (g <= hi)
        if band.any():
            pk, gk = p[band], g[band]
            out["abs_rel"][k] = np.mean(np.abs(gk - pk) / gk)
            out["rmse"][k] = np.sqrt(np.mean((gk - pk) ** 2))
            out["log10"][k] = np.mean(np.abs(np.log10(gk) - np.log10(pk)))
    return out


# --- metrics inside a mask (ClearGrasp / TransCG) -------------------------------------------------------------

def _region_metrics(pred, gt, region, proto: Protocol) -> dict[str, float]:
    out = compute_metrics(pred, gt, proto, valid=region)
    keep = proto.mask(gt, region)
    if not keep.any():
        out.update(dict.fromkeys(MASKED_EXTRA, float("nan")))
        return out
    p = np.clip(pred[keep], proto.min_depth, proto.max_depth)
    g = gt[keep]
    ratio = np.maximum(g / p, p / g)
    out.update(mae=float(np.mean(np.abs(p - g))), d105=float(np.mean(ratio < 1.05)),
               d110=float(np.mean(ratio < 1.10)))
    return out


def masked_metrics(pred, gt, valid, mask, protocol: str | Protocol = "none", name: str = "glass",
                   rest: str = "rest") -> dict[str, float]:
    """The standard metrics inside a mask and on the rest of the image, ClearGrasp/TransCG style.

    pred, gt: (H,W) metres; valid: optional bool (H,W); mask: bool (H,W), e.g. transparent objects. Pixels:
    the protocol's (crop, min < gt < max, pred clamped) ∧ valid ∧ mask, resp. ∧ ¬mask. Per region: the nine
    ``compute_metrics`` columns (rmse, abs_rel = ClearGrasp's REL, d1 = δ<1.25, ...) plus "mae" (mean |pred − gt|,
    m) and "d105", "d110" (δ < 1.05, 1.10), keys prefixed "<name>/" and "<rest>/" (e.g. "glass/abs_rel",
    "rest/abs_rel"). A region without valid pixels gives NaN. Booster's least-squares alignment in disparity is
    not done here: align before calling.
    """
    pred, gt, ok = valid_pair(pred, gt, valid)
    m = as_image(mask, "mask", bool)
    if m.shape != gt.shape:
        raise DepthforgeError(f"mask is {m.shape[0]}x{m.shape[1]} but gt is {gt.shape[0]}x{gt.shape[1]}")
    proto = get_protocol(protocol)
    out = {}
    for prefix, region in ((name, ok & m), (rest, ok & ~m)):
        out.update({f"{prefix}/{k}": v for k, v in _region_metrics(pred, gt, region, proto).items()})
    return out


# --- one call per image ---------------------------------------------------------------------------------------

def _to_numpy(x) -> np.ndarray:
    x = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
    while x.ndim > 2 and x.shape[0] == 1:
        x = x[0]
    return x


def sample_masks(sample: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The masks ``failure_row`` reads, taken out of a sample dict or a batch of one: "edges", "transparent",
    "plane_<kind>" with "plane_<kind>_params", and "intrinsics", as numpy with size-1 leading axes dropped (params
    keep their (K, C) shape, K ≥ 0)."""
    out = {}
    for key, value in sample.items():
        if key in ("edges", "transparent", "glass", "intrinsics") or key.startswith("plane_"):
            a = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
            if key.endswith("_params"):
                a = a.reshape(a.shape[-2:]) if a.ndim > 2 else a
            else:
                a = _to_numpy(a)
            out[key] = a
    return out


def failure_row(pred, gt, valid=None, masks: Mapping[str, Any] | None = None, intrinsics=None,
                protocol: str | Protocol = "none") -> dict[str, float]:
    """Every failure-mode metric the available masks allow, for one image: {name: float}.

    pred, gt: (H,W) metres, pred at gt's size; valid: optional bool (H,W). masks (e.g. ``sample_masks(batch)``):
    - always: "dde_0", "dde_m", "dde_p" (``directed_depth_errors``, 3 m) and "whdr" (``whdr``);
    - "edges" (bool (H,W)): "dbe_acc", "dbe_comp" (``boundary_errors`` on the full prediction, as the script);
    - "plane_<kind>" (int labels (H,W)) with "plane_<kind>_params" ((K, ≥7)) and intrinsics (argument or
      masks["intrinsics"], (3,3) 0-based pixels): "pe_flat", "pe_orient", "pe_count" over all plane types;
    - "transparent" or "glass" (bool (H,W)): ``masked_metrics`` under ``protocol``, keys "<that name>/..." and
      "rest/...".
    """
    masks = dict(masks or {})
    row = directed_depth_errors(pred, gt, valid)
    row["whdr"] = whdr(pred, gt, valid)
    if masks.get("edges") is not None:
        row.update(boundary_errors(pred, masks["edges"]))
    kinds = [k[len("plane_"):] for k in masks if k.startswith("plane_") and not k.endswith("_params")]
    if kinds:
        k = intrinsics if intrinsics is not None else masks.get("intrinsics")
        if k is None:
            raise DepthforgeError("failure_row: plane masks need the camera intrinsics (3x3)")
        pairs = [(masks[f"plane_{kind}"], masks.get(f"plane_{kind}_params", np.zeros((0, 7)))) for kind in kinds]
        row.update(planarity_errors(pred, gt, pairs, None, k, valid))
    for name in ("transparent", "glass"):
        if masks.get(name) is not None:
            row.update(masked_metrics(pred, gt, valid, masks[name], protocol, name=name))
    return row


__all__ = ["DBE_NAMES", "DDE_NAMES", "PE_NAMES", "MASKED_EXTRA", "PLANE_KINDS", "canny_edges", "boundary_errors",
           "occlusion_edges", "directed_depth_errors", "plane_errors", "planarity_errors", "whdr", "DISTANCE_NAMES",
           "distance_errors", "masked_metrics", "sample_masks", "failure_row"]
