"""Prediction figures: one image through PyTorch fp32/bf16, onnxruntime fp32/int8 and OpenVINO fp32/bf16/int8,
each with its latency, its speed-up over PyTorch fp32 and its agreement with it (max |Δ| and δ1 of one against
the other), against issue 22's target: >= 5x faster than PyTorch fp32 at <= 1 % δ1 disagreement."""
from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..errors import DepthforgeError
from .checks import check_size, model_multiple
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


TARGET_SPEEDUP, TARGET_DISAGREEMENT = 5.0, 0.01  # issue 22: >= 5x PyTorch fp32 at <= 1 % δ1 disagreement
FLOOR = 1e-3  # agreement: pixels where the reference is below this fraction of its maximum have no usable ratio
TINY = 1e-12  # agreement: pred's floor, so a pixel pred puts at or below 0 has a ratio far above 1.25


def agreement(pred: torch.Tensor, ref: torch.Tensor) -> float:
    """δ1 of one prediction against another: ``evaluation.metrics.compute_metrics``' d1 with ``ref`` as the ground
    truth, every pixel of the batch pooled as one image, with no depth cap, over the pixels where ``ref`` exceeds
    ``FLOOR`` × its maximum (the valid mask: a relative model's ReLU gives 0 far away, where no ratio exists). The
    protocol's minimum depth ``TINY`` floors ``pred``, so a pixel ``pred`` puts at or below 0 there, or leaves
    non-finite, disagrees. NaN when no pixel is valid."""
    from ..evaluation.metrics import Protocol, compute_metrics

    ref = ref.double().reshape(1, -1)
    pred = torch.nan_to_num(pred.double().reshape(1, -1), nan=0.0, posinf=0.0, neginf=0.0)
    valid = ref > FLOOR * float(ref.max())
    return compute_metrics(pred, ref, Protocol("none", TINY, float("inf")), valid=valid)["d1"]


def _target(row: dict) -> None:
    """``target_met`` and, where it is not, ``gap``: what is missing to the issue's target."""
    gaps = []
    if row["speedup_vs_torch_fp32"] < TARGET_SPEEDUP:
        gaps.append(f"{row['speedup_vs_torch_fp32']:.2f}x of {TARGET_SPEEDUP:g}x "
                    f"({TARGET_SPEEDUP / row['speedup_vs_torch_fp32']:.1f}x short)")
    if not row["disagreement"] <= TARGET_DISAGREEMENT:
        gaps.append(f"δ1 disagreement {100 * row['disagreement']:.2f} % > {100 * TARGET_DISAGREEMENT:g} %")
    row["target_met"] = not gaps
    if gaps:
        row["gap"] = "; ".join(gaps)


def _measure(forward: Callable[..., torch.Tensor], images: torch.Tensor, prompts: torch.Tensor | None, n: int,
             test_n: int, budget: float) -> dict[str, Any]:
    """Latency (best and median of up to ``n`` timed calls on the first image, after a warm-up: OpenVINO compiles
    per shape) and the predictions of up to ``test_n`` images, as many as ``budget`` seconds of calls allow
    beyond one of each (bf16 emulated on a CPU without native bf16 takes tens of seconds an image). ``prompts``:
    each image's depth prompt, for a model that takes one."""
    def inputs(i: int) -> tuple[torch.Tensor, ...]:
        return (images[i:i + 1],) if prompts is None else (images[i:i + 1], prompts[i:i + 1])

    x0 = inputs(0)
    forward(*x0)
    times, first = [], None
    while len(times) < n and (not times or sum(times) + times[0] <= budget):
        t = time.perf_counter()
        y = forward(*x0)
        times.append(time.perf_counter() - t)
        first = y if first is None else first
    k = max(1, min(test_n, int(budget / min(times))))
    preds = torch.cat([first] + [forward(*inputs(i)) for i in range(1, k)]).float()
    return {"ms": 1000 * min(times), "ms_median": 1000 * statistics.median(times), "repeats": len(times),
            "images": k, "preds": preds}


def _int8(path: Path, exported: dict) -> Path:
    """The int8 model's path, or why there is none: a model whose weights are beside its graph is not quantised."""
    from ..inference.export import check_int8_size

    if exported["data"] is not None:
        check_int8_size("no int8 model", exported["bytes"], "the other runtimes are timed")
    return path


