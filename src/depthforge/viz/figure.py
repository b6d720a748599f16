"""The one figure style of every depth picture (the seed's panel, evaluation's best/worst, comparison grids).

A figure is a column of scenes; a scene is one or more rows of panels:
- ``image``: the photo, titled;
- ``depth``: metres on the reversed ``plasma`` map (near = bright, as ``colors.colorize``), with a colour bar in
  metres beside it — one bar for the panels that share a range, said in the bar's label;
- ``error``: the signed relative error (pred − gt) / gt on a diverging map (blue: too near, red: too far, white:
  right), a different map from depth's, with its own bar;
- masks drawn over depth and error panels: invalid pixels (no ground truth) shaded grey, glass outlined,
  occlusion edges marked, each named in the figure's legend.
Text sizes are chosen for the figure's pixel width, which stays within the width a report page shows
(``MAX_WIDTH_IN`` at ``DPI``), so nothing is shrunk by the browser.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .colors import depth_range

DPI = 100
MAX_WIDTH_IN = 13.4  # 1340 px: within the report page's content width (evaluation/html.py), so text keeps its size
FONT = 10  # points: ~14 px at DPI
DEPTH_MAP = "plasma_r"  # reversed: near = bright, the same mapping as colors.colorize
ERROR_MAP = "RdBu_r"
ERROR_LIMIT = 0.5  # error bars span ±50 % relative error
INVALID = "#9a9a9a"
MASK_STYLE = {  # name -> (colour, how, legend text)
    "glass": ("#00e5ff", "outline", "glass (outlined)"),
    "transparent": ("#00e5ff", "outline", "transparent surface (outlined)"),
    "edges": ("#00c000", "marks", "occlusion edges (green)"),
}
WIDE = 0.5  # height / width under which a scene's single row is split in two
SHARED_OVERLAP = 0.5  # two depth ranges overlapping less than this (of their union) get a scale each


@dataclass
class Panel:
    """One panel: ``kind`` "image" (RGB in [0,1] or uint8), "depth" (metres), "error" (relative error, signed),
    "note" (``data`` is text) or "empty"; ``vrange`` the depth range (metres); ``bar``: a colour bar with this
    label right of the panel; ``masks``: {name of MASK_STYLE: bool (H,W)}."""
    kind: str
    data: object = None
    title: str = ""
    vrange: tuple[float, float] | None = None
    bar: str | None = None
    masks: dict = field(default_factory=dict)


def scores(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """{"abs_rel", "d1"} of ``pred`` against ``gt`` (metres) on the pixels valid in both; NaN without any."""
    pred, gt = np.asarray(pred, np.float32), np.asarray(gt, np.float32)
    ok = np.isfinite(gt) & (gt > 0) & np.isfinite(pred) & (pred > 0)
    if not ok.any():
        return {"abs_rel": float("nan"), "d1": float("nan")}
    p, g = pred[ok], gt[ok]
    return {"abs_rel": float(np.mean(np.abs(p - g) / g)), "d1": float(np.mean(np.maximum(p / g, g / p) < 1.25))}


def score_line(abs_rel: float, d1: float) -> str:
    return f"AbsRel {abs_rel:.3f} · δ1 {d1:.2f}"


def relative_error(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(pred − gt) / gt where ``gt`` is valid, NaN elsewhere."""
    gt = np.asarray(gt, np.float32)
    valid = np.isfinite(gt) & (gt > 0)
    return np.where(valid, (np.asarray(pred, np.float32) - gt) / np.where(valid, gt, 1), np.nan)


def choose_scales(pred: np.ndarray, gt: np.ndarray) -> tuple[tuple[float, float], tuple[float, float], bool]:
    """(prediction's range, ground truth's range, shared): one range from both when their own ranges overlap
    by at least ``SHARED_OVERLAP`` of their union, else each its own — a prediction in another range than the
    ground truth (an untrained model, a relative one) would otherwise be one flat colour."""
    p, g = depth_range(pred), depth_range(gt)
    union = max(p[1], g[1]) - min(p[0], g[0])
    overlap = (min(p[1], g[1]) - max(p[0], g[0])) / union if union > 0 else 1.0
    if overlap >= SHARED_OVERLAP:
        both = depth_range(np.concatenate([np.ravel(pred), np.ravel(gt)]))
        return both, both, True
    return p, g, False


