"""Plots: training curves, and the one way a figure becomes a PNG file (``pyplot``, ``save_png``)."""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from ..files import write_bytes
from .figure import FONT, MAX_WIDTH_IN, pyplot


def figure_png(fig, dpi: int = 100) -> bytes:
    """``fig`` as PNG bytes, at ``dpi`` (the figure style's sizes assume 100), then closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.08)  # no empty margins
    pyplot().close(fig)
    return buf.getvalue()


def save_png(fig, path: Path, dpi: int = 100) -> None:
    """Write ``fig`` to ``path`` as PNG, atomically, and close it."""
    write_bytes(path, figure_png(fig, dpi))


def plot_curves(metrics_csvs: list[Path], out: Path) -> Path | None:
    """Training and validation curves from Lightning's CSV logs (one per start of a resumed run) -> PNG.
    Returns None when there is nothing to plot."""
    series: dict[str, list[tuple[int, float]]] = {}
    for metrics_csv in metrics_csvs:
        with open(metrics_csv, newline="") as f:
            for row in csv.DictReader(f):
                step = int(float(row.get("step") or 0))
                for key, value in row.items():
                    # "val/images" counts what was validated: not a curve
                    if key not in ("step", "epoch") and not key.endswith("/images") and value not in (None, ""):
                        series.setdefault(key, []).append((step, float(value)))
    if not series:
        return None
    from matplotlib.ticker import MaxNLocator

    plt = pyplot()
    keys = sorted(series)
    cols = min(3, len(keys))
    rows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(min(MAX_WIDTH_IN, 4.4 * cols), 3.2 * rows), squeeze=False,
                             layout="constrained")
    for ax, key in zip(axes.flat, keys):
        steps, values = zip(*sorted(series[key]))
        ax.plot(steps, values, marker="o" if len(steps) < 30 else None, ms=3)
        ax.set_title(key, fontsize=FONT)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("optimiser step", fontsize=FONT - 1)
        ax.set_ylabel(key, fontsize=FONT - 1)
        ax.tick_params(labelsize=FONT - 1)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.suptitle(f"training curves of {Path(out).resolve().parent.name} (train: per logged step, val: per "
                 "validation)", fontsize=FONT + 1)
    save_png(fig, out)
    return out
