"""``depthforge bench``'s checks, profile, targets and device path, at tiny sizes (seconds each)."""
import json
import math
import os
import subprocess
import sys

import pytest
import torch

from depthforge.bench.checks import check_size
from depthforge.bench.device import augmentation, device_bench
from depthforge.bench.profile import op_class, profile_worker
from depthforge.bench.targets import targets
from depthforge.cli import main
from depthforge.data.transforms import JITTER_DEFAULTS, adjust_color, hflip
from depthforge.errors import DepthforgeError


def finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_bench_on_cuda_without_a_gpu_is_one_line_and_exit_1():
    env = {**os.environ, "DEPTHFORGE_NO_MALLOC_TUNING": "1"}
    proc = subprocess.run([sys.executable, "-m", "depthforge", "bench", "--device", "cuda"], capture_output=True,
                          text=True, timeout=120, env=env)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and "--device cuda: no CUDA device:" in proc.stderr, proc.stderr


@pytest.mark.parametrize("argv, needle", [
    (["--only", "train", "--size", "232", "320"], "--size 232 320: seed-unet takes sides that are multiples of 16"),
    (["--only", "models", "--models", "glpn,depth-anything-v2", "--model-size", "128", "128"],
     "--model-size 128 128: depth-anything-v2 takes sides that are multiples of 14"),
    (["--only", "models", "--models", "glpn", "--model-size", "16", "16"],
     "--model-size 16 16: glpn takes sides that are multiples of 32"),  # below the multiple
    (["--only", "profile", "--profile-size", "96", "144"], "--profile-size 96 144: depthformer takes sides"),
    (["--only", "device", "--device", "cpu", "--device-models", "seed-unet", "--device-size", "24", "40"],
     "--device-size 24 40: seed-unet takes sides that are multiples of 16"),
    (["--only", "profile", "--profile-models", "nope"], "--profile-models: unknown model(s) nope"),
    (["--only", "device", "--device", "tpu"], "--device tpu: not a device"),
])
def test_bad_sizes_and_names_are_one_line_and_exit_1(argv, needle, capsys):
    assert main(["bench", *argv]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err, err


def test_one_size_check_names_the_option_and_the_nearest_size_that_fits():
    assert check_size("--predict-size", "dpt", (28, 42), 14) == (28, 42)
    with pytest.raises(DepthforgeError, match=r"^bench --device-size 30 351: dpt takes sides that are multiples of 14 "
                                              r"\(its size multiple\); e.g. --device-size 28 350$"):
        check_size("--device-size", "dpt", (30, 351), 14)
    with pytest.raises(DepthforgeError, match=r"e.g. --size 32 32$"):  # below the multiple: up to it, never 0
        check_size("--size", "glpn", (16, 16), 32)


def test_operators_are_classed_arithmetic_or_memory_bound():
    assert {op_class(n) for n in ("aten::addmm", "aten::bmm", "aten::mkldnn_convolution", "aten::convolution_backward",
                                  "aten::baddbmm", "aten::linear")} == {"arithmetic"}
    assert op_class("aten::grid_sampler_2d_backward") == "sampling"
    # the fused deformable-attention kernel (models/msda.py) is sampling, forward and backward
    assert op_class("FusedDeformableSampling") == op_class("FusedDeformableSamplingBackward") == "sampling"
    assert op_class("aten::_softmax") == op_class("aten::_softmax_backward_data") == "softmax"
    assert {op_class(n) for n in ("aten::copy_", "aten::permute", "aten::cat", "aten::clone")} == {"layout"}
    assert op_class("aten::native_layer_norm_backward") == "normalisation"
    assert op_class("aten::gelu_backward") == op_class("aten::_foreach_add_") == "elementwise"
    assert op_class("AddmmBackward0") == "other"


def test_profile_worker_splits_a_real_step_by_operator():
    r = profile_worker({"model": "seed-unet", "kwargs": {"width": 0.25, "levels": 3}, "size": [32, 32],
                        "batch": 2, "steps": 1, "precision": "fp32", "top": 8})
    assert finite(r["step_s"]) and r["step_s"] > 0 and r["peak_rss_mb"] > 50 and r["gflop_per_step"] > 0
    assert 0 < r["arithmetic_share"] < 1 and len(r["top_ops"]) == 8
    shares = [op["share"] for op in r["top_ops"]]
    assert shares == sorted(shares, reverse=True) and sum(shares) <= 1 + 1e-9
    assert math.isclose(sum(r["by_class_s"].values()), r["ops_s"], rel_tol=1e-9)
    # a U-Net's time is in its convolutions
    assert any(op["op"] in ("aten::mkldnn_convolution", "aten::convolution_backward") for op in r["top_ops"][:3])
    assert r["top_memory_bound"]["class"] != "arithmetic"
    assert "deformable_sampling" not in r  # a U-Net has no deformable attention


def test_profile_worker_says_which_deformable_sampling_ran_and_times_the_kernel_as_sampling():
    from depthforge.models.msda import native_kernel

    r = profile_worker({"model": "depthformer", "kwargs": {"size": "micro"}, "size": [64, 64], "batch": 2,
                        "steps": 1, "precision": "fp32", "top": 40})
    if native_kernel() is None:
        assert r["deformable_sampling"] == "pytorch"
        return
    assert r["deformable_sampling"] == "fused kernel"
    kernel = [op for op in r["top_ops"] if op["op"].startswith("FusedDeformableSampling")]
    assert {op["class"] for op in kernel} == {"sampling"} and len(kernel) == 2  # forward and backward


def _prof(name, step, fraction):
    op = {"op": "aten::grid_sampler_2d", "class": "sampling", "share": 0.4, "self_s": 1.0, "calls": 1}
    return {"step_s": step, "precision": "bf16", "peak_rss_mb": 900.0, "gflops_per_s": 100.0 * fraction,
            "arithmetic_share": 0.2, "top_ops": [op], "top_memory_bound": op}


def test_targets_say_met_or_the_gap_and_the_operator_holding_a_miss():
    r = {"profile": {"size": [128, 160], "batch": 16, "models": {
            "depthformer": _prof("depthformer", 10.0, 0.05), "binsformer": _prof("binsformer", 1.0, 0.3)}},
         "train": {"size": [240, 320], "batch": 16, "settings": {"bf16_channels_last": {
             "step_s": 1.2, "gflops_per_s": 40.0, "peak_rss_mb": 3500.0}}},
         "ceiling": {"bf16_gflops": 100.0, "fp32_gflops": 10.0, "bf16_fast": True}}
    rows = {t["target"].split(",")[0].split(" at ")[0]: t for t in targets(r)}
    d = rows["depthformer training step"]
    assert d["met"] is False and d["gap"] == 2.0 and d["held_by"].startswith("aten::grid_sampler_2d (sampling, 40%")
    assert rows["binsformer training step"]["met"] is True and "held_by" not in rows["binsformer training step"]
    assert rows["dpt training step"]["met"] is None  # not profiled: not measured, never met
    assert rows["depthformer GFLOP/s"]["met"] is False and rows["depthformer GFLOP/s"]["gap"] == pytest.approx(4.0)
    assert rows["binsformer GFLOP/s"]["met"] is True
    seed = [t for t in targets(r) if t["target"].startswith("seed U-Net (")]
    assert [t["met"] for t in seed] == [True, False, False] and seed[1]["measured"] == pytest.approx(0.4)
    # without the bf16 setting: the fastest that ran, named
    r["train"]["settings"] = {"fp32": {"step_s": 2.0, "gflops_per_s": 20.0, "peak_rss_mb": 2000.0}}
    seed = [t for t in targets(r) if t["target"].startswith("seed U-Net (")]
    assert all("(fp32)" in t["target"] for t in seed) and [t["met"] for t in seed] == [False, False, True]
    # where bf16 is the slower (emulated, or AVX512-BF16 without AMX), fractions are of the fp32 ceiling
    r["ceiling"]["bf16_fast"] = False
    row = next(t for t in targets(r) if t["target"].startswith("depthformer GFLOP/s"))
    assert row["measured"] == pytest.approx(0.5) and "fp32 ceiling (bf16 is the slower here)" in row["unit"]
    # the GPU targets: only from a cuda device section
    gpu = {"device": "cuda", "name": "H100", "models": {
        "seed-unet": {"size": [240, 320], "train_samples_per_s": 2500.0, "pipeline_keeps_up": False},
        "depth-anything-v2": {"size": [518, 518], "predict": {"1": {"samples_per_s": 80.0},
                                                              "32": {"samples_per_s": 600.0}}}}}
    train, predict = targets({**r, "device": gpu})[-2:]
    assert train["measured"] == 2500 and train["met"] is False  # fast enough, but the pipeline falls behind
    assert predict["measured"] == 600 and predict["met"] is True
    assert all(t["met"] is None for t in targets({**r, "device": {**gpu, "device": "cpu"}})[-2:])
    # another size is never compared with the limits
    r["profile"]["size"] = [64, 64]
    assert all(t["met"] is None for t in targets(r) if "depthformer" in t["target"])


def test_device_augmentation_flips_depth_with_the_image_and_colours_the_image_only():
    torch.manual_seed(0)
    n, h, w = 32, 6, 10
    ramp = torch.linspace(0.3, 0.6, w)  # dark left, bright right: a flip shows through any colour change
    image = torch.stack([0.9 * ramp, ramp, 1.1 * ramp])[:, None].expand(n, 3, h, w).clone()
    depth = (1 + torch.arange(h * w, dtype=torch.float32).reshape(1, 1, h, w) / 6).expand(n, 1, h, w).clone()
    depth[::3, :, 0, :2] = 0  # invalid pixels stay 0, wherever the flip takes them
    aug = augmentation()
    params = aug.forward_parameters(image.shape)
    x, d = aug(image, depth, params=params)
    flipped = x[:, :, :, 0].mean((1, 2)) > x[:, :, :, -1].mean((1, 2))
    assert 0 < int(flipped.sum()) < n  # both kinds drawn
    for i in range(n):  # depth: the image's flip, its metres untouched (no colour change, no clamp to [0, 1])
        assert torch.equal(d[i], depth[i].flip(-1) if flipped[i] else depth[i]), i
    # the image: training's own flip and adjust_color, with the factors kornia drew
    p = {item.name.split("_")[0]: item.data for item in params}
    assert torch.equal(p["RandomHorizontalFlip"]["batch_prob"].bool(), flipped)
    factors = {k: p["ColorJitter"][f"{k}_factor"] for k in ("brightness", "contrast", "saturation")}
    factors["gamma"] = p["RandomGamma"]["gamma_factor"]
    for k, f in factors.items():  # drawn in training's ranges (``jitter: true``)
        lo, hi = JITTER_DEFAULTS[k] if k == "gamma" else (1 - JITTER_DEFAULTS[k], 1 + JITTER_DEFAULTS[k])
        assert lo <= float(f.min()) < float(f.max()) <= hi, k
    for i in range(n):
        s = {"image": image[i], "depth": depth[i], "valid": depth[i] > 0}
        s = adjust_color(hflip(s) if flipped[i] else s, **{k: float(f[i]) for k, f in factors.items()})
        assert torch.allclose(x[i], s["image"], atol=1e-5), i


def test_device_path_runs_on_the_cpu_at_a_tiny_size():
    d = device_bench(torch.device("cpu"), models=["seed-unet"], size=(32, 32), batch=2, steps=1,
                     predict_batches=[1, 2], kwargs_key="test", samples=3)
    json.dumps(d)
    assert d["device"] == "cpu" and d["cached_samples"] == 3 and finite(d["cache_s"]["32x32"])
    m = d["models"]["seed-unet"]
    assert m["size"] == [32, 32] and m["batch"] == 2
    for k in ("train_samples_per_s", "train_peak_mb", "pipeline_samples_per_s"):
        assert finite(m[k]) and m[k] > 0, (k, m)
    assert set(m["predict"]) == {"1", "2"} and all(p["samples_per_s"] > 0 for p in m["predict"].values())
