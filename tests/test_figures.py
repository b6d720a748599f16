"""Every figure type, checked as a person would check it: titled panels, a depth colour bar in metres (shared where
panels compare, said so), a different colour map for errors with its own bar, AbsRel/δ1 per panel, masks named in
the legend, text big enough and pictures no wider than the report page shows them."""
from __future__ import annotations

import csv

import matplotlib
import numpy as np

from depthforge.evaluation.html import CONTENT_PX, STYLE
from depthforge.viz.figure import DEPTH_MAP, DPI, ERROR_MAP
from depthforge.viz.panels import best_worst_figure, panel, panel_figure

matplotlib.use("Agg")
rng = np.random.default_rng(0)
H, W = 24, 32
IMAGE = rng.uniform(0, 1, (H, W, 3)).astype(np.float32)
GT = np.tile(np.linspace(1.0, 9.0, W, dtype=np.float32), (H, 1))
GT[:3] = 0  # an invalid band (NYU's border)


def titles(fig) -> list[str]:
    return [ax.get_title() for ax in fig.get_axes()]


def depth_bars(fig) -> list:
    """Colour-bar axes labelled in metres."""
    return [ax for ax in fig.get_axes() if ax.get_ylabel().startswith("depth (m)")]


def texts(fig) -> list:
    return [t for t in fig.findobj(matplotlib.text.Text) if t.get_text().strip() and t.get_visible()]


def image_maps(fig) -> set[str]:
    return {im.get_cmap().name for ax in fig.get_axes() for im in ax.get_images() if im.get_array().ndim == 2}


def check_readable(fig, max_px: int = CONTENT_PX) -> None:
    fig.canvas.draw()
    assert fig.get_figwidth() * DPI <= max_px, "wider than the report page: the browser would shrink its text"
    small = [t.get_text() for t in texts(fig) if t.get_fontsize() < 9]
    assert not small, f"text under 9 pt: {small[:3]}"


def test_seed_panel_has_titles_bars_in_metres_and_scores():
    pred = GT * 1.1
    fig = panel_figure(pred, IMAGE, GT, name="room.png")
    t = titles(fig)
    assert t[0] == "room.png" and any(x.startswith("prediction\nAbsRel 0.100 · δ1 1.00") for x in t)
    assert any(x.startswith("ground truth") for x in t) and "relative error" in t
    bars = depth_bars(fig)
    assert len(bars) == 1 and "shared" in bars[0].get_ylabel()  # one scale for prediction and ground truth
    ticks = bars[0].get_yticks()
    lo, hi = bars[0].get_ylim()
    assert 0.9 <= lo < 2 and 8 < hi <= 10 and len(ticks) >= 3  # metres, the ground truth's 1..9 m
    error_bars = [ax for ax in fig.get_axes() if "(pred − gt) / gt" in ax.get_ylabel()]
    assert len(error_bars) == 1
    assert image_maps(fig) == {DEPTH_MAP, ERROR_MAP} and DEPTH_MAP != ERROR_MAP
    assert "one depth scale" in fig.texts[0].get_text()
    legend = fig.legends[0].get_texts()[0].get_text()
    assert "no valid depth" in legend  # the invalid band is shaded and said
    check_readable(fig)


def test_seed_panel_gives_a_prediction_in_another_range_its_own_scale():
    """A real photo through an untrained model: 2.0-2.4 m against a 1-9 m room must not be one flat colour."""
    pred = 2.0 + 0.4 * rng.uniform(0, 1, (H, W)).astype(np.float32)
    fig = panel_figure(pred, IMAGE, GT)
    bars = depth_bars(fig)
    assert len(bars) == 2  # a bar each
    (p_lo, p_hi), (_, g_hi) = bars[0].get_ylim(), bars[1].get_ylim()
    assert 1.95 < p_lo < p_hi < 2.45 and g_hi > 8
    assert "own scale" in fig.texts[0].get_text()
    assert any("(2.0" in x and "m)" in x for x in titles(fig))  # the prediction's range in its title


def test_seed_panel_png_is_readable_size():
    from io import BytesIO

    from PIL import Image

    size = Image.open(BytesIO(panel(GT * 1.1, IMAGE, GT))).size
    assert 900 <= size[0] <= CONTENT_PX and size[1] >= 200


def test_best_worst_rows_are_labelled_with_their_scores():
    from depthforge.evaluation.evaluate import ranked

    kept = [(0.05 * (i + 1), {"image": IMAGE, "gt": GT, "pred": GT * (1 + 0.05 * (i + 1)), "name": f"im{i}",
                              "abs_rel": 0.05 * (i + 1), "d1": 1.0 - 0.1 * i}) for i in range(6)]
    rows = ranked(kept)
    assert [r["rank"] for r in rows] == ["best 1", "best 2", "best 3", "worst 3", "worst 2", "worst 1"]
    rows = [rows[0], rows[-1]]
    fig = best_worst_figure(rows, "m.ckpt: best and worst")
    labels = [ax.get_ylabel() for ax in fig.get_axes() if ax.get_ylabel() in {"best 1", "worst 1"}]
    assert labels == ["best 1", "worst 1"]
    t = titles(fig)
    assert sum(x.startswith("prediction\nAbsRel 0.050 · δ1 1.00") for x in t) == 1
    assert sum(x.startswith("prediction\nAbsRel 0.300 · δ1 0.50") for x in t) == 1
    assert len(depth_bars(fig)) == 2 and t.count("relative error") == 2
    check_readable(fig)


