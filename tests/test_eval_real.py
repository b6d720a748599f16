"""The evaluation protocol on the real NYU and KITTI frames of ../shared/realdata: compute_metrics keeps exactly the
pixels of the Eigen / Garg crop with ground truth in (1e-3, cap), checked against a numpy implementation written
here from the reference fixture's description; and ``evaluate`` on a folder of the real NYU frames."""
import io
import json
import shutil
from contextlib import redirect_stdout

import numpy as np
import pytest
import torch
from dataclasses import replace
from PIL import Image

from depthforge.models.checkpoint import meta, save_model
from depthforge.cli import main
from depthforge.data import build_dataset
from depthforge.evaluation.evaluate import NYU_ANCHORS, evaluate
from depthforge.evaluation.metrics import METRIC_NAMES, compute_metrics
from depthforge.models import build_model

MIN_DEPTH = 1e-3


def reference_mask(gt: np.ndarray, crop: str, cap: float) -> np.ndarray:
    """The pixels the protocol scores, from ../shared/fixtures/README.md: NYU rows 45:471, columns 41:601 (at
    480x640); KITTI rows int(0.40810811 H):int(0.99189189 H), columns int(0.03594771 W):int(0.96405229 W)."""
    h, w = gt.shape
    keep = np.zeros((h, w), bool)
    if crop == "eigen":
        assert (h, w) == (480, 640)
        keep[45:471, 41:601] = True
    else:
        keep[int(0.40810811 * h):int(0.99189189 * h), int(0.03594771 * w):int(0.96405229 * w)] = True
    return keep & (gt > MIN_DEPTH) & (gt < cap)


def reference_metrics(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray, cap: float) -> dict[str, float]:
    """Steps 3-4 of the fixture README; the ratios in float32 as the toolbox (a clamped prediction can sit within
    rounding of 1.25^i), the rest in float64."""
    g32, p32 = gt[mask].astype(np.float32), np.clip(pred[mask], MIN_DEPTH, cap).astype(np.float32)
    r = np.maximum(g32 / p32, p32 / g32)
    g, p = g32.astype(np.float64), p32.astype(np.float64)
    e = np.log(p) - np.log(g)
    out = {f"d{i}": np.mean(r < 1.25**i) for i in (1, 2, 3)}
    out.update(abs_rel=np.mean(np.abs(g - p) / g), sq_rel=np.mean((g - p) ** 2 / g),
               rmse=np.sqrt(np.mean((g - p) ** 2)), rmse_log=np.sqrt(np.mean(e**2)), log10=np.mean(np.abs(np.log10(g) - np.log10(p))),
               silog=100 * np.sqrt(np.mean(e**2) - np.mean(e) ** 2))
    return out


def check_against_reference(got: dict, want: dict) -> None:
    for k in ("d1", "d2", "d3"):  # shares of pixels: one pixel more or fewer moves them by > 1e-6
        assert got[k] == pytest.approx(want[k], abs=1e-9), k
    for k in METRIC_NAMES:
        assert got[k] == pytest.approx(want[k], rel=1e-4), k


def test_reference_implementation_matches_the_toolbox_fixture(fixtures):
    """The numpy reference above reproduces the Monocular-Depth-Estimation-Toolbox numbers, so comparing with it
    below means comparing with the toolbox."""
    ref = np.load(fixtures / "metrics_reference.npz")
    names = [str(n) for n in ref["metric_names"]]
    for key, crop, scale, cap in (("nyu", "eigen", 1000.0, 10.0), ("kitti", "garg", 256.0, 80.0)):
        gt = ref[f"{key}_gt_0"].astype(np.float64) / scale
        ours = reference_metrics(ref[f"{key}_pred_0"], gt, reference_mask(gt, crop, cap), cap)
        for name, value in zip(names, ref[f"{key}_per_image"][0]):
            assert ours[name] == pytest.approx(value, rel=1e-4, abs=1e-7), (key, name)


def prediction(gt: np.ndarray, seed: int) -> np.ndarray:
    """About half the pixels 10 % too far with noise (inside δ1), the rest twice too far (outside δ1; inside δ3);
    invalid pixels get an arbitrary depth. So δ1 is the share of 'good' pixels among those scored."""
    rng = np.random.default_rng(seed)
    good = rng.random(gt.shape) < 0.5
    base = np.where(gt > 0, gt, rng.uniform(0.5, 5, gt.shape))
    return (base * np.where(good, 1.1 + rng.uniform(-0.05, 0.05, gt.shape), 2.0)).astype(np.float32)


