"""The field's losses against direct numpy computations: DA-V2's SILog, MiDaS's SSI + gradient matching,
MegaDepth's log-depth gradient matching; invalid pixels never change the value."""
import numpy as np
import pytest
import torch

from depthforge.losses import build_loss

rng = np.random.default_rng(0)


def _data(n=2, h=12, w=10, holes=0.3):
    gt = rng.uniform(0.5, 15.0, (n, 1, h, w)).astype(np.float32)
    pred = (gt * rng.uniform(0.7, 1.4, gt.shape)).astype(np.float32)
    valid = rng.random(gt.shape) > holes
    return pred, gt, valid


def _t(*arrays):
    return [torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]


def _scramble_invalid(pred, gt, valid):
    """Garbage everywhere outside the mask: NaN, inf, negatives and huge values in the target, noise in pred."""
    g = gt.copy()
    bad = ~valid
    g[bad] = rng.choice([np.nan, np.inf, -3.0, 0.0, 1e6], size=bad.sum())
    p = pred.copy()
    p[bad] = rng.uniform(1e-3, 1e3, size=bad.sum())
    return p, g


# --- Depth Anything V2 SILog -------------------------------------------------------------------------------------

def np_silog_dav2(pred, gt, valid, lam=0.5, lo=1e-3, hi=20.0):
    m = valid & (gt >= lo) & (gt <= hi)
    d = np.log(gt[m].astype(np.float64)) - np.log(pred[m].astype(np.float64))
    return np.sqrt(np.mean(d**2) - lam * np.mean(d) ** 2)


def test_silog_dav2_matches_numpy_and_ignores_invalid_pixels():
    pred, gt, valid = _data()
    gt[0, 0, :2] = 25.0            # beyond max_depth 20: out of the mask as in DA-V2's train.py
    loss = build_loss("silog-dav2", max_depth=20.0)
    got = float(loss(*_t(pred, gt, valid)))
    assert got == pytest.approx(np_silog_dav2(pred, gt, valid), rel=1e-5)
    p2, g2 = _scramble_invalid(pred, gt, valid)
    g2[0, 0, :2] = 50.0
    assert float(loss(*_t(p2, g2, valid))) == pytest.approx(got, rel=1e-6)


def test_silog_dav2_has_no_factor_ten_and_lambda_half():
    pred, gt = np.full((1, 1, 4, 4), 2.0, np.float32), np.full((1, 1, 4, 4), 4.0, np.float32)
    # d = ln 2 everywhere: sqrt(d² − 0.5 d²) = ln2 / √2 (the toolbox's silog would give 10·sqrt(0.15)·ln 2)
    got = float(build_loss("silog-dav2")(*_t(pred, gt, np.ones_like(gt, bool))))
    assert got == pytest.approx(np.log(2) / np.sqrt(2), rel=1e-6)


def test_silog_dav2_empty_mask_is_zero_with_finite_gradient():
    pred = torch.rand(1, 1, 4, 4, requires_grad=True)
    loss = build_loss("silog-dav2")(pred, torch.zeros(1, 1, 4, 4))
    loss.backward()
    assert float(loss.detach()) == 0 and torch.isfinite(pred.grad).all()


# --- MiDaS scale-and-shift-invariant + gradient matching ----------------------------------------------------------

def np_gradient_matching(res, mask, scales=4):
    total = 0.0
    for k in range(scales):
        s = 2**k
        r = np.where(mask, res, 0.0)[..., ::s, ::s].astype(np.float64)
        m = mask[..., ::s, ::s]
        acc = 0.0
        n, _, h, w = r.shape
        for i in range(n):
            for y in range(h):
                for x in range(w):
                    if x + 1 < w and m[i, 0, y, x] and m[i, 0, y, x + 1]:
                        acc += abs(r[i, 0, y, x + 1] - r[i, 0, y, x])
                    if y + 1 < h and m[i, 0, y, x] and m[i, 0, y + 1, x]:
                        acc += abs(r[i, 0, y + 1, x] - r[i, 0, y, x])
        total += acc / max(m.sum(), 1)
    return total


