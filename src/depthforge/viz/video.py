"""Video evaluation figures: a strip of frames over time (input, ground truth, each model's depth and error) and
TAE per frame pair over time."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .colors import depth_range
from .figure import pyplot
from .plots import save_png

STRIP_FRAMES = 6  # frames shown, evenly spaced over the clip
MAX_ERROR = 0.5  # the error maps' colour range: |pred − gt| / gt from 0 to 50 %


def spaced(n: int, k: int = STRIP_FRAMES) -> list[int]:
    """``k`` frame numbers evenly spaced over ``n`` frames (all of them when n ≤ k)."""
    return list(range(n)) if n <= k else sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def strip_figure(models: dict[str, list[dict]], path: Path, title: str) -> None:
    """Rows: input, ground truth, then per model its aligned depth and its error |pred − gt| / gt; columns: frames
    over time. ``models``: {label: frames}, frames as {"name", "image" (H,W,3), "gt", "pred" (H,W metres)}, the
    same frames for every model. Depths share one colour range (colour bar in metres). Each row is one image (the
    frames side by side), which keeps the figure quick to draw."""
    plt = pyplot()
    labels = list(models)
    frames = models[labels[0]]
    cols = spaced(len(frames))
    h, w = frames[0]["gt"].shape
    gap = max(2, w // 32)
    everything = [f["gt"].ravel() for f in frames] + [f["pred"].ravel() for fs in models.values() for f in fs]
    lo, hi = depth_range(np.concatenate(everything))

    def row(maps):  # frames side by side, NaN (drawn white) in the gaps
        tiles = [np.concatenate([m, np.full((h, gap) + m.shape[2:], np.nan)], 1) for m in maps]
        return np.concatenate(tiles, 1)[:, :-gap]

    def depth(d):
        return np.where(d > 0, d, np.nan)

    rows = [("input", row([np.clip(frames[t]["image"], 0, 1) for t in cols]), None, None),
            ("ground truth", row([depth(frames[t]["gt"]) for t in cols]), "depth (m)", None)]
    for label in labels:
        fs = models[label]
        errs = [np.where(fs[t]["gt"] > 0, np.abs(fs[t]["pred"] - fs[t]["gt"]) / np.where(fs[t]["gt"] > 0,
                                                                                      fs[t]["gt"], 1), np.nan)
                for t in cols]
        rows.append((f"{label}: depth", row([depth(fs[t]["pred"]) for t in cols]), "depth (m)", None))
        rows.append((f"{label}: error", row(errs), "|pred − gt| / gt", [f"AbsRel {np.nanmean(e):.3f}" for e in errs]))
    fig, axes = plt.subplots(len(rows), 1, figsize=(len(cols) * 1.9 + 1.8, len(rows) * (1.9 * h / w + 0.45)),
                             squeeze=False, layout="constrained")
    centres = [i * (w + gap) + w / 2 for i in range(len(cols))]
    for ax, (name, image, bar, notes) in zip(axes[:, 0], rows):
        if bar is None:
            im = ax.imshow(np.nan_to_num(image, nan=1.0))
        else:
            im = ax.imshow(image, cmap="plasma" if bar.startswith("depth") else "magma",
                           vmin=lo if bar.startswith("depth") else 0, vmax=hi if bar.startswith("depth") else MAX_ERROR)
        cb = fig.colorbar(im, ax=ax, fraction=0.05, pad=0.01, label=bar or "")
        cb.ax.set_visible(bar is not None)  # the input's row keeps the space, so the frames line up
        ax.set_title(name, fontsize=8, loc="left")
        ax.set_yticks([])
        ax.set_xticks(centres, notes or [f"frame {t}" for t in cols], fontsize=7)
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
    fig.suptitle(title, fontsize=9)
    save_png(fig, path, dpi=90)


def tae_figure(series: dict[str, list[float]], path: Path, title: str) -> None:
    """TAE (×100) of each frame pair (t, t+1) over t, one line per entry of ``series`` (a clip or a model), with
    its mean in the legend."""
    plt = pyplot()
    n = len(series)  # a clip set's 20 legend entries need height, and room beside the plot
    fig, ax = plt.subplots(figsize=(7 + 3 * (n > 3), max(3.2, 0.8 + 0.16 * n)), layout="constrained")
    if n > 10:  # the default cycle repeats after 10 colours
        ax.set_prop_cycle(color=plt.get_cmap("tab20")(np.arange(n) % 20))
    for label, values in series.items():
        finite = [v for v in values if not math.isnan(v)]
        mean = f"{np.mean(finite):.2f}" if finite else "—"
        ax.plot(np.arange(len(values)) + 0.5, values, marker=".", label=f"{label} (mean {mean})")
    ax.set_xlabel("frame pair (t, t+1), at t + ½")
    ax.set_ylabel("TAE ×100 (lower is steadier)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    if series:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)  # never over the lines
    ax.set_title(title, fontsize=9)
    save_png(fig, path, dpi=100)


__all__ = ["strip_figure", "tae_figure", "spaced"]