def test_compare_scenes_share_a_depth_bar_and_outline_glass(monkeypatch, tmp_path):
    from depthforge.viz import compare as viz_compare

    figs = []
    monkeypatch.setattr(viz_compare, "save_png", lambda fig, path, dpi=100: figs.append(fig))
    glass = np.zeros((H, W), bool)
    glass[8:16, 10:20] = True
    shots = [{"name": "scene 0", "image": IMAGE, "gt": GT, "pred": {"a": GT * 1.2, "b": GT * 0.9},
              "stats": {"a": {"abs_rel": 0.2, "d1": 0.9}, "b": {"abs_rel": 0.1, "d1": 1.0}},
              "masks": {"glass": glass}}]
    viz_compare.scenes_figure(shots, ["a", "b"], tmp_path / "s.png", "glass: the same scenes")
    fig = figs[0]
    t = titles(fig)
    assert "a\nAbsRel 0.200 · δ1 0.90" in t and "b\nAbsRel 0.100 · δ1 1.00" in t and "error of a" in t
    bars = depth_bars(fig)
    assert len(bars) == 1 and "shared" in bars[0].get_ylabel()
    assert image_maps(fig) == {DEPTH_MAP, ERROR_MAP}
    outlined = [ax for ax in fig.get_axes() if any(isinstance(c, matplotlib.contour.ContourSet)
                                                   for c in ax.collections)]
    assert len(outlined) == 5  # ground truth, two predictions, two error maps
    assert any("glass" in x.get_text() for x in fig.legends[0].get_texts())
    check_readable(fig)


def test_suites_bars_fit_the_page_with_readable_text(monkeypatch, tmp_path):
    from depthforge.evaluation.report import higher_is_better
    from depthforge.viz import compare as viz_compare

    figs = []
    monkeypatch.setattr(viz_compare, "save_png", lambda fig, path, dpi=100: figs.append(fig))
    columns = {c: 0.5 for c in viz_compare.BAR_COLUMNS}
    labels = [f"model {i} with a long name" for i in range(3)]
    sets = ["test", "edges", "clutter", "glass"]
    report = {"models": [{"label": x} for x in labels],
              "sets": {s: {"models": {x: dict(columns) for x in labels}} for s in sets}}
    assert viz_compare.bars_figure(report, tmp_path / "suites.png", higher_is_better)
    fig = figs[0]
    assert len([x for x in titles(fig) if "is better" in x]) == len(viz_compare.BAR_COLUMNS)
    check_readable(fig)


def test_training_curves_are_titled_and_labelled(monkeypatch, tmp_path):
    from depthforge.viz import plots

    figs = []
    monkeypatch.setattr(plots, "save_png", lambda fig, path, dpi=100: figs.append(fig))
    log = tmp_path / "run" / "metrics.csv"
    log.parent.mkdir()
    with open(log, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "epoch", "train_loss", "val_abs_rel"])
        w.writerows([[i, 0, 1.0 / (i + 1), ""] for i in range(5)] + [[4, 0, "", 0.3]])
    assert plots.plot_curves([log], tmp_path / "run" / "loss_curve.png") is not None
    fig = figs[0]
    assert "training curves of run" in fig._suptitle.get_text()
    axes = [ax for ax in fig.get_axes() if ax.get_title()]
    assert {ax.get_ylabel() for ax in axes} == {"train_loss", "val_abs_rel"}
    assert {ax.get_xlabel() for ax in axes} == {"optimiser step"}
    check_readable(fig)


def test_report_page_scrolls_wide_tables_and_shows_pictures_at_their_size():
    assert f"max-width: {CONTENT_PX}px" in STYLE  # the width the figures are made for
    assert "overflow-x: auto" in STYLE and "position: sticky" in STYLE  # wide tables scroll, the model column stays
    assert "figure { margin: 8px 0; }" in STYLE  # no indent that would shrink a picture


def test_predict_panel_on_a_real_photo(realdata):
    """A real KITTI frame (1242×375, sparse LiDAR ground truth) at its own size."""
    from depthforge.data.io import read_depth, read_image

    image = read_image(realdata / "kitti" / "rgb_0000000005.png")
    gt = read_depth(realdata / "kitti" / "depth_0000000005.png", "kitti256")
    pred = np.full_like(gt, 3.0) + np.linspace(0, 0.5, gt.shape[1], dtype=np.float32)
    fig = panel_figure(pred, image, gt, name="kitti 05")
    bars = depth_bars(fig)
    assert len(bars) == 2 and bars[0].get_ylim()[1] < 3.6  # the flat prediction keeps its own scale
    assert bars[1].get_ylim()[1] > 40  # the street's ground truth reaches tens of metres
    check_readable(fig)
    # the wide frame comes in two rows of two, each picture tall enough to see the street (one row: ~80 px)
    assert min(ax.get_window_extent().height for ax in fig.get_axes() if ax.get_images()) >= 140
