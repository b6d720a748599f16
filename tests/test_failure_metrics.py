"""Failure-mode metrics on constructed cases with known answers."""
import math

import numpy as np
import pytest
import torch

from depthforge.errors import DepthforgeError
from depthforge.evaluation.failure import (
    boundary_errors, canny_edges, directed_depth_errors, distance_errors, failure_row, masked_metrics, occlusion_edges,
    plane_errors, planarity_errors, sample_masks, whdr)
from depthforge.evaluation.metrics import compute_metrics

H, W = 96, 128
K = np.array([[100.0, 0, (W - 1) / 2], [0, 100.0, (H - 1) / 2], [0, 0, 1]])


def boxes(shift: int = 0) -> np.ndarray:
    """A far wall (5 m) with a near box (2 m) and a middle box (3.5 m), moved ``shift`` pixels right."""
    d = np.full((H, W), 5.0)
    d[20:60, 20 + shift:60 + shift] = 2.0
    d[50:85, 75 + shift:110 + shift] = 3.5
    return d


def scene(seed: int = 0) -> np.ndarray:
    """A smooth random depth map in [1, 9] m: most pixel pairs differ by far more than 2%."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W] / 20.0
    d = sum(rng.uniform(0.5, 1.5) * np.sin(a * yy + b * xx + c)
            for a, b, c in rng.uniform(0.3, 2.0, size=(4, 3)))
    return 1 + 8 * (d - d.min()) / (d.max() - d.min())


# --- DBE --------------------------------------------------------------------------------------------------------

def test_dbe_identical_prediction_is_zero():
    gt = boxes()
    edges = canny_edges(gt)
    assert edges.sum() > 100
    assert boundary_errors(gt, edges) == {"dbe_acc": 0.0, "dbe_comp": 0.0}
    # scale-free: a prediction at another scale has the same edges
    assert boundary_errors(0.3 * gt, edges) == {"dbe_acc": 0.0, "dbe_comp": 0.0}


@pytest.mark.parametrize("k", [1, 3, 6])
def test_dbe_shift_by_k_pixels_gives_k(k):
    gt = boxes()
    out = boundary_errors(boxes(shift=k), canny_edges(gt))
    # vertical box sides move by k (distance k), horizontal sides slide along themselves (distance 0 mostly)
    assert 0.3 * k < out["dbe_acc"] <= k + 1e-9
    assert 0.3 * k < out["dbe_comp"] <= k + 1e-9
    # a column-only scene: every edge moves by exactly k (Canny marks the step's far side, column 64, and a few
    # pixels of its near side, which sit k-1 from the moved ones)
    d = np.full((H, W), 5.0)
    d[:, 64:] = 2.0
    moved = np.full((H, W), 5.0)
    moved[:, 64 + k:] = 2.0
    out = boundary_errors(moved, canny_edges(d))
    assert out["dbe_acc"] == pytest.approx(k, abs=0.05) and out["dbe_comp"] == pytest.approx(k, abs=0.05)


def test_dbe_no_gt_edge_is_nan_and_no_pred_edge_is_max():
    gt_edges = canny_edges(boxes())
    out = boundary_errors(boxes(), np.zeros((H, W), bool))
    assert math.isnan(out["dbe_acc"]) and math.isnan(out["dbe_comp"])
    assert boundary_errors(np.full((H, W), 3.0), gt_edges) == {"dbe_acc": 10.0, "dbe_comp": 10.0}
    # far-away edges only (beyond 10 px): also the maximum
    d = np.full((H, W), 5.0)
    d[:, 124:] = 2.0  # the boxes end at column 109
    assert boundary_errors(d, canny_edges(boxes()))["dbe_acc"] == 10.0


def test_dbe_matches_the_reference_script_on_a_constructed_case():
    """Against iBims-1's reference (``compute_depth_boundary_error`` of evaluate_ibims_error_metrics.py, BS-Net's
    copy), run on this very case outside the repository; its two numbers are stored here."""
    pred = np.full((40, 64), 2.0, np.float32)
    pred[:, 20:] = 4.0  # a step 3 columns left of the gt boundary
    pred[:, 50:] = 5.0  # a step 26 columns from it: beyond the 10-px neighbourhood
    pred[30:34, 5:9] = 0  # no prediction: the script makes these NaN before normalising (kept as 0: acc 3.158)
    gt = np.zeros((40, 64), bool)
    gt[:, 23] = True
    gt[5, 30:36] = True  # a boundary no predicted edge comes within 10 px of
    est = canny_edges(pred)
    # Canny marks 32 pixels of column 19 (4 px from the gt) and 36 of column 20 (3 px); those of columns 49-50
    # lie beyond 10 px and do not count: acc = (32·4 + 36·3) / 68, by hand
    assert [int(est[:, c].sum()) for c in (19, 20, 49, 50)] == [32, 36, 4, 38] and est.sum() == 110
    out = boundary_errors(pred, gt)
    assert out["dbe_acc"] == pytest.approx(236 / 68, rel=1e-12)
    assert out["dbe_acc"] == pytest.approx(3.4705882352941178, rel=1e-12)  # the reference script's
    assert out["dbe_comp"] == pytest.approx(5.3631353246197015, rel=1e-12)  # the reference script's


def test_dbe_completeness_variants_and_bad_input():
    gt = boxes()
    half = np.full((H, W), 5.0)
    half[20:60, 20:60] = 2.0  # finds the first box, misses the second
    edges = canny_edges(gt)
    sym = boundary_errors(half, edges)
    directed = boundary_errors(half, edges, completeness="directed")
    assert sym["dbe_acc"] == 0.0 and directed["dbe_acc"] == 0.0
    assert 0 < sym["dbe_comp"] < directed["dbe_comp"]  # truncated at 10 and averaged with the found edges
    with pytest.raises(DepthforgeError):
        boundary_errors(gt, edges[:-1])
    with pytest.raises(DepthforgeError):
        boundary_errors(gt, edges, completeness="both")


def test_canny_ignores_zeros_like_the_script():
    gt = boxes()
    holed = gt.copy()
    holed[0:5, 0:5] = 0  # 0 = NaN for the script: not the minimum of the normalisation
    assert np.array_equal(canny_edges(holed)[10:, 10:], canny_edges(gt)[10:, 10:])
    assert not canny_edges(np.zeros((H, W))).any()


def test_occlusion_edges_mark_the_nearer_side():
    d = np.full((20, 30), 4.0)
    d[5:15, 10:20] = 2.0
    e = occlusion_edges(d)
    inner = np.zeros_like(e)
    inner[5:15, 10:20] = True
    inner[6:14, 11:19] = False  # the box's one-pixel border
    assert np.array_equal(e, inner)
    # a smooth ramp (1% per pixel) has no edge; an invalid hole makes none either
    ramp = np.tile(1.01 ** np.arange(30), (20, 1))
    assert not occlusion_edges(ramp).any()
    holed = np.full((20, 30), 4.0)
    holed[5:15, 10:20] = 0
    assert not occlusion_edges(holed).any()
    valid = np.ones((20, 30), bool)
    valid[:, :15] = False
    assert not occlusion_edges(d, valid)[:, :15].any()
    # as gt edges for DBE: the prediction equal to gt lies within a pixel of them
    out = boundary_errors(boxes(), occlusion_edges(boxes()))
    assert out["dbe_acc"] <= 1.0 and out["dbe_comp"] <= 1.0


# --- DDE --------------------------------------------------------------------------------------------------------

def test_dde_constructed_case():
    gt = np.array([[1.0, 2.0, 4.0, 5.0], [2.5, 3.0, 6.0, 0.0]])  # near: 1, 2, 2.5, 3 (≤ 3 m); far: 4, 5, 6
    pred = np.array([[1.0, 4.0, 2.0, 5.0], [2.5, 3.5, 2.9, 7.0]])
    # pixel by pixel: agree, pred far/gt near (+), pred near/gt far (−), agree, agree, +, −; the 0 gt is out
    out = directed_depth_errors(pred, gt)
    assert out["dde_0"] == pytest.approx(3 / 7) and out["dde_m"] == pytest.approx(2 / 7)
    assert out["dde_p"] == pytest.approx(2 / 7)
    assert directed_depth_errors(gt, gt)["dde_0"] == 1.0
    valid = np.zeros_like(gt, bool)
    valid[0, :2] = True
    assert directed_depth_errors(pred, gt, valid) == {"dde_0": 0.5, "dde_m": 0.0, "dde_p": 0.5}
    assert math.isnan(directed_depth_errors(pred, gt, np.zeros_like(gt, bool))["dde_0"])
    # threshold as a parameter: at 10 m everything is near
    assert directed_depth_errors(pred, gt, threshold=10.0)["dde_0"] == 1.0


# --- planarity --------------------------------------------------------------------------------------------------

def plane_depth(normal, dist, k=K, shape=(H, W)) -> np.ndarray:
    """z-depth of the plane n·P = dist seen by camera k, in iBims-1's frame (x right, y forward, z up)."""
    r, c = np.mgrid[0:shape[0], 0:shape[1]].astype(float)
    nx, ny, nz = normal
    return dist / (nx * (c - k[0, 2]) / k[0, 0] + ny - nz * (r - k[1, 2]) / k[1, 1])


