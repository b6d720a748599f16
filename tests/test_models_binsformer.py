"""BinsFormer (models/binsformer.py) and the bins chamfer loss (losses/bins.py), at the "micro" test size."""
from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch

from depthforge.errors import DepthforgeError
from depthforge.losses import build_loss
from depthforge.losses.bins import bins_chamfer
from depthforge.models import build_model

SIZE = (64, 96)  # every Swin level of this size needs window padding (see test_onnx_export)


def micro(**kw):
    torch.manual_seed(0)
    return build_model("binsformer", size="micro", **kw)


def images(n=2, size=SIZE, seed=0):
    return torch.rand(n, 3, *size, generator=torch.Generator().manual_seed(seed))


def test_forward_at_an_odd_size_padded_to_the_multiple():
    from depthforge.inference.resize import infer

    m = micro().eval()
    assert m.multiple == 32 and m.metric and m.max_depth == 10.0
    x = images(size=(70, 101))
    with torch.no_grad():
        y = infer(m, x, multiple=m.multiple)
        padded = m(torch.nn.functional.pad(x, (13, 14, 13, 13), mode="replicate"))
    assert y.shape == (2, 1, 70, 101) and y.dtype == torch.float32 and torch.isfinite(y).all()
    assert padded.shape == (2, 1, 96, 128)
    torch.testing.assert_close(y, padded[..., 13:83, 13:114])


def test_bins_probabilities_and_depth_range():
    m = micro(min_depth=0.5, max_depth=80.0).eval()
    with torch.no_grad():
        layers = m.decode(images())
    assert sorted(layers) == [0, 1, 2]
    for r in layers.values():
        c, e, p, d = r["centres"], r["edges"], r["prob"], r["depth"]
        assert c.shape == (2, 16) and e.shape == (2, 17) and p.shape == (2, 16, 16, 24) and d.shape == (2, 1, 16, 24)
        assert (c.diff(dim=1) > 0).all() and (c > 0.5).all() and (c < 80.0).all()
        torch.testing.assert_close(e[:, 0], torch.full((2,), 0.5))
        torch.testing.assert_close(e[:, -1], torch.full((2,), 80.0))
        assert (p >= 0).all()
        torch.testing.assert_close(p.sum(1), torch.ones(2, 16, 24))
        # Σ p·c before the output clamp: the clamp must not be what keeps depth in range.
        assert (d >= 0.5 - 1e-4).all() and (d <= 80.0 + 1e-4).all()
        torch.testing.assert_close(d, (p * c[:, :, None, None]).sum(1, keepdim=True))
    with torch.no_grad():
        y = m(images())
    assert (y >= 0.5).all() and (y <= 80.0).all()
    torch.testing.assert_close(y, torch.nn.functional.interpolate(layers[2]["depth"], size=SIZE, mode="bilinear",
                                                                  align_corners=True))


def test_forward_train_and_scene_loss():
    m = micro(scene_classes=4)
    assert m.aux == [(0.25, 0), (0.5, 1)]
    out = m.forward_train(images())
    assert set(out) == {"depth", "aux", "bins", "scene_logits", "aux_scene_logits"}
    assert out["depth"].shape == (2, 1, *SIZE) and out["bins"].shape == (2, 16) and out["scene_logits"].shape == (2, 4)
    assert [w for w, _ in out["aux"]] == [0.25, 0.5] and all(d.shape == (2, 1, *SIZE) for _, d in out["aux"])
    assert len(out["aux_scene_logits"]) == 2
    ce = m.extra_loss(out, {"scene": torch.tensor([1, 3])})
    expect = sum(torch.nn.functional.cross_entropy(lg, torch.tensor([1, 3]))
                 for lg in [out["scene_logits"], *out["aux_scene_logits"]]) * 1e-2
    torch.testing.assert_close(ce, expect)
    ce.backward()
    assert m.scene_head[0].weight.grad.abs().sum() > 0
    assert m.extra_loss(out, {"scene": torch.tensor([-1, 2])}) > 0  # -1: unknown scene, left out
    assert m.extra_loss(out, {}) is None
    assert m.extra_loss(out, {"scene": torch.tensor([0.5, 1.0])}) is None  # not integer labels
    with pytest.raises(ValueError, match="out of range"):
        m.extra_loss(out, {"scene": torch.tensor([0, 4])})
    plain = micro().forward_train(images())
    assert set(plain) == {"depth", "aux", "bins"} and micro().extra_loss(plain, {"scene": torch.tensor([1, 2])}) is None


