"""The comparison's figures (``evaluation.compare`` writes them): the same scenes for every model, accuracy
against latency, bars per test set, errors by distance."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np

from .colors import colorize, depth_range
from .plots import pyplot, save_png

Better = Callable[[str], bool]  # column -> True where higher is better
# The bars of suites.png: one panel per column, a group of bars (one per model) per test set.
BAR_COLUMNS = ["d1", "abs_rel", "whdr", "dbe_comp", "glass/abs_rel", "through/abs_rel"]


def _wrap(label: str, width: int = 26) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(label, width)) or label


def scenes_figure(shots: list[dict], labels: list[str], path: Path, title: str) -> None:
    """Per scene two rows: image | ground truth | each prediction, then each prediction's error map
    (|pred − gt| / gt on valid pixels, 0..50%). Depths share one colour range per scene."""
    plt = pyplot()
    cols = 2 + len(labels)
    h, w = shots[0]["gt"].shape
    fig, axes = plt.subplots(2 * len(shots), cols, figsize=(cols * 2.3 + 1, 2 * len(shots) * (2.3 * h / w + 0.5)),
                             squeeze=False, layout="constrained")
    for i, shot in enumerate(shots):
        gt = shot["gt"]
        lo, hi = depth_range(np.concatenate([gt.ravel()] + [shot["pred"][k].ravel() for k in labels]))
        top, bottom = axes[2 * i], axes[2 * i + 1]
        top[0].imshow(shot["image"])
        top[0].set_title(shot["name"], fontsize=7)
        top[1].imshow(colorize(gt, lo, hi))
        top[1].set_title("ground truth", fontsize=8)
        for j, label in enumerate(labels):
            pred = shot["pred"][label]
            top[2 + j].imshow(colorize(pred, lo, hi))
            top[2 + j].set_title(_wrap(label), fontsize=7)
            err = np.where(gt > 0, np.abs(pred - gt) / np.where(gt > 0, gt, 1), np.nan)
            im = bottom[2 + j].imshow(err, cmap="magma", vmin=0, vmax=0.5)
            bottom[2 + j].set_title(f"error, AbsRel {np.nanmean(err):.3f}", fontsize=7)
        bottom[1].text(0.5, 0.5, "error maps:\n|pred − gt| / gt\n(0 … 50%)", ha="center", va="center", fontsize=8)
        for ax in list(top) + list(bottom):
            ax.set_xticks([])
            ax.set_yticks([])
        bottom[0].axis("off")
        bottom[1].axis("off")
    fig.colorbar(im, ax=axes[:, -1].tolist(), shrink=0.6, label="relative error |pred − gt| / gt")
    fig.suptitle(title, fontsize=9)
    save_png(fig, path, dpi=90)


def scatter_figure(rows: list[tuple[str, dict]], main: str, path: Path, higher_is_better: Better) -> None:
    """Accuracy (d1, AbsRel on the main test set ``main``) against latency (ms per image), one point per model;
    ``rows``: (label, {column: value}) per model."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6 + 0.25 * len(rows)), layout="constrained")
    for ax, metric in zip(axes, ("d1", "abs_rel")):
        for label, m in rows:
            ax.scatter(m["latency_ms"], m[metric], s=50, label=label)
        ax.set_xlabel("latency (ms per image, this CPU)")
        ax.set_ylabel(f"{metric} ({'higher' if higher_is_better(metric) else 'lower'} is better)")
        ax.grid(alpha=0.3)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", fontsize=8, ncols=2)
    fig.suptitle(f"accuracy against latency on {main}", fontsize=9)
    save_png(fig, path, dpi=90)


def bars_figure(report: dict, path: Path, higher_is_better: Better) -> bool:
    """One panel per column of ``BAR_COLUMNS`` present, a group of bars per test set that has it, one bar per
    model (``report``: ``compare.compare``'s)."""
    plt = pyplot()
    labels = [e["label"] for e in report["models"]]

    def has(s: str, c: str) -> bool:
        return not math.isnan(report["sets"][s]["models"][labels[0]].get(c, math.nan))

    panels = [(c, [s for s in report["sets"] if has(s, c)]) for c in BAR_COLUMNS]
    panels = [(c, sets) for c, sets in panels if sets]
    if not panels:
        return False
    fig, axes = plt.subplots(1, len(panels), figsize=(2 + sum(0.9 * len(sets) + 0.6 for _, sets in panels),
                                                      3.6 + 0.25 * len(labels)), squeeze=False, layout="constrained",
                             width_ratios=[len(sets) + 0.6 for _, sets in panels])
    width = 0.8 / len(labels)
    for ax, (c, sets) in zip(axes[0], panels):
        for j, label in enumerate(labels):
            values = [report["sets"][s]["models"][label].get(c, math.nan) for s in sets]
            ax.bar(np.arange(len(sets)) + (j - (len(labels) - 1) / 2) * width, values, width, label=label)
        ax.set_xticks(np.arange(len(sets)), sets, fontsize=8)
        ax.set_title(f"{c}\n({'higher' if higher_is_better(c) else 'lower'} is better)", fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="outside lower center", fontsize=8, ncols=2)
    save_png(fig, path, dpi=90)
    return True


def distance_figure(report: dict, path: Path) -> None:
    """AbsRel and RMSE of each model in 1-m bands of ground-truth depth (iBims-1's distance-related errors) on the
    main test set of ``report`` (``compare.compare``'s): where in the room each model goes wrong."""
    plt = pyplot()
    bands = report["sets"][report["main"]]["by_distance"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    for label, b in bands.items():
        x = [lo + 0.5 for (lo, _), n in zip(b["band_m"], b["images"]) if n]
        for ax, c in zip(axes, ("abs_rel", "rmse")):
            ax.plot(x, [v for v, n in zip(b[c], b["images"]) if n], marker="o", ms=3, label=label)
    for ax, c in zip(axes, ("AbsRel", "RMSE (m)")):
        ax.set_xlabel("ground-truth depth (m), 1-m bands")
        ax.set_title(f"{c} by distance (lower is better)", fontsize=9)
        ax.grid(alpha=0.3)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", fontsize=8, ncols=2)
    save_png(fig, path, dpi=90)
