"""Depth maps as pictures: one colour mapping shared by prediction, evaluation, video and the web page.

Near is bright: depth is mapped linearly between ``vmin`` and ``vmax`` (metres) onto the colour map *reversed*,
so with the default ``plasma`` the nearest surfaces are yellow and the farthest dark purple, as in the seed's
renderings. The mapping is linear in depth (not inverse depth), so a colour bar reads in metres.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..errors import DepthforgeError

PERCENTILES = (2.0, 98.0)  # default range: robust to a few stray pixels


@lru_cache(maxsize=16)
def lut(cmap: str = "plasma") -> np.ndarray:
    """A matplotlib colour map as a (256,3) uint8 table, index 0 = the map's first colour."""
    import matplotlib  # imported here: only pictures need it, and it takes a while

    try:
        cm = matplotlib.colormaps[cmap]
    except KeyError:
        raise DepthforgeError(f"unknown colour map {cmap!r} (see matplotlib.colormaps)") from None
    return (cm(np.linspace(0.0, 1.0, 256))[:, :3] * 255 + 0.5).astype(np.uint8)


def depth_range(depth: np.ndarray, percentiles: tuple[float, float] = PERCENTILES) -> tuple[float, float]:
    """(vmin, vmax) in metres: the given percentiles of the valid (finite, > 0) pixels; (0, 1) if none."""
    d = np.asarray(depth, dtype=np.float32)
    valid = d[np.isfinite(d) & (d > 0)]
    if valid.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(valid, percentiles)
    if hi <= lo:
        hi = lo + max(1e-3, abs(lo) * 1e-3)
    return float(lo), float(hi)


def colorize(depth: np.ndarray, vmin: float | None = None, vmax: float | None = None, cmap: str = "plasma",
             invalid_color: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    """Depth (H,W) in metres -> RGB uint8 (H,W,3); near = bright end of ``cmap``, far = dark end.

    Values are clipped to [vmin, vmax]; a missing bound is the 2nd / 98th percentile of the valid pixels.
    Invalid pixels (0, negative or non-finite) get ``invalid_color``.
    """
    d = np.asarray(depth, dtype=np.float32)
    if d.ndim == 3 and d.shape[0] == 1:
        d = d[0]
    if d.ndim != 2:
        raise DepthforgeError(f"colorize: depth must be (H,W), got shape {d.shape}")
    if vmin is None or vmax is None:
        lo, hi = depth_range(d)
        vmin = lo if vmin is None else vmin
        vmax = hi if vmax is None else vmax
    valid = np.isfinite(d) & (d > 0)
    t = (np.where(valid, d, vmax) - vmin) / max(float(vmax) - float(vmin), 1e-6)
    index = np.rint((1.0 - np.clip(t, 0.0, 1.0)) * 255).astype(np.uint8)  # reversed: near -> 255 (bright)
    rgb = lut(cmap)[index]
    rgb[~valid] = invalid_color
    return rgb


def legend(vmin: float, vmax: float, n: int = 9, cmap: str = "plasma") -> list[tuple[float, str]]:
    """``n`` (metres, "#rrggbb") stops from vmin to vmax, matching ``colorize`` (for colour bars in the page)."""
    stops = np.linspace(vmin, vmax, n, dtype=np.float32)
    rgb = colorize(np.maximum(stops, 1e-6)[None], vmin, vmax, cmap)[0]
    return [(float(m), "#%02x%02x%02x" % tuple(int(c) for c in px)) for m, px in zip(stops, rgb)]
