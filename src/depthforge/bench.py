"""Benchmarks (``depthforge bench``): speed and memory figures, compared within one run (ratios), since machines are noisy.

Training-step configurations each run in a fresh subprocess so their peak memory (max RSS) is their own.
"""
from __future__ import annotations

import json
import os
import resource
import statistics
import tempfile
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from .tuning import MALLOC_TUNING

STEP_CONFIGS = {
    # name: (precision, channels_last, malloc tuning)
    "fp32": ("fp32", False, True),
    "bf16_channels_last": ("bf16", True, True),
    "bf16_channels_last_default_malloc": ("bf16", True, False),
}


def train_step_worker(precision: str, channels_last: bool, size: tuple[int, int], batch: int, steps: int,
                      width: float) -> dict:
    """Time full training steps (forward, seed loss, backward, Adam) of the seed U-Net; runs in a subprocess."""
    from .losses import build_loss
    from .models import build_model

    torch.manual_seed(0)
    model = build_model("seed-unet", width=width)
    loss_fn = build_loss("seed")
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, amsgrad=True)
    x = torch.rand(batch, 3, *size)
    y = torch.rand(batch, 1, *size) * model.max_depth  # metres
    valid = torch.ones_like(y, dtype=torch.bool)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    times = []
    for i in range(steps + 1):  # the first step warms up allocators and kernels
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            pred = model(x)
        loss = loss_fn(pred.float(), y, valid)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - t0)
    return {"step_s": min(times), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _run_worker(name: str, size, batch: int, steps: int, width: float) -> dict:
    precision, cl, tuned = STEP_CONFIGS[name]
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    if tuned:
        env["GLIBC_TUNABLES"] = MALLOC_TUNING
    job = json.dumps({"precision": precision, "channels_last": cl, "size": list(size), "batch": batch,
                      "steps": steps, "width": width})
    proc = subprocess.run([sys.executable, "-m", "depthforge.bench", job], env=env, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"bench worker {name} failed: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def predict_latency(size: tuple[int, int], width: float, n: int = 5) -> dict:
    from .models import build_model

    model = build_model("seed-unet", width=width).eval()
    x = torch.rand(1, 3, *size)
    out = {}
    for name, bf16 in (("fp32", False), ("bf16", True)):
        times = []
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            for _ in range(n + 1):
                t0 = time.perf_counter()
                model(x)
                times.append(time.perf_counter() - t0)
        out[f"predict_ms_{name}"] = 1000 * min(times[1:])
    return out


def bench_onnx(checkpoint: str | os.PathLike, size: tuple[int, int] = (240, 320), n: int = 5) -> dict[str, Any]:
    """PyTorch vs onnxruntime latency on CPU, ms per image (batch 1, median of ``n`` interleaved runs).

    ``size`` is rounded up to the model's multiple. Returns {"size", "n", "torch_ms", "onnx_ms", "speedup"
    (torch_ms / onnx_ms), "max_abs_diff"}.
    """
    from .inference.export import export_module
    from .inference.onnx import load_onnx
    from .inference.predictor import from_module
    from .models.checkpoint import load_checkpoint

    model, info = load_checkpoint(checkpoint)
    torch_predictor = from_module(model, info, "cpu", resize="pad")
    m = torch_predictor.multiple
    h, w = (-(-int(s) // m) * m for s in size)
    with tempfile.TemporaryDirectory(prefix="depthforge-bench-") as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        export_module(model, info, onnx_path, check=False)
        onnx_predictor = load_onnx(onnx_path, "cpu", resize="pad")
        x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0))
        times: dict[str, list[float]] = {"torch": [], "onnx": []}
        outputs = {}
        for i in range(n + 1):  # the first round warms up and is not counted
            for name, predictor in (("torch", torch_predictor), ("onnx", onnx_predictor)):
                start = time.perf_counter()
                outputs[name] = predictor.predict_tensor(x)
                if i:
                    times[name].append((time.perf_counter() - start) * 1000)
    torch_ms, onnx_ms = statistics.median(times["torch"]), statistics.median(times["onnx"])
    return {"size": [h, w], "n": n, "torch_ms": torch_ms, "onnx_ms": onnx_ms, "speedup": torch_ms / onnx_ms,
            "max_abs_diff": float((outputs["torch"] - outputs["onnx"]).abs().max())}


def bench(size=(240, 320), batch: int = 16, steps: int = 2, width: float = 1.0, progress: bool = True,
          onnx: bool = True) -> dict:
    def say(msg: str) -> None:
        if progress:
            print(msg, file=sys.stderr, flush=True)

    results: dict = {"size": list(size), "batch": batch, "model": f"seed-unet width {width}",
                     "threads": torch.get_num_threads()}
    for name in STEP_CONFIGS:
        say(f"training step, {name} ...")
        r = _run_worker(name, size, batch, steps, width)
        results[f"train_step_s_{name}"] = r["step_s"]
        results[f"peak_rss_mb_{name}"] = r["peak_rss_mb"]
    results["speedup_bf16_channels_last_vs_fp32"] = results["train_step_s_fp32"] / \
        results["train_step_s_bf16_channels_last"]
    results["speedup_malloc_tuning"] = results["train_step_s_bf16_channels_last_default_malloc"] / \
        results["train_step_s_bf16_channels_last"]
    say("prediction latency ...")
    results.update(predict_latency(size, width))
    say("renderer ...")
    from .data.synth import render_rate

    results["render_per_s"] = render_rate(size=tuple(size), n=10)
    if onnx:
        say("onnxruntime vs PyTorch ...")
        from .models import build_model
        from .models.checkpoint import meta, save_model

        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "bench.ckpt")
            model = build_model("seed-unet", width=width)
            save_model(path, model, meta("seed-unet", {"width": width}, model))
            for k, v in bench_onnx(path, size=tuple(size)).items():
                results[f"onnx_{k}" if not k.startswith("onnx") else k] = v
    return results


if __name__ == "__main__":  # subprocess worker: one training-step configuration
    job = json.loads(sys.argv[1])
    print(json.dumps(train_step_worker(job["precision"], job["channels_last"], tuple(job["size"]), job["batch"],
                                       job["steps"], job["width"])))