@pytest.mark.parametrize("name, encoding, scale, protocol, crop, cap, low_cap, size, n", [
    ("nyu", "mm", 1000.0, "nyu", "eigen", 10.0, 5.0, (480, 640), 5),
    ("kitti", "kitti256", 256.0, "kitti", "garg", 80.0, 30.0, (375, 1242), 3),
])
def test_real_frames_score_exactly_the_protocol_pixels(realdata, name, encoding, scale, protocol, crop, cap, low_cap,
                                                       size, n):
    ds = build_dataset({"name": "folder", "root": str(realdata / name), "depth_encoding": encoding})
    assert len(ds) == n
    for i in range(n):
        s = ds[i]
        gt = s["depth"][0].numpy()
        assert gt.shape == size
        raw = np.asarray(Image.open(realdata / name / f"depth_{s['name'].split('_', 1)[1]}.png"))
        np.testing.assert_allclose(gt, raw / scale, rtol=1e-6)  # the file's units, converted once
        pred = prediction(gt, i)
        for c in (cap, low_cap):  # the protocol's cap, and a lower one that drops many real pixels
            mask = reference_mask(gt, crop, c)
            inside = mask.sum()
            assert 1000 < inside < (gt > 0).sum()  # the crop (and the cap) remove valid pixels
            got = compute_metrics(pred, gt, protocol, valid=s["valid"][0].numpy(), max_depth=None if c == cap else c)
            check_against_reference(got, reference_metrics(pred, gt, mask, c))
    if name == "kitti":  # the real LiDAR reaches past 80 m: the cap is not vacuous
        assert max(float(ds[i]["depth"].max()) for i in range(n)) > 80.0


@pytest.fixture
def tiny_checkpoint(tmp_path):
    """A fresh seed U-Net saved without training baselines (as a model exported outside `depthforge train`)."""
    torch.manual_seed(0)
    path = tmp_path / "tiny.ckpt"
    kwargs = {"width": 0.125, "levels": 3}
    model = build_model("seed-unet", **kwargs)
    model.set_contract(replace(model.contract, input_size=(48, 64)))
    save_model(path, model, meta("seed-unet", kwargs, model))  # no recipe: evaluation is told the protocol
    return path


def test_evaluate_real_nyu_frames_with_a_checkpoint_without_baselines(realdata, tiny_checkpoint, tmp_path):
    data = tmp_path / "nyu_frames"
    (data / "rgb").mkdir(parents=True)
    (data / "depth").mkdir()
    for i in range(1, 6):
        shutil.copy(realdata / "nyu" / f"rgb_{i}.png", data / "rgb" / f"{i:04d}.png")
        shutil.copy(realdata / "nyu" / f"depth_{i}.png", data / "depth" / f"{i:04d}.png")
    res = evaluate(tiny_checkpoint, data=str(data), protocol="nyu", out=tmp_path / "eval", progress=False)
    assert res["protocol"] == "nyu" and res["max_depth"] == 10.0 and res["images"] == 5
    for key in (*METRIC_NAMES, "seed_loss", "seed_acc", "ordinal_err", "edge_f1"):
        assert np.isfinite(res["model"][key]), key
    assert res["baselines"] == {} and res["anchors"] == NYU_ANCHORS
    assert [row["name"] for row in res["per_image"]] == [f"{i:04d}" for i in range(1, 6)]
    saved = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert saved["images"] == 5 and saved["anchors"] == NYU_ANCHORS
    assert (tmp_path / "eval" / "best_worst.png").is_file()

    buf = io.StringIO()  # the command prints the published numbers after the table
    with redirect_stdout(buf):
        assert main(["eval", "--checkpoint", str(tiny_checkpoint), "--data", str(data), "--protocol", "nyu", "--limit", "1",
                     "--out", str(tmp_path / "eval1"), "--no-progress"]) == 0
    line = next(ln for ln in buf.getvalue().splitlines() if ln.startswith("published δ1 on NYU-Depth v2:"))
    assert "DenseDepth 0.846 · BinsFormer 0.925 · Depth Anything V2 0.984 — this model: " in line