def np_ssi_gradient(pred, gt, valid, alpha=0.5, space="disparity"):
    m = valid & np.isfinite(gt) & (gt > 0)
    res = np.zeros(pred.shape, np.float64)
    for i in range(pred.shape[0]):
        p = pred[i][m[i]].astype(np.float64)
        t = gt[i][m[i]].astype(np.float64)
        t = 1 / t if space == "disparity" else t
        s, sh = np.linalg.lstsq(np.stack([p, np.ones_like(p)], 1), t, rcond=None)[0]
        full_t = np.zeros(pred.shape[1:])
        full_t[m[i]] = t
        res[i] = np.where(m[i], s * pred[i] + sh - full_t, 0.0)
    data = (res**2)[m].sum() / (2 * m.sum())
    return data + alpha * np_gradient_matching(res, m)


@pytest.mark.parametrize("space", ["disparity", "depth"])
def test_ssi_gradient_matches_numpy_and_ignores_invalid_pixels(space):
    pred, gt, valid = _data(h=16, w=13)
    if space == "disparity":
        pred = (1 / pred * 3.0 + 0.1).astype(np.float32)   # a disparity up to scale and shift
    loss = build_loss("ssi-gradient", space=space)
    got = float(loss(*_t(pred, gt, valid)))
    assert got == pytest.approx(np_ssi_gradient(pred, gt, valid, space=space), rel=1e-4)
    p2, g2 = _scramble_invalid(pred, gt, valid)
    assert float(loss(*_t(p2, g2, valid))) == pytest.approx(got, rel=1e-5)


def test_ssi_is_invariant_to_scale_and_shift_of_the_prediction():
    pred, gt, valid = _data()
    pred = (1 / pred).astype(np.float32)
    loss = build_loss("ssi-gradient")
    a = float(loss(*_t(pred, gt, valid)))
    b = float(loss(*_t(pred * 7.5 + 2.0, gt, valid)))
    assert a > 1e-4 and b == pytest.approx(a, rel=1e-3)
    exact = (1 / gt * 0.3 + 0.05).astype(np.float32)   # an exact affine disparity: zero loss
    assert float(loss(*_t(exact, gt, valid))) == pytest.approx(0.0, abs=1e-5)


def test_ssi_gradient_alpha_zero_is_the_data_term_and_gradient_flows():
    pred, gt, valid = _data()
    pred_t, gt_t, valid_t = _t(pred, gt, valid)
    pred_t.requires_grad_(True)
    loss = build_loss("ssi-gradient", alpha=0.0, space="depth")(pred_t, gt_t, valid_t)
    assert float(loss) == pytest.approx(np_ssi_gradient(pred, gt, valid, alpha=0.0, space="depth"), rel=1e-4)
    loss.backward()
    assert torch.isfinite(pred_t.grad).all() and float(pred_t.grad.abs().sum()) > 0
    assert float(pred_t.grad[~valid_t].abs().sum()) == 0


def test_ssi_gradient_empty_mask_is_zero():
    pred = torch.rand(2, 1, 8, 8, requires_grad=True)
    loss = build_loss("ssi-gradient")(pred, torch.full((2, 1, 8, 8), torch.nan))
    loss.backward()
    assert float(loss.detach()) == 0 and torch.isfinite(pred.grad).all()


# --- MegaDepth gradient matching on log depth -------------------------------------------------------------------

def test_gradient_matching_on_log_depth_matches_numpy_and_masks():
    pred, gt, valid = _data(h=17, w=11)
    loss = build_loss("gradient-matching")
    got = float(loss(*_t(pred, gt, valid)))
    res = np.log(pred.astype(np.float64)) - np.log(np.where(valid, gt, 1.0).astype(np.float64))
    assert got == pytest.approx(np_gradient_matching(res, valid), rel=1e-5)
    p2, g2 = _scramble_invalid(pred, gt, valid)
    assert float(loss(*_t(p2, g2, valid))) == pytest.approx(got, rel=1e-6)
    # blind to global scale (a constant in log depth), not to local structure
    assert float(loss(*_t(pred * 4.0, gt, valid))) == pytest.approx(got, rel=1e-4)
    assert float(loss(*_t(gt, gt, valid))) == pytest.approx(0.0, abs=1e-6)