def test_paper_sizes_and_bad_arguments():
    m = micro(dec_layers=9, n_bins=8)
    assert m.aux == [(0.25, 2), (0.5, 5)]  # the paper's auxiliary layers of 9
    assert m.n_bins == 8 and len(m.layers) == 9
    assert m.encoder() is m.backbone
    for bad in ({"size": "huge"}, {"min_depth": 0.0}, {"max_depth": -1.0}, {"n_bins": 1},
                {"level_schedule": "sideways"}, {"hidden": 30}):
        with pytest.raises(DepthforgeError) as e:
            build_model("binsformer", **{"size": "micro", **bad})
        assert "binsformer" in str(e.value) and "\n" not in str(e.value)


def test_rebuild_from_spec_kwargs_and_checkpoint(tmp_path):
    from depthforge.models.checkpoint import load_checkpoint, meta, save_model

    m = micro(scene_classes=3, level_schedule="div")
    m.train()
    with torch.no_grad():
        m(images(seed=1))  # move the BN running statistics off their initial values
    m.eval()
    spec = m.spec_kwargs({"size": "micro", "scene_classes": 3, "level_schedule": "div"})
    assert spec["pretrained"] is False and spec["backbone_config"]["embed_dim"] == 24
    torch.manual_seed(123)  # a different init, so only the state dict can make them agree
    again = build_model("binsformer", **spec).eval()
    again.load_state_dict(m.state_dict(), strict=True)
    x = images()
    with torch.no_grad():
        assert torch.equal(again(x), m(x))
    save_model(tmp_path / "bf.pt", m, meta("binsformer", spec, m))
    loaded, info = load_checkpoint(tmp_path / "bf.pt")
    with torch.no_grad():
        assert torch.equal(loaded(x), m(x))


def test_onnx_export_dynamic_sizes():
    """TorchScript exporter, opset 17, dynamic batch/height/width; onnxruntime agrees with PyTorch at other sizes.

    The example size matters: ``transformers``' Swin crops its window padding under a Python ``if`` that tracing
    freezes. Traced at a size where some level needs no padding (e.g. 224×224 for window 7), the crop is dropped
    and other sizes fail in a Reshape; traced where every level is padded (64×96 here) the crop is kept, and it is
    a no-op where a level needs none. The deformable attention itself exports with dynamic sizes.
    """
    ort = pytest.importorskip("onnxruntime")
    m = micro().eval()
    buf = io.BytesIO()
    axes = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (images(1),), buf, dynamo=False, opset_version=17, input_names=["image"],
                          output_names=["depth"], dynamic_axes={"image": axes, "depth": axes})
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    for n, size in ((2, SIZE), (1, (96, 160)), (1, (224, 224))):
        x = images(n, size, seed=2)
        with torch.no_grad():
            ref = m(x).numpy()
        y = sess.run(None, {"image": x.numpy()})[0]
        assert y.shape == ref.shape
        assert np.abs(y - ref).max() <= 1e-4


def synthetic_batch(n=2, size=SIZE):
    from depthforge.data.synth import render_scene

    s = [render_scene(i, "train", size=size) for i in range(n)]
    image = torch.from_numpy(np.stack([x["image"] for x in s])).permute(0, 3, 1, 2).float()
    depth = torch.from_numpy(np.stack([x["depth"] for x in s]))[:, None].float()
    return image, depth


