"""The comparison's figures (``evaluation.compare`` writes them): the same scenes for every model, accuracy
against latency, bars per test set, errors by distance."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np

from .figure import FONT, MAX_WIDTH_IN, draw, scene_panels
from .figure import pyplot
from .plots import save_png

Better = Callable[[str], bool]  # column -> True where higher is better
# The bars of suites.png: one panel per column, a group of bars (one per model) per test set.
BAR_COLUMNS = ["d1", "abs_rel", "whdr", "dbe_comp", "glass/abs_rel", "through/abs_rel"]


def _wrap(label: str, width: int = 26) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(label, width)) or label


def scenes_figure(shots: list[dict], labels: list[str], path: Path, title: str) -> None:
    """Per scene two rows (``figure.scene_panels``): image | ground truth | each prediction, titled with its AbsRel
    and δ1, on one depth scale with a bar in metres; then each prediction's signed relative error map with its
    own bar; glass outlined. ``shots``: {"name", "image", "gt", "pred": {label: depth}, optional "stats"
    {label: {"abs_rel", "d1"}} and "masks"}."""
    scenes = [scene_panels(s["image"], s["gt"], {k: s["pred"][k] for k in labels}, stats=s.get("stats"),
                           masks=s.get("masks"), name=_wrap(s["name"]), shared=True) for s in shots]
    save_png(draw(scenes, title), path)


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
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", fontsize=FONT, ncols=2)
    fig.suptitle(f"accuracy against latency on {main}", fontsize=FONT + 1)
    save_png(fig, path)


def bars_figure(report: dict, path: Path, higher_is_better: Better) -> bool:
    """One panel per column of ``BAR_COLUMNS`` present, a group of bars per test set that has it, one bar per
    model (``report``: ``compare.compare``'s). Panels wrap onto rows so that the figure stays within the page's
    width (``figure.MAX_WIDTH_IN``) and its text is never shrunk."""
    plt = pyplot()
    labels = [e["label"] for e in report["models"]]

    def has(s: str, c: str) -> bool:
        return not math.isnan(report["sets"][s]["models"][labels[0]].get(c, math.nan))

    panels = [(c, [s for s in report["sets"] if has(s, c)]) for c in BAR_COLUMNS]
    panels = [(c, sets) for c, sets in panels if sets]
    if not panels:
        return False
    per_row = max(1, min(len(panels), int(MAX_WIDTH_IN // max(1.1 * len(sets) + 1.4 for _, sets in panels))))
    nrows = math.ceil(len(panels) / per_row)
    fig, axes = plt.subplots(nrows, per_row, figsize=(MAX_WIDTH_IN, 3.4 * nrows + 0.3 * len(labels)),
                             squeeze=False, layout="constrained")
    width = 0.8 / len(labels)
    for ax, (c, sets) in zip(axes.flat, panels):
        for j, label in enumerate(labels):
            values = [report["sets"][s]["models"][label].get(c, math.nan) for s in sets]
            ax.bar(np.arange(len(sets)) + (j - (len(labels) - 1) / 2) * width, values, width, label=label)
        ax.set_xticks(np.arange(len(sets)), [_wrap(s, 12) for s in sets], fontsize=FONT)
        ax.tick_params(axis="y", labelsize=FONT - 1)
        ax.set_title(f"{c}\n({'higher' if higher_is_better(c) else 'lower'} is better)", fontsize=FONT)
        ax.grid(alpha=0.3, axis="y")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="outside lower center", fontsize=FONT,
               ncols=min(3, len(labels)))
    fig.suptitle("failure-mode metrics per test set, one bar per model", fontsize=FONT + 1)
    save_png(fig, path)
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
        ax.set_title(f"{c} by distance (lower is better)", fontsize=FONT + 1)
        ax.grid(alpha=0.3)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", fontsize=FONT, ncols=2)
    save_png(fig, path)
