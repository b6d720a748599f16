"""The benchmark's picture of a (model, set) pair: its worst images, each as image | ground truth | prediction
(one colour range, a colour bar in metres) | relative error."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .colors import depth_range, lut
from .figure import pyplot
from .plots import save_png


def worst_figure(shots: list[dict], title: str, path: Path) -> None:
    """One row per shot {"name", "score" (a caption such as "AbsRel 0.412"), "image" (H,W,3) in [0,1],
    "pred" (H,W) metres, "gt" (H,W) metres with 0 where invalid, or None (a set scored by depth order)}."""
    plt = pyplot()
    from matplotlib.colors import ListedColormap

    near_bright = ListedColormap(lut("plasma")[::-1] / 255.0)  # as ``colors.colorize``: near is bright
    cols = 4 if any(s["gt"] is not None for s in shots) else 2
    h, w = shots[0]["pred"].shape
    fig, axes = plt.subplots(len(shots), cols, figsize=(cols * 3.0 + 1.2, len(shots) * (3.0 * h / w + 0.6)),
                             squeeze=False, layout="constrained")
    for row, shot in zip(axes, shots):
        gt, pred = shot["gt"], shot["pred"]
        lo, hi = depth_range(pred if gt is None else np.concatenate([gt.ravel(), pred.ravel()]))
        row[0].imshow(shot["image"])
        row[0].set_title(f"{shot['name']}\n{shot['score']}", fontsize=8)
        im = row[-1 if gt is None else 2].imshow(np.where(pred > 0, pred, np.nan), cmap=near_bright, vmin=lo,
                                                 vmax=hi)
        row[-1 if gt is None else 2].set_title("prediction (aligned)", fontsize=8)
        if gt is not None:
            row[1].imshow(np.where(gt > 0, gt, np.nan), cmap=near_bright, vmin=lo, vmax=hi)
            row[1].set_title("ground truth", fontsize=8)
            err = np.where(gt > 0, np.abs(pred - gt) / np.where(gt > 0, gt, 1), np.nan)
            e = row[3].imshow(err, cmap="magma", vmin=0, vmax=0.5)
            row[3].set_title("|pred − gt| / gt", fontsize=8)
            fig.colorbar(e, ax=row[3], shrink=0.8, label="relative error")
        fig.colorbar(im, ax=list(row[1:3]) if gt is not None else row[-1], shrink=0.8, label="depth (m)")
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(title, fontsize=9)
    save_png(fig, path, dpi=80)


__all__ = ["worst_figure"]