@pytest.mark.slow
def test_a_few_adam_steps_lower_silog_aux_and_chamfer():
    image, depth = synthetic_batch()
    valid = depth > 0
    m = micro()
    silog, chamfer = build_loss("silog"), build_loss("bins-chamfer")
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        out = m.forward_train(image)
        loss = (silog(out["depth"], depth, valid) + sum(w * silog(d, depth, valid) for w, d in out["aux"])
                + 0.1 * chamfer(out["bins"], depth, valid))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(np.isfinite(losses))
    assert np.mean(losses[-3:]) < 0.8 * losses[0], losses


# ------------------------------------------------------------------------------------------- chamfer loss

def brute_chamfer(centres, target, valid):
    """AdaBins' loss written out with loops (pytorch3d chamfer_distance, squared distances, mean reductions)."""
    per = []
    for c, t, v in zip(centres.tolist(), target.flatten(1).tolist(), valid.flatten(1).tolist()):
        ys = [y for y, ok in zip(t, v) if ok and y >= 1e-3]
        if not ys:
            continue
        a = sum(min((ci - y) ** 2 for y in ys) for ci in c) / len(c)
        b = sum(min((y - ci) ** 2 for ci in c) for y in ys) / len(ys)
        per.append(a + b)
    return sum(per) / len(per)


def test_chamfer_matches_brute_force():
    g = torch.Generator().manual_seed(3)
    centres = torch.sort(torch.rand(3, 5, generator=g) * 10, dim=1).values.requires_grad_()
    target = torch.rand(3, 1, 4, 6, generator=g) * 10
    target[0, 0, 0, :3] = 0.0  # holes
    target[1, 0, 1, 1] = float("nan")
    target[1, 0, 2, 2] = 5e-4  # below AdaBins' 1e-3
    valid = torch.ones_like(target, dtype=torch.bool)
    valid[2, 0, :2] = False
    got = bins_chamfer(centres, target, valid)
    expect = brute_chamfer(centres.detach(), torch.nan_to_num(target), valid & torch.isfinite(target))
    assert abs(got.item() - expect) < 1e-5 * max(1.0, expect)
    got.backward()
    assert torch.isfinite(centres.grad).all() and centres.grad.abs().sum() > 0
    # an image without valid depth is left out; an all-invalid batch gives 0 with a zero gradient
    valid[1] = False
    expect = brute_chamfer(centres.detach(), torch.nan_to_num(target), valid & torch.isfinite(target))
    assert abs(bins_chamfer(centres, target, valid).item() - expect) < 1e-5 * max(1.0, expect)
    c = centres.detach().clone().requires_grad_()
    zero = bins_chamfer(c, target, torch.zeros_like(valid))
    zero.backward()
    assert zero.item() == 0.0 and torch.equal(c.grad, torch.zeros_like(c))


def test_chamfer_point_cap_is_seeded():
    g = torch.Generator().manual_seed(4)
    centres = torch.sort(torch.rand(2, 8, generator=g) * 10, dim=1).values
    target = torch.rand(2, 1, 40, 50, generator=g) * 10
    full = bins_chamfer(centres, target, max_points=None)
    capped = bins_chamfer(centres, target, max_points=500)
    assert capped.item() == bins_chamfer(centres, target, max_points=500).item()  # same draw each call
    assert abs(capped.item() - full.item()) < 0.25 * full.item()  # 500 of 2000 uniform points: close
    assert bins_chamfer(centres, target, max_points=2000).item() == pytest.approx(full.item(), rel=1e-6)
    loss = build_loss("bins-chamfer", max_points=500, seed=1)
    same = bins_chamfer(centres, target, max_points=500, generator=torch.Generator().manual_seed(1))
    assert loss(centres, target).item() == pytest.approx(same.item())
    assert loss(centres, target).item() != pytest.approx(same.item(), rel=1e-9)  # the module's draws move on
    with pytest.raises(DepthforgeError):
        build_loss("bins-chamfer", max_points=0)