def test_planarity_of_a_perfect_plane_is_zero():
    n = np.array([0.3, 0.9, -0.2])
    n /= np.linalg.norm(n)
    gt = plane_depth(n, 3.0)
    assert gt.min() > 0
    labels = np.ones((H, W), int)
    params = np.zeros((1, 7))
    params[0, 4:7] = n
    flat, orient = plane_errors(gt, gt, labels, params, K)[0]
    assert flat == pytest.approx(0, abs=1e-6) and orient == pytest.approx(0, abs=1e-4)
    # the scale of pred does not matter (median scaling inside the plane)
    out = planarity_errors(0.4 * gt, gt, labels, params, K)
    assert out["pe_flat"] == pytest.approx(0, abs=1e-6) and out["pe_orient"] == pytest.approx(0, abs=1e-4)
    assert out["pe_count"] == 1


@pytest.mark.parametrize("deg", [5.0, 20.0])
def test_planarity_of_a_tilted_plane_gives_the_tilt(deg):
    t = math.radians(deg)
    n_gt = np.array([math.sin(t), math.cos(t), 0.0])  # a wall turned by deg about the vertical axis
    gt = plane_depth(n_gt, 3.0)
    pred = np.full((H, W), 3.0)  # a fronto-parallel wall: flat, but facing the camera
    labels = np.ones((H, W), int)
    params = np.zeros((1, 7))
    params[0, 4:7] = n_gt
    out = planarity_errors(pred, gt, labels, params, K)
    assert out["pe_orient"] == pytest.approx(deg, abs=1e-6)
    assert out["pe_flat"] == pytest.approx(0, abs=1e-6)
    # a bumpy plane: flatness error in cm, the std of the bumps along the normal
    rng = np.random.default_rng(0)
    bumpy = gt + rng.normal(0, 0.01, gt.shape)
    assert 0.3 < planarity_errors(bumpy, gt, labels, params, K)["pe_flat"] < 1.5


