"""Depth metrics: the field's standard protocol, alignment for relative-depth models, and failure-mode metrics.

Every function takes ONE image: pred and gt are (H,W) depth maps in metres (numpy or torch; leading size-1 axes are
dropped). gt 0 or non-finite is invalid. Results are plain floats (NaN when nothing is valid).

The standard metrics follow the Monocular-Depth-Estimation-Toolbox (BinsFormer's and DepthFormer's numbers):
per image, then averaged with ``nanmean`` (``mean_metrics``).
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
from scipy.ndimage import distance_transform_edt

from ..data import protocols
from ..models.base import ALIGN_MODES
from ..errors import DepthforgeError

# The table order of Eigen et al. and most papers since.
METRIC_NAMES: tuple[str, ...] = ("d1", "d2", "d3", "abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "silog")
HIGHER_IS_BETTER = frozenset({"d1", "d2", "d3", "d105", "d110", "seed_acc", "dde_0", "edge_f1",
                              "pair_accuracy"})  # the rest: lower


@dataclass(frozen=True)
class Protocol:
    """An evaluation protocol: which crop, and which ground-truth depths (metres) count.

    crop: "eigen" (NYU), "garg" (KITTI) or "none". Valid pixels have min_depth < gt < max_depth; pred is clamped to
    [min_depth, max_depth].
    """

    crop: str
    min_depth: float
    max_depth: float

    def with_max(self, max_depth: float) -> Protocol:
        """This protocol with the depth cap ``max_depth`` metres (inf: no cap, as the official iBims-1 script)."""
        if not float(max_depth) > self.min_depth:  # also NaN
            raise DepthforgeError(f"max depth {max_depth}: the depth cap must be more than the protocol's minimum "
                                  f"depth, {self.min_depth:g} m (inf: no cap)")
        return replace(self, max_depth=float(max_depth))

    def crop_mask(self, h: int, w: int) -> np.ndarray:
        """Bool (h,w): True inside the crop.

        eigen: rows 45:471, columns 41:601, defined at 480×640 and scaled proportionally (rounded) for other sizes.
        garg: rows int(0.40810811·h):int(0.99189189·h), columns int(0.03594771·w):int(0.96405229·w), on the
        ground truth as given.
        """
        mask = np.zeros((h, w), bool)
        if self.crop == "none":
            mask[:] = True
        elif self.crop == "eigen":
            mask[round(45 * h / 480):round(471 * h / 480), round(41 * w / 640):round(601 * w / 640)] = True
        elif self.crop == "garg":
            mask[int(0.40810811 * h):int(0.99189189 * h), int(0.03594771 * w):int(0.96405229 * w)] = True
        else:
            raise ValueError(f"unknown crop {self.crop!r}; known: eigen, garg, none")
        return mask

    def mask(self, gt: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
        """The pixels this protocol evaluates: finite gt with min < gt < max, inside the crop [and ``valid``]."""
        m = np.isfinite(gt) & (gt > self.min_depth) & (gt < self.max_depth) & self.crop_mask(*gt.shape)
        return m if valid is None else m & valid


class _Protocols(Mapping):
    """Every protocol by name, read from the dataset registry at each look-up (``data.protocols``), so a dataset
    registered later (a plug-in, a test's toy) is evaluated with its own protocols."""

    def __getitem__(self, name: str) -> Protocol:
        return Protocol(*protocols()[name])

    def __iter__(self):
        return iter(protocols())

    def __len__(self) -> int:
        return len(protocols())


PROTOCOLS: Mapping[str, Protocol] = _Protocols()


def get_protocol(protocol: str | Protocol, max_depth: float | None = None) -> Protocol:
    """A protocol by name (or as given), with its depth cap replaced when ``max_depth`` is given."""
    if isinstance(protocol, str):
        if protocol not in PROTOCOLS:
            raise DepthforgeError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
        protocol = PROTOCOLS[protocol]
    return protocol if max_depth is None else protocol.with_max(max_depth)


def as_image(x, name: str, dtype=np.float64) -> np.ndarray:
    """numpy or torch -> (H,W) array of ``dtype``; leading size-1 axes ([1,1,H,W], [1,H,W]) are dropped."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=dtype)
    while x.ndim > 2 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 2:
        raise ValueError(f"{name} must be one (H,W) depth map, got shape {x.shape}")
    return x


def valid_pair(pred, gt, valid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """pred, gt as float64 (H,W) of the same size, and the mask of valid gt (finite, > 0, and ``valid``)."""
    pred, gt = as_image(pred, "pred"), as_image(gt, "gt")
    if pred.shape != gt.shape:
        raise ValueError(f"pred is {pred.shape[0]}x{pred.shape[1]} but gt is {gt.shape[0]}x{gt.shape[1]}; "
                         "resize pred to the ground truth's size before evaluating")
    return pred, gt, depth_mask(gt, valid)


def depth_mask(depth: np.ndarray, valid=None) -> np.ndarray:
    """Bool (H,W): finite depth > 0, and ``valid`` (bool (H,W), numpy or torch) where given."""
    mask = np.isfinite(depth) & (depth > 0)
    if valid is not None:
        valid = as_image(valid, "valid", bool)
        if valid.shape != depth.shape:
            raise DepthforgeError(f"valid is {valid.shape[0]}x{valid.shape[1]} but depth is "
                                  f"{depth.shape[0]}x{depth.shape[1]}")
        mask &= valid
    return mask


def compute_metrics(pred, gt, protocol: str | Protocol = "nyu", valid=None,
                    max_depth: float | None = None) -> dict[str, float]:
    """The 9 standard metrics of one image, as the Monocular-Depth-Estimation-Toolbox computes them.

    pred, gt: (H,W) metres, pred already at gt's size; valid: optional bool (H,W), ANDed with the protocol's mask;
    max_depth overrides the protocol's cap. Steps: valid = (gt > min) & (gt < max) & crop [& valid]; pred clamped
    to [min, max]; over valid pixels, r = max(gt/pred, pred/gt), d_i = mean(r < 1.25^i), abs_rel = mean|gt−pred|/gt,
    sq_rel = mean (gt−pred)²/gt, rmse = √mean (gt−pred)², rmse_log = √mean (ln gt − ln pred)²,
    log10 = mean|log10 gt − log10 pred|, silog = 100·√(mean e² − (mean e)²) with e = ln pred − ln gt.
    Returns {name: float} in ``METRIC_NAMES`` order; all NaN when no pixel is valid. Like the toolbox, the
    metrics are computed in float32, which reproduces its numbers exactly.
    """
    proto = get_protocol(protocol, max_depth)
    pred, gt, mask = valid_pair(pred, gt, valid)
    mask = proto.mask(gt, mask)
    if not mask.any():
        return dict.fromkeys(METRIC_NAMES, float("nan"))
    # float32 as the toolbox: float64 would flip the odd pixel whose ratio sits within rounding of 1.25^i.
    p = np.clip(pred[mask], proto.min_depth, proto.max_depth).astype(np.float32)
    g = gt[mask].astype(np.float32)
    if np.isnan(p).any():
        raise ValueError(f"pred is NaN at {int(np.isnan(p).sum())} valid pixels")
    ratio = np.maximum(g / p, p / g)
    e = np.log(p) - np.log(g)
    out = {f"d{i}": np.mean(ratio < 1.25**i) for i in (1, 2, 3)}
    out.update(
        abs_rel=np.mean(np.abs(g - p) / g),
        sq_rel=np.mean((g - p) ** 2 / g),
        rmse=np.sqrt(np.mean((g - p) ** 2)),
        rmse_log=np.sqrt(np.mean(e**2)),
        log10=np.mean(np.abs(np.log10(g) - np.log10(p))),
        silog=100 * np.sqrt(np.var(e)),  # = sqrt(mean(e²) − mean(e)²), never negative by rounding
    )
    return {k: float(out[k]) for k in METRIC_NAMES}


def mean_metrics(rows: list[dict[str, float]]) -> dict[str, float]:
    """Average per-image metric dicts with ``nanmean`` (images without valid pixels are ignored), key by key."""
    keys = list(dict.fromkeys(k for row in rows for k in row)) or list(METRIC_NAMES)
    out = {}
    for k in keys:
        vals = np.array([row.get(k, np.nan) for row in rows], dtype=np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN column -> NaN, no warning
            out[k] = float(np.nanmean(vals)) if vals.size else float("nan")
    return out


# What evaluation does to each output kind unless told otherwise. Disparity is aligned in disparity, as Depth
# Anything V2's maintainers recommend (DA-V2 issue #157) and Booster does; then inverted to depth.
DEFAULT_ALIGN = {"metric": "none", "relative": "median", "disparity": "lstsq-disparity"}
MIN_DISPARITY = 1e-6


def default_align(contract) -> str:
    """``DEFAULT_ALIGN`` for a model's contract: an affine-invariant relative output (``shift``) is fitted in scale
    and shift by least squares, as Marigold's paper evaluates."""
    if contract.shift:  # only relative outputs have one
        return "lstsq"
    return DEFAULT_ALIGN[contract.output]


def align(pred, gt, valid=None, mode: str = "median") -> np.ndarray:
    """Align a relative-depth prediction to the ground truth; returns float64 (H,W).

    pred, gt: (H,W); valid: optional bool (H,W), ANDed with finite gt > 0 and finite pred.
    mode: "none" (as is); "median": pred·median(gt)/median(pred) over valid pixels; "lstsq": s·pred + t with the
    scale s and shift t that minimise Σ(s·pred + t − gt)² over valid pixels. With no valid pixel pred is returned
    unchanged.
    """
    if mode not in ("none", "median", "lstsq"):
        raise ValueError(f"unknown alignment {mode!r}; known: none, median, lstsq")
    pred, gt, mask = valid_pair(pred, gt, valid)
    mask &= np.isfinite(pred)
    if mode == "none" or not mask.any():
        return pred
    p, g = pred[mask], gt[mask]
    if mode == "median":
        return pred * (np.median(g) / np.median(p))
    (s, t), *_ = np.linalg.lstsq(np.stack([p, np.ones_like(p)], axis=1), g, rcond=None)
    return s * pred + t


def to_metres(pred, gt, valid=None, output: str = "metric", mode: str | None = None) -> np.ndarray:
    """A model's output (H,W) of kind ``output`` ("metric" | "relative" | "disparity") -> depth in metres.

    ``mode`` (default ``DEFAULT_ALIGN[output]``): "none", or "median"/"lstsq" fitted in depth, or
    "median-disparity"/"lstsq-disparity" fitted in inverse depth (1/gt) and inverted back. A disparity output is
    inverted before a depth-space fit; a depth output is inverted before a disparity-space fit. Fits use the
    pixels of ``valid`` with finite gt > 0. Returns float64 (H,W); a non-positive aligned disparity becomes 0
    (invalid) rather than a negative depth.
    """
    mode = DEFAULT_ALIGN[output] if mode is None else mode
    if mode not in ALIGN_MODES:
        raise DepthforgeError(f"alignment {mode!r}: choose from {', '.join(ALIGN_MODES)}")
    pred = as_image(pred, "pred")
    in_disparity = mode.endswith("-disparity")
    if (output == "disparity") != in_disparity:  # bring the output into the space of the fit
        with np.errstate(divide="ignore"):
            pred = np.where(pred > 0, 1.0 / np.maximum(pred, MIN_DISPARITY), 0.0)
    if not in_disparity:
        return align(pred, gt, valid, mode)
    g = as_image(gt, "gt")
    with np.errstate(divide="ignore"):
        inv_gt = np.where(np.isfinite(g) & (g > 0), 1.0 / np.where(g > 0, g, 1.0), 0.0)
    disp = align(pred, inv_gt, valid, mode.removesuffix("-disparity"))
    return np.where(disp > MIN_DISPARITY, 1.0 / np.maximum(disp, MIN_DISPARITY), 0.0)


def soft_accuracy(pred, gt, valid=None, max_depth: float = 10.0) -> float:
    """The seed's "accuracy": mean(round(gt/max_depth) == round(pred/max_depth)) over valid pixels.

    This is Keras's ``accuracy`` on depth normalised to [0,1]: it only asks whether pred and gt fall on the same
    side of max_depth/2 (ties round half to even, as tf.round). pred, gt: (H,W) metres. NaN with no valid pixel.
    """
    pred, gt, mask = valid_pair(pred, gt, valid)
    if not mask.any():
        return float("nan")
    return float(np.mean(np.round(gt[mask] / max_depth) == np.round(pred[mask] / max_depth)))


def ordinal_error(pred, gt, valid=None, n_pairs: int = 20000, ratio: float = 1.03, seed: int = 0) -> float:
    """Share of pixel pairs whose depth order the prediction gets wrong (reversed or tied).

    Draws ``n_pairs`` random pairs of valid pixels (with a fixed ``seed``), keeps those whose gt depths differ by
    more than ``ratio`` (default 3%, below which the order is within sensor noise), and counts a pair as wrong
    when sign(pred_a − pred_b) ≠ sign(gt_a − gt_b). pred, gt: (H,W) metres. 0 = every order right, 1 = all
    reversed (inverted depth); NaN when no pair qualifies.
    """
    pred, gt, mask = valid_pair(pred, gt, valid)
    idx = np.flatnonzero(mask)
    if idx.size < 2:
        return float("nan")
    a, b = np.random.default_rng(seed).choice(idx, size=(2, n_pairs))
    ga, gb, pa, pb = gt.flat[a], gt.flat[b], pred.flat[a], pred.flat[b]
    keep = np.maximum(ga / gb, gb / ga) > ratio
    if not keep.any():
        return float("nan")
    return float(np.mean(np.sign(pa - pb)[keep] != np.sign(ga - gb)[keep]))


def _log_edges(depth: np.ndarray, region: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Edges where |∇ ln depth| (central differences, per pixel) exceeds threshold, and where ∇ is defined."""
    log = np.where(region, np.log(np.maximum(depth, 1e-3)), np.nan)
    mag = np.hypot(*np.gradient(log))
    defined = np.isfinite(mag)
    return defined & (mag > threshold), defined


def edge_metrics(pred, gt, valid=None, threshold: float = 0.1, tolerance: float = 2.0) -> dict[str, float]:
    """Depth-boundary precision, recall and F1, in the spirit of iBims-1's depth boundary errors.

    Edges: pixels where the gradient magnitude of log-depth exceeds ``threshold`` (0.1 ≈ a 20% depth jump across
    the two-pixel central difference; log makes it scale-free, so far walls and near chairs count alike), in gt and
    pred alike, only where gt's gradient is defined (both neighbours valid). A predicted edge pixel is correct when
    a gt edge lies within ``tolerance`` pixels (Euclidean distance transform), and a gt edge is found when a
    predicted one does. pred, gt: (H,W) metres. Returns {"precision", "recall", "f1"}: a blurred boundary loses
    recall, spurious texture edges lose precision. NaN when neither side has an edge, 0 when only one has.
    """
    pred, gt, mask = valid_pair(pred, gt, valid)
    gt_edges, region = _log_edges(gt, mask, threshold)
    pred_edges, _ = _log_edges(pred, mask, threshold)
    pred_edges &= region
    if not gt_edges.any() and not pred_edges.any():
        return dict.fromkeys(("precision", "recall", "f1"), float("nan"))
    if not gt_edges.any() or not pred_edges.any():
        return dict.fromkeys(("precision", "recall", "f1"), 0.0)
    precision = float(np.mean(distance_transform_edt(~gt_edges)[pred_edges] <= tolerance))
    recall = float(np.mean(distance_transform_edt(~pred_edges)[gt_edges] <= tolerance))
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def pair_accuracy(pred, pairs, closer, output: str) -> float:
    """Share of annotated point pairs whose depth order the prediction gets right (DA-2K's metric).

    pred: (H,W) model output at the image's size; pairs: (P,4) integer pixel coordinates (y1, x1, y2, x2);
    closer: (P,) 0 when the first point is the closer one, 1 when the second is; output: "disparity" (larger is
    closer) or "metric"/"relative" (depth: smaller is closer). The order needs no alignment: any positive scale
    and shift keeps it. A tie, or a non-finite value at either point, counts as wrong. NaN when there is no pair.
    """
    if output not in ("disparity", "metric", "relative"):
        raise DepthforgeError(f"pair_accuracy: unknown output kind {output!r}; known: disparity, metric, relative")
    pred = as_image(pred, "pred")
    pairs = np.asarray(pairs.detach().cpu() if hasattr(pairs, "detach") else pairs, dtype=np.int64).reshape(-1, 4)
    closer = np.asarray(closer.detach().cpu() if hasattr(closer, "detach") else closer, dtype=np.int64).ravel()
    if len(closer) != len(pairs):
        raise DepthforgeError(f"pair_accuracy: {len(pairs)} pairs but {len(closer)} 'closer' labels")
    if not len(pairs):
        return float("nan")
    h, w = pred.shape
    ys, xs = pairs[:, 0::2], pairs[:, 1::2]
    if (ys < 0).any() or (ys >= h).any() or (xs < 0).any() or (xs >= w).any():
        raise DepthforgeError(f"pair_accuracy: a point lies outside the {w}x{h} prediction (coordinates are pixels "
                              "of the image the prediction must match)")
    a, b = pred[pairs[:, 0], pairs[:, 1]], pred[pairs[:, 2], pairs[:, 3]]
    first_closer = a > b if output == "disparity" else a < b
    second_closer = b > a if output == "disparity" else b < a
    right = np.where(closer == 0, first_closer, second_closer) & np.isfinite(a) & np.isfinite(b)
    return float(np.mean(right))


__all__ = ["METRIC_NAMES", "HIGHER_IS_BETTER", "Protocol", "PROTOCOLS", "get_protocol", "compute_metrics",
           "mean_metrics", "ALIGN_MODES", "default_align", "align", "soft_accuracy", "ordinal_error", "edge_metrics",
           "pair_accuracy"]
