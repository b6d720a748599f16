from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from depthforge.evaluation.metrics import (HIGHER_IS_BETTER, METRIC_NAMES, PROTOCOLS, align, compute_metrics, edge_metrics,
                                mean_metrics, ordinal_error, soft_accuracy)

SCALE = {"nyu": 1000.0, "kitti": 256.0}  # stored value ÷ scale = metres


@pytest.mark.parametrize("dataset,n", [("nyu", 4), ("kitti", 2)])
def test_agrees_with_the_toolbox(fixtures, dataset, n):
    z = np.load(fixtures / "metrics_reference.npz")
    names = list(z["metric_names"])
    rows, counts = [], []
    for i in range(n):
        gt = z[f"{dataset}_gt_{i}"].astype(np.float64) / SCALE[dataset]
        pred = z[f"{dataset}_pred_{i}"]
        rows.append(compute_metrics(pred, gt, dataset))
        proto = PROTOCOLS[dataset]
        counts.append(((gt > proto.min_depth) & (gt < proto.max_depth) & proto.crop_mask(*gt.shape)).sum())
    for got, want, count in zip(rows, z[f"{dataset}_per_image"], counts):
        _close(got, want, names, count)
    _close(mean_metrics(rows), z[f"{dataset}_mean"], names, min(counts))


def _close(got, want, names, n_valid):
    """Agreement to 1e-6 (relative for values above 1, such as silog ~30)."""
    for name, ref in zip(names, want):
        assert abs(got[name] - ref) <= 1e-6 * max(1.0, abs(ref)), (name, got[name], ref)


def test_accepts_torch_and_rejects_wrong_size():
    gt = np.full((48, 64), 3.0)
    pred = gt * 1.1
    assert compute_metrics(torch.from_numpy(pred)[None, None], torch.from_numpy(gt), "none") == \
        compute_metrics(pred, gt, "none")
    with pytest.raises(ValueError, match="pred is 24x32 but gt is 48x64"):
        compute_metrics(pred[::2, ::2], gt)


def test_hand_computed_metrics():
    gt = np.array([[1.0, 2.0], [4.0, 0.0]])
    pred = np.array([[2.0, 2.0], [4.0, 7.0]])  # one pixel off by 2x; gt 0 is invalid
    m = compute_metrics(pred, gt, "none")
    assert m["d1"] == pytest.approx(2 / 3) and m["d3"] == pytest.approx(2 / 3)
    assert m["abs_rel"] == pytest.approx(1 / 3) and m["sq_rel"] == pytest.approx(1 / 3)
    assert m["rmse"] == pytest.approx(math.sqrt(1 / 3))
    assert m["rmse_log"] == pytest.approx(math.log(2) / math.sqrt(3))
    assert m["log10"] == pytest.approx(math.log10(2) / 3)
    e = np.log([2.0, 1.0, 1.0])
    assert m["silog"] == pytest.approx(100 * math.sqrt(np.mean(e**2) - np.mean(e) ** 2))
    assert list(m) == list(METRIC_NAMES)
    assert [n for n in METRIC_NAMES if n in HIGHER_IS_BETTER] == ["d1", "d2", "d3"]


def test_crops():
    eigen = PROTOCOLS["nyu"].crop_mask(480, 640)
    assert eigen.sum() == (471 - 45) * (601 - 41) and eigen[45, 41] and eigen[470, 600] and not eigen[44, 41]
    doubled = PROTOCOLS["nyu"].crop_mask(960, 1280)
    assert doubled[90, 82] and doubled[941, 1201] and not doubled[89, 82] and not doubled[942, 1201]
    garg = PROTOCOLS["kitti"].crop_mask(375, 1242)
    rows, cols = np.flatnonzero(garg.any(1)), np.flatnonzero(garg.any(0))
    assert (rows[0], rows[-1] + 1, cols[0], cols[-1] + 1) == (153, 371, 44, 1197)
    # Pixels outside the crop do not count.
    gt = np.full((375, 1242), 20.0)
    pred = gt.copy()
    pred[:153] = 1.0
    assert compute_metrics(pred, gt, "kitti")["abs_rel"] == 0
    assert compute_metrics(pred, gt, "none", max_depth=80)["abs_rel"] > 0


def test_depth_caps_and_clamping():
    gt = np.array([[5.0, 15.0]])
    pred = np.array([[50.0, 15.0]])  # clamped to 10 m under NYU's cap
    assert compute_metrics(pred, gt, "none")["abs_rel"] == pytest.approx(1.0)  # 15 m gt is beyond the cap
    assert compute_metrics(pred, gt, "none", max_depth=20)["abs_rel"] == pytest.approx((15 / 5) / 2)
    assert PROTOCOLS["nyu"].with_max(20).max_depth == 20 and PROTOCOLS["nyu"].max_depth == 10


def test_no_valid_pixels_is_nan_and_ignored_by_the_mean():
    gt = np.full((8, 8), 3.0)
    good = compute_metrics(gt * 1.25, gt, "none")
    empty = compute_metrics(gt, np.zeros_like(gt), "none")
    assert all(math.isnan(v) for v in empty.values())
    assert math.isnan(compute_metrics(gt, gt, "none", valid=np.zeros_like(gt, bool))["d1"])
    assert mean_metrics([good, empty]) == pytest.approx(good)
    assert all(math.isnan(v) for v in mean_metrics([empty]).values())


def test_nan_prediction_is_an_error():
    gt = np.full((4, 4), 3.0)
    pred = gt.copy()
    pred[1, 1] = np.nan
    with pytest.raises(ValueError, match="pred is NaN at 1 valid pixels"):
        compute_metrics(pred, gt, "none")


