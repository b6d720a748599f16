"""The seed's panel (``predict --gt``) and evaluation's best/worst figure, in the style of ``figure.py``."""
from __future__ import annotations

import numpy as np

from .figure import draw, scene_panels


def panel_figure(pred: np.ndarray, image: np.ndarray, gt: np.ndarray | None = None, name: str = "",
                 label: str = "prediction"):
    """The seed's side-by-side as a Figure: image | prediction | ground truth | relative error, each titled,
    with a depth colour bar in metres (one shared by prediction and ground truth when their ranges agree, else
    one each, said in the titles), AbsRel and δ1 over the valid ground truth. Without ``gt``: image |
    prediction. pred, gt: metres (H,W); image: RGB (H,W,3) at the same size."""
    preds = {label: pred}
    rows = scene_panels(image, gt, preds, name=name or "image")
    title = f"{name}: " if name else ""
    if gt is None:
        title += "predicted depth"
    else:
        shared = rows[0][1].bar is None  # the prediction has no bar of its own
        title += "prediction against ground truth" + (" (one depth scale)" if shared else
                                                      " (each depth on its own scale: their ranges differ)")
    return draw([rows], title)


def panel(pred: np.ndarray, image: np.ndarray, gt: np.ndarray | None = None, name: str = "") -> bytes:
    """``panel_figure`` as PNG bytes."""
    from .plots import figure_png

    return figure_png(panel_figure(pred, image, gt, name))


def best_worst_figure(kept: list[dict], title: str):
    """Evaluation's best and worst images, one row each: image | prediction | ground truth | error, the row
    labelled "best k" / "worst k" with the image's protocol AbsRel and δ1. ``kept``: dicts with "image", "pred",
    "gt", "name", "abs_rel", "d1", "rank" ("best 1", ...) and optional "masks", in row order."""
    scenes = [scene_panels(k["image"], k["gt"], {"prediction": k["pred"]},
                           stats={"prediction": {"abs_rel": k["abs_rel"], "d1": k["d1"]}},
                           masks=k.get("masks"), name=k["name"]) for k in kept]
    return draw(scenes, title, row_labels=[k["rank"] for k in kept])


__all__ = ["panel", "panel_figure", "best_worst_figure"]
