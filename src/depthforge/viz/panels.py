"""The seed's panel (prediction | ground truth | image) and grids of panels."""
from __future__ import annotations


import numpy as np

from .colors import colorize, depth_range
from ..encode import to_uint8

def _shared_range(*depths: np.ndarray | None) -> tuple[float, float]:
    """``colors.depth_range`` of the valid pixels of all ``depths`` together (None skipped)."""
    return depth_range(np.concatenate([np.asarray(d, np.float32).ravel() for d in depths if d is not None] or [[]]))


def panel(pred: np.ndarray, image: np.ndarray, gt: np.ndarray | None = None) -> np.ndarray:
    """The seed's side-by-side: prediction | ground truth | image (ground truth left out when absent).

    pred, gt: metres (H,W); image: RGB (H,W,3) in [0,1] at the same size. Both depths share one colour range.
    Returns uint8 (H, k*W, 3).
    """
    vmin, vmax = _shared_range(pred, gt)
    tiles = [colorize(pred, vmin, vmax)]
    if gt is not None:
        tiles.append(colorize(gt, vmin, vmax))
    tiles.append(to_uint8(image))
    return np.concatenate(tiles, axis=1)


def grid(rows: list[np.ndarray], gap: int = 4) -> np.ndarray:
    """Stack equally wide uint8 RGB rows vertically with a white gap."""
    width = max(r.shape[1] for r in rows)
    out = []
    for r in rows:
        if r.shape[1] < width:
            r = np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255)
        out += [r, np.full((gap, width, 3), 255, np.uint8)]
    return np.concatenate(out[:-1], axis=0)


__all__ = ["panel", "grid"]