def _prompts(depth: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Each room's depth prompt [N,1,h,w] metres: its ground truth downsampled as evaluation prompts a model."""
    from ..inference.prompt import prompt_from_depth

    maps = [prompt_from_depth(np.where(v[0].numpy(), d[0].numpy(), 0)) for d, v in zip(depth, valid)]
    return torch.from_numpy(np.stack(maps))[:, None].float()


def predict_table(checkpoint: str | os.PathLike | None = None, *, size=(240, 320), width: float = 1.0,
                  steps: int = 20, test_n: int = 8, calib_n: int = 4, n: int = 5, budget: float = 30.0,
                  flops_roof: dict | None = None, int8_ops=None, progress: bool = False) -> dict[str, Any]:
    """One image (batch 1) at ``size`` through every back end and precision, side by side.

    The model: ``checkpoint`` (a depthforge checkpoint, Hugging Face folder or hub id), else a seed U-Net briefly
    trained (``steps`` steps; 0: random weights). ``size``: sides that are multiples of the model's size multiple
    (``checks.check_size``), at a model's native size, e.g. 518×518 for Depth Anything V2: what it runs at.
    Rows: ms per image (best of up to ``n`` timed calls; ``ms_median`` beside it), the speed-up over PyTorch fp32,
    and the agreement with PyTorch fp32 over up to ``test_n`` held-out synthetic rooms (split "test"):
    ``max_abs_diff`` (the model's output units),
    ``d1_agreement`` (``agreement``) and ``disagreement`` = 1 − it; whether the issue's target is met
    (``TARGET_SPEEDUP`` × at ≤ ``TARGET_DISAGREEMENT``) or the ``gap``; ``d1``: δ1 against the rooms' ground truth.
    A slow row (``budget`` seconds) times fewer calls and compares fewer images: ``repeats``, ``images``.
    OpenVINO rows say what their float parts ran in (``runs``: a bf16 hint runs as f32 on a CPU without bf16).
    int8 is onnxruntime's static QDQ quantisation (``inference.quantize``) of the ONNX op types ``int8_ops``
    (default ``OPS``), calibrated on ``calib_n`` synthetic training rooms.
    """
    from ..inference.export import export_module
    from ..inference.onnx import load_onnx
    from ..inference.openvino import load_openvino
    from ..inference.quantize import OPS, quantize_onnx

    if checkpoint is not None:
        from ..inference.load import open_module

        model, info, _ = open_module(checkpoint)
        source = f"model {checkpoint}"
        h, w = check_size("--predict-size", (info.get("model") or {}).get("name") or str(checkpoint), size,
                          model.multiple)
    else:
        h, w = check_size("--predict-size", "seed-unet", size, model_multiple("seed-unet", {"width": width}))
        say(progress, f"prediction: training a seed U-Net for {steps} steps ...")
        model, info = brief_training(width, size, steps)
        source = (f"seed-unet width {width} trained {steps} steps on synthetic rooms" if steps
                  else f"seed-unet width {width} with random weights")
    model = model.cpu().eval()
    images, depth, valid = synth_batches("test", test_n, (h, w))
    output = model.contract.output
    prompts = _prompts(depth, valid) if model.contract.prompt else None
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="depthforge-bench-") as tmp:
        fp32_onnx, int8_onnx = Path(tmp) / "model.onnx", Path(tmp) / "model-int8.onnx"
        say(progress, "prediction: exporting and quantising ...")
        exported = export_module(model, info, fp32_onnx, check=False)
        if exported["data"] is None:
            calib, calib_depth, calib_valid = synth_batches("train", calib_n, (h, w))
            pairs = ([x[None].numpy() for x in calib] if prompts is None else  # a prompt input: pairs
                     [(x[None].numpy(), p[None].numpy()) for x, p in zip(calib, _prompts(calib_depth, calib_valid))])
            quantize_onnx(fp32_onnx, int8_onnx, pairs, ops=int8_ops or OPS)
        # else (weights beside the graph: Depth Pro) there is no int8 model; its rows say why, the others run

        def torch_forward(bf16: bool):
            def f(*x):
                with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    return model(*x).float()
            return f

        backends = {
            "torch_fp32": lambda: torch_forward(False),
            "torch_bf16": lambda: torch_forward(True),
            "onnxruntime_fp32": lambda: load_onnx(fp32_onnx, "cpu").backend,
            "onnxruntime_int8": lambda: load_onnx(_int8(int8_onnx, exported), "cpu").backend,
            "openvino_fp32": lambda: load_openvino(fp32_onnx, precision="fp32").backend,
            "openvino_bf16": lambda: load_openvino(fp32_onnx, precision="bf16").backend,
            "openvino_int8": lambda: load_openvino(_int8(int8_onnx, exported), precision="auto").backend,
        }
        ref = None
        for name, make in backends.items():
            say(progress, f"prediction: {name} ...")
            try:
                made = make()
                row = _measure(getattr(made, "forward", made), images, prompts, n, test_n, budget)
            except Exception as e:  # a runtime that cannot run here: the row says why, the rest goes on
                rows[name] = {"error": brief(e)}
                continue
            preds = row.pop("preds")
            ref = preds if ref is None else ref
            k = min(len(preds), len(ref))
            row.update(max_abs_diff=float((preds[:k] - ref[:k]).abs().max()),
                       d1_agreement=agreement(preds[:k], ref[:k]),
                       d1=_delta1(preds, depth[:len(preds)], valid[:len(preds)], output))
            row["disagreement"] = 1 - row["d1_agreement"]
            if "inference_precision" in getattr(made, "details", {}):  # OpenVINO: bf16 runs as f32 without bf16
                row["runs"] = made.details["inference_precision"]
            rows[name] = row
    base = rows.get("torch_fp32", {}).get("ms")
    for row in rows.values():
        if base and "ms" in row:
            row["speedup_vs_torch_fp32"] = base / row["ms"]
            _target(row)
    result = {"model": source, "size": [h, w], "test_images": test_n, "output": output, "backends": rows,
              "int8_ops": list(int8_ops or OPS),
              "target": {"speedup_vs_torch_fp32": TARGET_SPEEDUP, "disagreement": TARGET_DISAGREEMENT}}
    if flops_roof:
        from ..models.catalog import gflops

        g = gflops(model, (h, w))
        result["gflop_per_image"] = g
        for name, row in rows.items():
            if "ms" in row:
                # bf16 rows against the bf16 roof where they ran bf16; the rest (int8 too: no int8 roof is
                # measured) against fp32's, so OpenVINO's f32 run of a bf16 hint is not 50x its "ceiling"
                bf16 = name.endswith("bf16") and row.get("runs", "bf16") == "bf16"
                top = flops_roof["bf16_gflops" if bf16 else "fp32_gflops"]
                row["fraction_of_ceiling"] = g / (row["ms"] / 1000) / top
    return result
