from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from depthforge.losses import LOSSES, build_loss, image_gradients, seed_loss, ssim_map, ssim_tf


# every loss of a depth map (the bins loss takes bin centres instead: tests/test_models_binsformer.py)
DEPTH_LOSSES = sorted(n for n in LOSSES if LOSSES.info[n].get("inputs") != "bins")


def _case(fixtures, case):
    """The TF reference arrays of one case, NHWC -> NCHW tensors."""
    z = np.load(fixtures / "seed_loss_reference.npz")
    nchw = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))  # noqa: E731
    return (nchw(z[f"{case}_y_true"]), nchw(z[f"{case}_y_pred"]), float(z[f"{case}_loss"]), z[f"{case}_per"],
            z[f"{case}_ssim"], nchw(z[f"{case}_grad"]))


@pytest.mark.parametrize("case", ["smooth_close", "smooth_vs_noisy", "uniform_noise"])
def test_seed_loss_matches_tensorflow(fixtures, case):
    y_true, y_pred, loss, per, ssim, grad = _case(fixtures, case)
    y_pred.requires_grad_()
    everywhere = torch.ones_like(y_true, dtype=torch.bool)
    ours = seed_loss(y_pred, y_true, everywhere)
    ours.mean().backward()
    # Measured: loss <= 3.2e-7, per <= 5.4e-7, ssim <= 1.1e-6, gradient <= 2.9e-8 (gradients are 1e-7..2e-4).
    assert ours.mean().item() == pytest.approx(loss, abs=1e-5)
    np.testing.assert_allclose(ours.detach().numpy(), per, rtol=0, atol=1e-5)
    # The definition in float64 is TensorFlow's to its own float32 rounding (measured <= 1.8e-6); in float32 the
    # blur's matrix products sum in a CPU-dependent order: <= 1.1e-6 on an Intel Xeon, 1.2e-5 on an AMD EPYC.
    np.testing.assert_allclose(ssim_tf(y_pred.detach().double(), y_true.double(), 1.0).numpy(), ssim, rtol=0,
                               atol=5e-6)
    np.testing.assert_allclose(ssim_tf(y_pred.detach(), y_true, 1.0).numpy(), ssim, rtol=0, atol=3e-5)
    np.testing.assert_allclose(y_pred.grad.numpy(), grad.numpy(), rtol=0, atol=1e-7)


def test_module_is_tensorflow_loss(fixtures):
    # uniform_noise has no zero targets, so the project's mask (target > 0) keeps every pixel.
    y_true, y_pred, loss, *_ = _case(fixtures, "uniform_noise")
    assert build_loss("seed", max_depth=1.0)(y_pred, y_true, None).item() == pytest.approx(loss, abs=1e-5)


def test_seed_loss_takes_metres_and_normalises_inside(fixtures):
    # the seed trained on depth / 10 m: the loss of metres with max_depth 10 is TF's loss of the normalised maps
    y_true, y_pred, loss, *_ = _case(fixtures, "uniform_noise")
    assert build_loss("seed", max_depth=10.0)(y_pred * 10, y_true * 10).item() == pytest.approx(loss, abs=1e-5)


def test_zero_targets_are_masked(fixtures):
    y_true, y_pred, tf_loss, *_ = _case(fixtures, "smooth_close")  # its targets hold exact zeros
    loss = build_loss("seed", max_depth=1.0)
    valid = torch.ones_like(y_true, dtype=torch.bool)
    out = loss(y_pred, y_true, valid).item()
    # TensorFlow's loss counts the 2,828 zeros as depth; here they are left out, so the figure differs from it ...
    assert abs(out - tf_loss) > 1e-4, (out, tf_loss)  # measured 6.5e-4; with every pixel counted, <= 3.2e-7
    # ... and equals the loss with those pixels holding any value and masked out by hand
    other = torch.where(y_true > 0, y_true, torch.full_like(y_true, 0.7))
    assert loss(y_pred, other, y_true > 0).item() == pytest.approx(out, abs=1e-7)


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    target = 0.5 + 5 * torch.rand(2, 1, 32, 40, generator=g)
    pred = (0.5 + 5 * torch.rand(2, 1, 32, 40, generator=g)).requires_grad_()
    return pred, target


@pytest.mark.parametrize("name", DEPTH_LOSSES)
def test_invalid_pixels_never_nan_and_never_count(name):
    loss = build_loss(name)
    pred, target = _batch()
    valid = torch.ones_like(target, dtype=torch.bool)
    valid[0, :, :, :7] = False
    bad = target.clone()
    bad[0, :, :3] = float("nan")
    bad[0, :, 5] = float("inf")
    bad[1, :, :, 30:] = 0
    bad[0, :, :, :7] = -3.0  # masked by valid
    masked = (bad > 0) & torch.isfinite(bad) & valid
    out = loss(pred, bad, valid)
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(pred.grad).all()
    # Whatever the target holds at invalid pixels, the loss is the same.
    other = torch.where(masked, target, torch.full_like(target, 123.0))
    assert loss(pred, other, masked).item() == pytest.approx(out.item(), rel=1e-6)
    assert loss(pred, target, masked).item() == pytest.approx(out.item(), rel=1e-6)