def test_align_recovers_scale_and_shift():
    rng = np.random.default_rng(0)
    gt = rng.uniform(1, 8, (30, 40))
    valid = rng.random(gt.shape) > 0.3
    relative = (gt - 0.5) / 3.0
    relative[~valid] = 1e6  # garbage where gt is invalid must not matter
    np.testing.assert_allclose(align(relative, gt, valid, "lstsq")[valid], gt[valid], rtol=1e-10)
    scaled = gt / 3.0
    np.testing.assert_allclose(align(scaled, gt, None, "median"), gt, rtol=1e-12)
    assert np.array_equal(align(scaled, gt, None, "none"), scaled)
    with pytest.raises(ValueError, match="unknown alignment"):
        align(scaled, gt, None, "affine")


def test_soft_accuracy_hand_example():
    gt = np.array([[1.0, 6.0, 9.0, 4.0, 0.0]])
    pred = np.array([[2.0, 4.0, 7.0, 6.0, 9.0]])  # /10, rounded: gt 0,1,1,0,- vs pred 0,0,1,1,(invalid)
    assert soft_accuracy(pred, gt, None, max_depth=10) == pytest.approx(2 / 4)
    assert math.isnan(soft_accuracy(pred, np.zeros_like(gt), None, 10))


def _scene():
    """A 2 m wall with a 4 m background on the right half and a gentle slope."""
    gt = np.full((64, 96), 2.0)
    gt[:, 48:] = 4.0
    return gt * (1 + 0.002 * np.arange(64))[:, None]


def test_ordinal_error():
    gt = _scene()
    assert ordinal_error(gt, gt) == 0
    assert ordinal_error(1 / gt, gt) == 1  # inverted depth reverses every pair
    assert ordinal_error(np.full_like(gt, 3.0), gt) == 1  # a flat prediction orders nothing
    swapped = gt.copy()
    swapped[:, 48:] /= 4  # the background in front of the wall: pairs across the boundary are reversed
    across = ordinal_error(swapped, gt, ratio=1.5)  # only pairs across the boundary differ by 1.5x
    assert across == 1 and 0.5 < ordinal_error(swapped, gt) < 0.75
    assert ordinal_error(swapped, gt, seed=1) == pytest.approx(ordinal_error(swapped, gt), abs=0.03)


def test_edge_metrics():
    gt = _scene()
    assert edge_metrics(gt, gt) == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    blurred = gaussian_filter(gt, sigma=4)
    assert edge_metrics(blurred, gt)["recall"] < 0.5 and edge_metrics(blurred, gt)["f1"] < 0.5
    shifted = gt.copy()
    shifted[:, 48] = gt[:, 47]  # boundary one pixel off: within tolerance
    assert edge_metrics(shifted, gt)["f1"] == 1.0
    spurious = gt.copy()
    spurious[:, 20] = 3.0  # an edge gt does not have
    m = edge_metrics(spurious, gt)
    assert m["recall"] == 1.0 and m["precision"] < 0.8
    assert all(math.isnan(v) for v in edge_metrics(np.ones((8, 8)), np.ones((8, 8))).values())
    # An invalid strip hides its edges on both sides.
    valid = np.ones(gt.shape, bool)
    valid[:, 40:56] = False
    assert all(math.isnan(v) for v in edge_metrics(blurred, gt, valid).values())


def test_an_image_smaller_than_the_seed_ssim_window_is_scored_without_the_seed_figures():
    """The seed loss's SSIM needs 11×11 pixels (as tf.image.ssim); a tinier image (a benchmark fixture, a crop) gets
    every other column and NaN seed figures, not a traceback."""
    import math

    from depthforge.evaluation.evaluate import image_row
    from depthforge.evaluation.metrics import get_protocol
    from depthforge.losses import build_loss

    gt = np.linspace(1.0, 3.0, 8 * 9).reshape(8, 9).astype(np.float32)
    proto = get_protocol("none")
    row = image_row(gt * 1.1, gt, proto.mask(gt), proto, build_loss("seed"))
    assert math.isnan(row["seed_loss"]) and row["abs_rel"] == pytest.approx(0.1, rel=1e-5)


def test_baselines_are_aligned_as_the_model_is():
    """A model fitted to each image (a relative output, median-aligned) is compared with baselines fitted the same
    way: the constant baseline becomes each image's median ground truth, whatever constant was stored."""
    from depthforge.evaluation.evaluate import per_image
    from depthforge.evaluation.metrics import Protocol

    rng = np.random.default_rng(0)
    gts = [rng.uniform(1, 9, (24, 32)).astype(np.float32) for _ in range(3)]
    dataset = [{"image": torch.zeros(3, 24, 32), "depth": torch.from_numpy(g)[None], "valid": torch.ones(1, 24, 32,
                dtype=torch.bool), "name": f"img{i}"} for i, g in enumerate(gts)]

    class Relative:
        output = "relative"

        def predict_tensor(self, images):
            return torch.ones(1, 1, 24, 32)

    proto = Protocol("none", 1e-3, 10.0)
    baselines = {"constant": 100.0, "mean_map": torch.full((24, 32), 50.0)}
    rows = per_image(Relative(), dataset, proto, "median", baselines, progress=False)
    want = [float(np.mean(np.abs(g - np.median(g)) / g)) for g in gts]
    for key in ("constant", "mean_map", "model"):  # all three are constants: after the fit, the same depth
        assert [r["abs_rel"] for r in rows[key]] == pytest.approx(want, rel=1e-5), key
