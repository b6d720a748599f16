"""Pictures people look at: the seed's panel (prediction | ground truth | image), best/worst grids, curves."""
from __future__ import annotations

import csv
import io
import logging
import math
from pathlib import Path

import numpy as np

from .colors import colorize, depth_range
from .data.io import to_uint8, write_bytes, write_image

log = logging.getLogger(__name__)


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


def plot_curves(metrics_csvs: list[Path], out: Path) -> Path | None:
    """Training and validation curves from Lightning's CSV logs (one per start of a resumed run) -> PNG.
    Returns None when there is nothing to plot."""
    series: dict[str, list[tuple[int, float]]] = {}
    for metrics_csv in metrics_csvs:
        with open(metrics_csv, newline="") as f:
            for row in csv.DictReader(f):
                step = int(float(row.get("step") or 0))
                for key, value in row.items():
                    if key not in ("step", "epoch") and value not in (None, ""):
                        series.setdefault(key, []).append((step, float(value)))
    if not series:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted(series)
    cols = min(3, len(keys))
    rows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        steps, values = zip(*sorted(series[key]))
        ax.plot(steps, values, marker="o" if len(steps) < 30 else None, ms=3)
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    write_bytes(out, buf.getvalue())
    return out


__all__ = ["panel", "grid", "plot_curves", "colorize", "write_image"]