def test_planarity_labels_small_planes_and_several_types():
    n = np.array([0.0, 1.0, 0.0])
    gt = plane_depth(n, 3.0)
    labels = np.zeros((H, W), int)
    labels[:, : W // 2] = 1  # plane 1: half the image
    labels[:2, W // 2:] = 2  # plane 2: under 5%: NaN
    params = np.zeros((2, 7))
    params[:, 4:7] = n
    errs = plane_errors(gt, gt, labels, params, K)
    assert errs[0, 0] == pytest.approx(0, abs=1e-6) and np.isnan(errs[1]).all()
    out = planarity_errors(gt, gt, [(labels, params), (np.zeros((H, W)), np.zeros((0, 0)))], None, K)
    assert out["pe_count"] == 1
    assert planarity_errors(gt, gt, np.zeros((H, W)), np.zeros((0, 7)), K)["pe_count"] == 0
    # invalid gt inside the plane is left out
    valid = np.ones((H, W), bool)
    valid[:, : W // 2] = False
    assert np.isnan(plane_errors(gt, gt, labels, params, K, valid)).all()


# --- WHDR -------------------------------------------------------------------------------------------------------

def test_whdr_identical_reversed_and_deterministic():
    gt = scene()
    assert whdr(gt, gt) == 0.0
    assert whdr(2.5 * gt, gt) == 0.0  # ordinal: scale-free
    rev = gt.max() + gt.min() - gt
    assert whdr(rev, gt) > 0.9
    noisy = gt * np.random.default_rng(1).uniform(0.9, 1.1, gt.shape)
    a, b = whdr(noisy, gt, seed=3), whdr(noisy, gt, seed=3)
    assert a == b and 0 < a < 0.5
    assert whdr(noisy, gt, seed=4) != a
    assert math.isnan(whdr(gt, gt, np.zeros_like(gt, bool)))


def test_whdr_counts_ties_as_a_label():
    gt = np.ones((10, 10))  # every pair equal: label 0
    assert whdr(gt, gt) == 0.0
    assert whdr(gt * np.linspace(1, 2, 100).reshape(10, 10), gt) > 0.9
    assert whdr(gt * np.linspace(1, 1.001, 100).reshape(10, 10), gt) == 0.0  # within the 2% tolerance


# --- masked metrics ---------------------------------------------------------------------------------------------

def test_masked_metrics_read_only_their_region():
    gt = scene()
    mask = np.zeros((H, W), bool)
    mask[30:60, 40:90] = True
    pred = gt * 1.07
    out = masked_metrics(pred, gt, None, mask)
    changed = pred.copy()
    changed[~mask] = 9.0
    out2 = masked_metrics(changed, gt, None, mask)
    glass = {k: v for k, v in out.items() if k.startswith("glass/")}
    assert glass == {k: v for k, v in out2.items() if k.startswith("glass/")}
    assert out["rest/abs_rel"] != out2["rest/abs_rel"]
    assert out["glass/abs_rel"] == pytest.approx(0.07, rel=1e-5)
    assert out["glass/d105"] == 0.0 and out["glass/d110"] == 1.0 and out["glass/d1"] == 1.0
    assert out["glass/mae"] == pytest.approx(0.07 * gt[mask].mean(), rel=1e-6)
    # the standard columns are compute_metrics on the region
    ref = compute_metrics(pred, gt, "none", valid=mask)
    assert all(out[f"glass/{k}"] == v for k, v in ref.items())


def test_masked_metrics_empty_region_is_nan():
    gt = scene()
    out = masked_metrics(gt, gt, None, np.zeros((H, W), bool), name="transparent")
    assert all(math.isnan(v) for k, v in out.items() if k.startswith("transparent/"))
    assert out["rest/abs_rel"] == 0.0 and out["rest/mae"] == 0.0
    with pytest.raises(DepthforgeError):
        masked_metrics(gt, gt, None, np.zeros((H, W - 1), bool))


# --- one row per image ------------------------------------------------------------------------------------------

def test_failure_row_uses_the_masks_at_hand():
    gt = boxes()
    base = failure_row(gt, gt, None, {})
    assert set(base) == {"dde_0", "dde_m", "dde_p", "whdr"}
    assert base["dde_0"] == 1.0 and base["whdr"] == 0.0
    labels = np.zeros((H, W), np.int64)
    labels[gt == 5.0] = 1  # the far wall, at constant depth: a fronto-parallel plane
    params = np.zeros((1, 7), np.float32)
    params[0, 4:7] = (0, 1, 0)
    sample = {
        "edges": torch.from_numpy(canny_edges(gt))[None, None],
        "transparent": torch.zeros(1, 1, H, W, dtype=torch.bool),
        "plane_wall": torch.from_numpy(labels)[None, None],
        "plane_wall_params": torch.from_numpy(params)[None],
        "plane_floor": torch.zeros(1, 1, H, W, dtype=torch.int64),
        "plane_floor_params": torch.zeros(1, 0, 7),
        "intrinsics": torch.from_numpy(K)[None],
        "image": torch.zeros(1, 3, H, W),
    }
    masks = sample_masks(sample)
    assert masks["edges"].shape == (H, W) and masks["plane_wall_params"].shape == (1, 7)
    assert masks["plane_floor_params"].shape == (0, 7) and "image" not in masks
    row = failure_row(gt, gt, None, masks)
    assert row["dbe_acc"] == 0.0 and row["dbe_comp"] == 0.0
    assert row["pe_flat"] == pytest.approx(0, abs=1e-6) and row["pe_orient"] == pytest.approx(0, abs=1e-4)
    assert row["pe_count"] == 1
    assert math.isnan(row["transparent/abs_rel"]) and row["rest/abs_rel"] == 0.0
    with pytest.raises(DepthforgeError):
        failure_row(gt, gt, None, {k: v for k, v in masks.items() if k != "intrinsics"})


def test_distance_errors_fall_in_their_metre_bands():
    """Constructed: gt 0.5 m off by 10 % and gt 2.5 m exact; band 0–1 m holds AbsRel 0.1 and RMSE 0.05, band 2–3 m
    0, the empty bands NaN; a gt of exactly 1 m counts in both neighbouring bands, as the iBims-1 script."""
    gt = np.array([[0.5, 0.5, 2.5, 2.5]], np.float32)
    pred = np.array([[0.55, 0.45, 2.5, 2.5]], np.float32)
    d = distance_errors(pred, gt, top=4)
    assert d["abs_rel"].shape == (4,)
    assert d["abs_rel"][0] == pytest.approx(0.1) and d["rmse"][0] == pytest.approx(0.05)
    assert d["abs_rel"][2] == 0 and d["rmse"][2] == 0 and d["log10"][2] == 0
    assert np.isnan(d["abs_rel"][1]) and np.isnan(d["rmse"][3])
    edge = distance_errors(np.array([[2.0]]), np.array([[1.0]]), top=3)
    assert edge["abs_rel"][0] == edge["abs_rel"][1] == 1.0 and np.isnan(edge["abs_rel"][2])
    # invalid pixels (mask, zero gt, zero prediction) are left out
    masked = distance_errors(np.array([[9.0, 0.0, 1.5]]), np.array([[1.5, 1.5, 0.0]]), np.array([[False, True, True]]))
    assert np.isnan(masked["abs_rel"]).all()