def pyplot():
    """matplotlib's pyplot on the Agg back end: figures are files, never windows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def range_text(vrange: tuple[float, float]) -> str:
    return f"{vrange[0]:.2f}–{vrange[1]:.2f} m"


def _draw(ax, panel: Panel, fontsize: float):
    """Draw ``panel`` on ``ax``; returns the mappable a colour bar reads (None for image/note)."""
    import matplotlib

    ax.set_xticks([])
    ax.set_yticks([])
    if panel.title:
        ax.set_title(panel.title, fontsize=fontsize)
    if panel.kind in ("empty", "note"):
        ax.axis("off")
        if panel.kind == "note":
            ax.text(0.5, 0.5, str(panel.data), ha="center", va="center", fontsize=fontsize, wrap=True,
                    transform=ax.transAxes)
        return None
    if panel.kind == "image":
        ax.imshow(np.asarray(panel.data))
        return None
    data = np.asarray(panel.data, np.float32)
    if panel.kind == "depth":
        shown = np.ma.masked_where(~(np.isfinite(data) & (data > 0)), data)
        lo, hi = panel.vrange or depth_range(data)
        cmap, norm = DEPTH_MAP, matplotlib.colors.Normalize(lo, hi)
    else:
        shown = np.ma.masked_invalid(data)
        cmap, norm = ERROR_MAP, matplotlib.colors.Normalize(-ERROR_LIMIT, ERROR_LIMIT)
    im = ax.imshow(shown, cmap=matplotlib.colormaps[cmap].with_extremes(bad=INVALID), norm=norm,
                   interpolation="nearest")
    for name, mask in panel.masks.items():
        if mask is None or name not in MASK_STYLE or not np.any(mask):
            continue
        colour, how, _ = MASK_STYLE[name]
        if how == "outline":
            ax.contour(np.asarray(mask, np.float32), levels=[0.5], colors=[colour], linewidths=1.4)
        else:
            ys, xs = np.nonzero(mask)
            ax.scatter(xs, ys, s=0.3, c=colour, marker=",", linewidths=0)
    return im


def draw(scenes: list[list[list[Panel]]], title: str = "", row_labels: list[str] | None = None):
    """A matplotlib Figure of ``scenes`` (each a list of rows of panels, one scene under the other).

    Within a scene the rows line up column by column; a panel with a ``bar`` gets a colour bar to its right
    (depth: metres; error: relative error). ``row_labels``: one per scene, printed left of it (e.g. "best 1").
    The legend names the shading and outlines that appear."""
    import matplotlib.ticker

    plt = pyplot()
    ncols = max(len(row) for scene in scenes for row in scene)
    bars = [any(j < len(row) and row[j].bar for scene in scenes for row in scene) for j in range(ncols)]
    # a colour bar is 0.07 of a panel wide plus ~0.85 in of ticks and label; a row label ~0.3 in
    margin = 0.85 * sum(bars) + (0.3 if row_labels else 0) + 0.2
    units = ncols + 0.07 * sum(bars)
    aspect = min((_aspect(p) for scene in scenes for row in scene for p in row if _aspect(p)), default=0.75)
    tile = min(max(2.9, 2.2 / aspect), (MAX_WIDTH_IN - margin) / units)  # wide frames may be wider
    fontsize = FONT if tile >= 1.9 else FONT - 1
    heights = []
    for scene in scenes:
        h = 0.0
        for row in scene:
            aspects = [_aspect(p) for p in row if _aspect(p)]
            lines = max((p.title.count("\n") + 1 for p in row if p.title), default=0)
            h += tile * max(aspects, default=0.75) + lines * fontsize * 1.45 / 72 + 0.1
        heights.append(h)
    legend = _legend_entries(scenes)
    fig = plt.figure(figsize=(units * tile + margin, sum(heights)),
                     dpi=DPI, layout="constrained")
    pairs = []  # (panel axes, its colour bar's axes)
    subs = fig.subfigures(len(scenes), 1, height_ratios=heights, squeeze=False)[:, 0] if len(scenes) > 1 else [fig]
    ratios = [r for j in range(ncols) for r in ([1.0, 0.07] if bars[j] else [1.0])]
    for k, (sub, scene) in enumerate(zip(subs, scenes)):
        grid = sub.add_gridspec(len(scene), len(ratios), width_ratios=ratios)
        for i, row in enumerate(scene):
            col = 0
            for j in range(ncols):
                panel = row[j] if j < len(row) else Panel("empty")
                ax = sub.add_subplot(grid[i, col])
                mappable = _draw(ax, panel, fontsize)
                if j == 0 and row_labels and i == 0:
                    ax.set_ylabel(row_labels[k], fontsize=fontsize + 1, fontweight="bold")
                col += 1
                if bars[j]:
                    cax = sub.add_subplot(grid[i, col])
                    if panel.bar and mappable is not None:
                        bar = sub.colorbar(mappable, cax=cax, extend="both" if panel.kind == "error" else "neither")
                        bar.set_label(panel.bar, fontsize=fontsize - 1)
                        pairs.append((ax, cax))
                        bar.ax.tick_params(labelsize=fontsize - 1)
                        if panel.kind == "error":
                            bar.ax.yaxis.set_major_formatter(
                                matplotlib.ticker.PercentFormatter(xmax=1.0, decimals=0))
                    else:
                        cax.axis("off")
                    col += 1
    _fit_bars(fig, pairs)
    # title and legend go above and below everything drawn, placed after the layout is frozen (constrained
    # layout does not reserve room for them over subfigures); the saved PNG is cropped to what is drawn
    renderer = fig.canvas.get_renderer()
    boxes = [ax.get_tightbbox(renderer) for ax in fig.get_axes() if ax.get_visible()]
    height = fig.bbox.height
    if title:
        fig.text(0.5, max(b.y1 for b in boxes) / height + 0.004, title, ha="center", va="bottom",
                 fontsize=fontsize + 1)
    if legend:
        fig.legend(handles=legend, loc="upper center", ncols=len(legend), fontsize=fontsize - 1, frameon=False,
                   bbox_to_anchor=(0.5, min(b.y0 for b in boxes) / height - 0.004))
    return fig


def _aspect(panel: Panel) -> float | None:
    """Height / width of a picture panel; None for notes and empty cells."""
    if panel.kind not in ("image", "depth", "error"):
        return None
    h, w = np.shape(panel.data)[:2]
    return h / w


def _fit_bars(fig, pairs: list) -> None:
    """Lay the figure out once, then freeze it with each colour bar as tall as its panel's picture: a wide image
    (KITTI's 1242×375) is shorter than its grid cell, and a bar filling the cell would outgrow it."""
    fig.canvas.draw()
    fig.set_layout_engine("none")
    for ax, cax in pairs:
        a, c = ax.get_position(), cax.get_position()
        cax.set_position([c.x0, a.y0, c.width, a.height])


def _has_invalid(panel: Panel) -> bool:
    if panel.kind not in ("depth", "error"):
        return False
    d = np.asarray(panel.data, np.float32)
    return not np.all(np.isfinite(d) & (d > 0)) if panel.kind == "depth" else not np.all(np.isfinite(d))


def _legend_entries(scenes: list[list[list[Panel]]]) -> list:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    panels = [p for scene in scenes for row in scene for p in row]
    out = []
    if any(_has_invalid(p) for p in panels):
        out.append(Patch(facecolor=INVALID, label="grey: no valid depth (invalid or no ground truth)"))
    for name, (colour, how, text) in MASK_STYLE.items():
        if any(np.any(p.masks.get(name)) for p in panels if p.masks.get(name) is not None):
            out.append(Line2D([], [], color=colour, lw=2, label=text) if how == "outline"
                       else Line2D([], [], color=colour, marker="s", ls="", label=text))
    return out


def depth_bar(shared: bool = False) -> str:
    """A depth bar's label: metres, and whether panels to its left share it (their titles say which)."""
    return "depth (m), shared" if shared else "depth (m)"


ERROR_BAR = "(pred − gt) / gt\nred: too far · blue: too near"


def scene_panels(image: np.ndarray, gt: np.ndarray | None, preds: dict[str, np.ndarray],
                 stats: dict[str, dict] | None = None, masks: dict | None = None, name: str = "",
                 shared: bool | None = None) -> list[list[Panel]]:
    """The rows of one scene: image | ground truth | each prediction, and each prediction's error map.

    One model: a single row image | prediction | ground truth | error; several: the error maps in a second row
    under their predictions. ``stats``: {label: {"abs_rel", "d1"}} to print (default: ``scores`` on all valid
    pixels); ``masks``: {name: bool (H,W)} drawn over depth and error panels. ``shared``: one depth range for
    ground truth and every prediction (None: shared for several models, ``choose_scales`` for one; several models
    always share one)."""
    masks = {k: v for k, v in (masks or {}).items() if k in MASK_STYLE and v is not None}
    stats = dict(stats or {})
    labels = list(preds)
    if gt is not None:
        for label in labels:
            stats.setdefault(label, scores(preds[label], gt))
    photo = Panel("image", image, name or "image")
    if len(labels) == 1:
        label = labels[0]
        pred = preds[label]
        if gt is None:
            return [[photo, Panel("depth", pred, label, depth_range(pred), depth_bar())]]
        p_range, g_range, same = choose_scales(pred, gt) if shared is None else \
            (depth_range(np.concatenate([np.ravel(pred), np.ravel(gt)])),) * 2 + (True,)
        s = stats[label]
        p_title = f"{label} ({range_text(p_range)})\n{score_line(s['abs_rel'], s['d1'])}" if not same else \
            f"{label}\n{score_line(s['abs_rel'], s['d1'])}"
        g_title = "ground truth" + (" (scale shared)" if same else f" ({range_text(g_range)})")
        row = [photo, Panel("depth", pred, p_title, p_range, None if same else depth_bar(), masks),
               Panel("depth", gt, g_title, g_range, depth_bar(same), masks),
               Panel("error", relative_error(pred, gt), "relative error", bar=ERROR_BAR, masks=masks)]
        # a wide frame (KITTI's 1242x375) in one row of four would be a strip: two rows of two
        return [row[:2], row[2:]] if gt.shape[0] < WIDE * gt.shape[1] else [row]
    vrange = depth_range(np.concatenate([np.ravel(d) for d in ([gt] if gt is not None else []) +
                                         [preds[k] for k in labels]]))
    top = [photo]
    if gt is not None:
        top.append(Panel("depth", gt, "ground truth\n(one scale for the row)", vrange, masks=masks))
    for label in labels:
        t = label if gt is None else f"{label}\n{score_line(stats[label]['abs_rel'], stats[label]['d1'])}"
        top.append(Panel("depth", preds[label], t, vrange, masks=masks))
    top[-1].bar = depth_bar(True)
    if gt is None:
        return [top]
    bottom = [Panel("note", "error maps:\n(pred − gt) / gt\nper pixel"), Panel("empty")]
    bottom += [Panel("error", relative_error(preds[k], gt), f"error of {k}", masks=masks) for k in labels]
    bottom[-1].bar = ERROR_BAR
    return [top, bottom]


__all__ = ["Panel", "draw", "scene_panels", "scores", "score_line", "relative_error", "choose_scales",
           "range_text", "depth_bar", "ERROR_BAR"]
