"""Video evaluation figures: a strip of frames over time (input, ground truth, each model's depth and error) and
TAE per frame pair over time."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .colors import depth_range
from .plots import pyplot, save_png

STRIP_FRAMES = 6  # frames shown, evenly spaced over the clip
MAX_ERROR = 0.5  # the error maps' colour range: |pred − gt| / gt from 0 to 50 %


def spaced(n: int, k: int = STRIP_FRAMES) -> list[int]:
    """``k`` frame numbers evenly spaced over ``n`` frames (all of them when n ≤ k)."""
    return list(range(n)) if n <= k else sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def strip_figure(models: dict[str, list[dict]], path: Path, title: str) -> None:
    """Rows: input, ground truth, then per model its aligned depth and its error |pred − gt| / gt; columns: frames
    over time. ``models``: {label: frames}, frames as {"name", "image" (H,W,3), "gt", "pred" (H,W metres)}, the
    same frames for every model. Depths share one colour range (colour bar in metres)."""
    plt = pyplot()
    labels = list(models)
    frames = models[labels[0]]
    cols = spaced(len(frames))
    h, w = frames[0]["gt"].shape
    rows = 2 + 2 * len(labels)
    fig, axes = plt.subplots(rows, len(cols), figsize=(len(cols) * 2.0 + 1.6, rows * (2.0 * h / w + 0.35)),
                             squeeze=False, layout="constrained")
    everything = [f["gt"].ravel() for f in frames] + [f["pred"].ravel() for fs in models.values() for f in fs]
    lo, hi = depth_range(np.concatenate(everything))
    for j, t in enumerate(cols):
        gt = frames[t]["gt"]
        axes[0, j].imshow(np.clip(frames[t]["image"], 0, 1))
        axes[0, j].set_title(f"frame {t}", fontsize=8)
        depth_im = axes[1, j].imshow(np.where(gt > 0, gt, np.nan), cmap="plasma", vmin=lo, vmax=hi)
        for m, label in enumerate(labels):
            pred = models[label][t]["pred"]
            axes[2 + 2 * m, j].imshow(np.where(pred > 0, pred, np.nan), cmap="plasma", vmin=lo, vmax=hi)
            err = np.where(gt > 0, np.abs(pred - gt) / np.where(gt > 0, gt, 1), np.nan)
            err_im = axes[3 + 2 * m, j].imshow(err, cmap="magma", vmin=0, vmax=MAX_ERROR)
            axes[3 + 2 * m, j].set_title(f"AbsRel {np.nanmean(err):.3f}", fontsize=7)
    names = ["input", "ground truth"] + [f"{label}\n{kind}" for label in labels for kind in ("depth", "error")]
    for i, name in enumerate(names):
        axes[i, 0].set_ylabel(name, fontsize=7)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    for r in range(1, rows):  # a colour bar beside every row: depth rows in metres, error rows in ratio
        depth_row = r == 1 or r % 2 == 0
        fig.colorbar(depth_im if depth_row else err_im, ax=axes[r, -1], fraction=0.08, pad=0.02,
                     label="depth (m)" if depth_row else "|pred − gt| / gt")
    fig.suptitle(title, fontsize=9)
    save_png(fig, path, dpi=90)


def tae_figure(series: dict[str, list[float]], path: Path, title: str) -> None:
    """TAE (×100) of each frame pair (t, t+1) over t, one line per entry of ``series`` (a clip or a model), with
    its mean in the legend."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.2), layout="constrained")
    for label, values in series.items():
        finite = [v for v in values if not math.isnan(v)]
        mean = f"{np.mean(finite):.2f}" if finite else "—"
        ax.plot(np.arange(len(values)) + 0.5, values, marker=".", label=f"{label} (mean {mean})")
    ax.set_xlabel("frame pair (t, t+1), at t + ½")
    ax.set_ylabel("TAE ×100 (lower is steadier)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    if series:
        ax.legend(fontsize=7, loc="best")
    ax.set_title(title, fontsize=9)
    save_png(fig, path, dpi=100)


__all__ = ["strip_figure", "tae_figure", "spaced"]