@pytest.mark.parametrize("name", DEPTH_LOSSES)
def test_all_invalid_gives_zero(name):
    pred, target = _batch()
    out = build_loss(name)(pred, torch.zeros_like(target), torch.ones_like(target, dtype=torch.bool))
    out.backward()
    assert out.item() == 0 and torch.count_nonzero(pred.grad) == 0


@pytest.mark.parametrize("name", DEPTH_LOSSES)
def test_perfect_prediction_is_zero_loss(name):
    pred, _ = _batch()
    x = torch.arange(40.0) / 40 + 1
    ramp = pred.detach() * 0 + x  # a plane: zero second derivative
    # a loss of disparity predictions is perfect on the inverse of the depth
    perfect = (1 / ramp if LOSSES.info[name].get("pred") == "disparity" else ramp).requires_grad_()
    out = build_loss(name)(perfect, ramp.detach(), None)
    out.backward()
    assert out.item() == pytest.approx(0, abs=1e-6) and torch.isfinite(perfect.grad).all()


def test_ssim_averages_windows_with_valid_centre():
    pred, target = _batch()
    valid = torch.zeros_like(target, dtype=torch.bool)
    valid[..., 12:] = True  # window centres are columns 5..34, so map columns 7.. are valid
    expected = ssim_map(pred.detach(), target)[..., 7:].mean(dim=(1, 2, 3))
    torch.testing.assert_close(ssim_tf(pred.detach(), target, 1.0, valid), expected)
    assert torch.isnan(ssim_tf(pred.detach(), target, 1.0, torch.zeros_like(valid))).all()
    assert ssim_tf(target, target).tolist() == pytest.approx([1.0, 1.0])


def test_ssim_rejects_small_images():
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim_tf(torch.rand(1, 1, 8, 40), torch.rand(1, 1, 8, 40))


def test_image_gradients_are_forward_differences_with_zero_border():
    x = torch.tensor([[1.0, 2.0, 4.0], [3.0, 7.0, 8.0]])[None, None]
    dy, dx = image_gradients(x)
    assert dy[0, 0].tolist() == [[2, 5, 4], [0, 0, 0]]
    assert dx[0, 0].tolist() == [[1, 2, 0], [4, 1, 0]]


def test_gradient_term_needs_both_ends_valid():
    # Only the (masked) jump at column 20 differs between pred and target.
    target = torch.ones(1, 1, 16, 40)
    pred = target.clone()
    pred[..., 20:] = 2.0
    target[..., 20:] = 2.0
    target[..., 19] = 9.0  # a wrong value at an invalid column
    valid = torch.ones_like(target, dtype=torch.bool)
    valid[..., 19] = False
    loss = build_loss("seed", w_ssim=0.0, max_depth=1.0)
    assert loss(pred, target, valid).item() == 0
    valid[..., 19] = True
    # now Δx differs by |0 − 8| and |1 − (−7)| around column 19, on 16 rows of 640 pixels; L1 adds 0.1·|1 − 9|
    assert loss(pred, target, valid).item() == pytest.approx((8 + 8) * 16 / 640 + 0.1 * 8 * 16 / 640)


def test_seed_article_smoothness_is_second_derivative():
    x = torch.arange(40.0)
    quad = (0.01 * x**2).expand(1, 1, 16, 40).contiguous()  # ∂²/∂x² = 0.02, ∂²/∂y² = 0
    out = build_loss("seed-article", max_depth=1.0)(quad, quad, None)
    assert out.item() == pytest.approx(0.1 * 0.02, rel=1e-5)
    assert build_loss("seed-article", w_smooth=0.0, max_depth=1.0)(quad, quad, None).item() == pytest.approx(0, abs=1e-7)


def test_silog_known_values():
    _, target = _batch()
    loss = build_loss("silog")
    # A global scale c: g = ln c everywhere -> 10·sqrt(0.15)·|ln c|.
    assert loss(2 * target, target, None).item() == pytest.approx(10 * math.sqrt(0.15) * math.log(2), rel=1e-5)
    g = torch.log(target[0]) - torch.log(target[1])
    expected = 10 * torch.sqrt((g**2).mean() - 0.85 * g.mean() ** 2)
    assert loss(target[:1], target[1:], None).item() == pytest.approx(expected.item(), rel=1e-5)


def test_unknown_loss_names_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown loss 'ssim'.*known: .*seed, seed-article, silog"):
        build_loss("ssim")
