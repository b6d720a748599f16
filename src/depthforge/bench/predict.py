"""Prediction figures: one image through PyTorch fp32/bf16, onnxruntime fp32/int8 and OpenVINO fp32/bf16/int8,
each with its difference from PyTorch fp32 and its δ1 on held-out synthetic rooms."""
from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .machine import brief, say

def synth_batches(split: str, n: int, size) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(images [n,3,H,W], depth [n,1,H,W] metres, valid) of synthetic rooms of ``split``."""
    from ..data.synth import SynthDataset

    ds = SynthDataset(split=split, n=n, size=tuple(size), cache=False)
    samples = [ds[i] for i in range(n)]
    return tuple(torch.stack([s[k] for s in samples]) for k in ("image", "depth", "valid"))


def brief_training(width: float, size, steps: int, batch: int = 4, n: int = 24) -> tuple[torch.nn.Module, dict]:
    """A seed U-Net trained ``steps`` Adam steps (bf16, seed loss) on ``n`` synthetic training rooms."""
    from ..losses import build_loss
    from ..models import build_model
    from ..models.checkpoint import meta
    from ..training.step import optimizer_step

    torch.manual_seed(0)
    model = build_model("seed-unet", width=width)
    images, depth, valid = synth_batches("train", n, size)
    loss_fn = build_loss("seed")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, amsgrad=True)
    model.train()
    for step in range(steps):
        idx = torch.arange(step * batch, (step + 1) * batch) % n
        optimizer_step(model, loss_fn, opt, {"image": images[idx], "depth": depth[idx], "valid": valid[idx]},
                       bf16=True)
    model.eval()
    return model, meta("seed-unet", {"width": width}, model)


def _delta1(pred: torch.Tensor, depth: torch.Tensor, valid: torch.Tensor, output: str) -> float:
    from ..evaluation.metrics import compute_metrics, get_protocol, to_metres

    protocol = get_protocol("none", float(depth[valid].max()) + 1e-3)
    d1 = []
    for p, g, v in zip(pred[:, 0].numpy(), depth[:, 0].numpy(), valid[:, 0].numpy()):
        mask = protocol.mask(g, v)
        d1.append(compute_metrics(to_metres(p, g, mask, output), g, protocol, valid=mask)["d1"])
    return float(np.nanmean(d1))


def _time(fn: Callable[[], Any], n: int) -> float:
    fn()  # warm-up (OpenVINO compiles per shape here)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def predict_table(checkpoint: str | os.PathLike | None = None, *, size=(240, 320), width: float = 1.0,
                  steps: int = 20, test_n: int = 8, calib_n: int = 4, n: int = 5,
                  flops_roof: dict | None = None, progress: bool = False) -> dict[str, Any]:
    """One image (batch 1) at ``size`` through every back end and precision, side by side.

    The model: ``checkpoint``, else a seed U-Net briefly trained (``steps`` steps; 0: random weights).
    Rows: ms per image (median of ``n``), max |difference| from PyTorch fp32 on the first test image (the
    model's output units), δ1 over ``test_n`` held-out synthetic rooms (split "test"). int8 is onnxruntime's
    static QDQ quantisation (``inference.quantize``) calibrated on ``calib_n`` synthetic training rooms.
    """
    from ..inference.export import export_module
    from ..inference.onnx import load_onnx
    from ..inference.openvino import load_openvino
    from ..inference.quantize import quantize_onnx

    if checkpoint is not None:
        from ..inference.load import open_module

        model, info, _ = open_module(checkpoint)
        source = f"model {checkpoint}"
    else:
        say(progress, f"prediction: training a seed U-Net for {steps} steps ...")
        model, info = brief_training(width, size, steps)
        source = (f"seed-unet width {width} trained {steps} steps on synthetic rooms" if steps
                  else f"seed-unet width {width} with random weights")
    model = model.cpu().eval()
    m = model.multiple
    h, w = (-(-int(s) // m) * m for s in size)
    images, depth, valid = synth_batches("test", test_n, (h, w))
    output = model.contract.output
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="depthforge-bench-") as tmp:
        fp32_onnx, int8_onnx = Path(tmp) / "model.onnx", Path(tmp) / "model-int8.onnx"
        say(progress, "prediction: exporting and quantising ...")
        export_module(model, info, fp32_onnx, check=False)
        calib, _, _ = synth_batches("train", calib_n, (h, w))
        quantize_onnx(fp32_onnx, int8_onnx, [x[None].numpy() for x in calib])

        def torch_forward(bf16: bool):
            def f(x):
                with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    return model(x).float()
            return f

        backends = {
            "torch_fp32": lambda: torch_forward(False),
            "torch_bf16": lambda: torch_forward(True),
            "onnxruntime_fp32": lambda: load_onnx(fp32_onnx, "cpu").backend.forward,
            "onnxruntime_int8": lambda: load_onnx(int8_onnx, "cpu").backend.forward,
            "openvino_fp32": lambda: load_openvino(fp32_onnx, precision="fp32").backend.forward,
            "openvino_bf16": lambda: load_openvino(fp32_onnx, precision="bf16").backend.forward,
            "openvino_int8": lambda: load_openvino(int8_onnx, precision="auto").backend.forward,
        }
        ref = None
        for name, make in backends.items():
            say(progress, f"prediction: {name} ...")
            try:
                forward = make()
                x0 = images[:1]
                ms = _time(lambda: forward(x0), n)
                preds = torch.cat([forward(images[i:i + 1]) for i in range(test_n)]).float()
            except Exception as e:  # a runtime that cannot run here: the row says why, the rest goes on
                rows[name] = {"error": brief(e)}
                continue
            if ref is None:
                ref = preds
            rows[name] = {"ms": ms, "max_abs_diff": float((preds - ref).abs().max()),
                          "d1": _delta1(preds, depth, valid, output)}
    base = rows.get("torch_fp32", {}).get("ms")
    for row in rows.values():
        if base and "ms" in row:
            row["speedup_vs_torch_fp32"] = base / row["ms"]
    result = {"model": source, "size": [h, w], "test_images": test_n, "output": output, "backends": rows}
    if flops_roof:
        from ..models.catalog import gflops

        g = gflops(model, (h, w))
        result["gflop_per_image"] = g
        for name, row in rows.items():
            if "ms" in row:
                top = flops_roof["fp32_gflops"] if name.endswith("fp32") else flops_roof["bf16_gflops"]
                row["fraction_of_ceiling"] = g / (row["ms"] / 1000) / top
    return result
