"""Training-step figures: the seed U-Net per setting (precision, memory layout, allocator; ``SETTINGS``) and every
registered model at a small common size. Each setting runs in a fresh subprocess (``machine.spawn``), so its peak
memory is its own; the step itself is training's (``training.step.optimizer_step``)."""
from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import torch

from ..allocator import current_allocator
from ..errors import DepthforgeError
from .machine import brief, load_average, rss_mb, say, spawn
from .tf_seed import available as tensorflow_available

# name: (precision, channels_last, allocator, extra environment). "bf16conv": an fp32 model whose convolutions
# oneDNN runs in bf16 (torch.backends.mkldnn.conv.fp32_precision), no autocast.
SETTINGS: dict[str, tuple[str, bool, str, dict[str, str]]] = {
    "fp32": ("fp32", False, "auto", {}),
    "bf16_channels_last": ("bf16", True, "auto", {}),
    "bf16_channels_last_glibc_tunables": ("bf16", True, "glibc", {}),
    "bf16_channels_last_tcmalloc": ("bf16", True, "tcmalloc", {}),
    "bf16_channels_last_jemalloc": ("bf16", True, "jemalloc", {}),
    "bf16_channels_last_default_malloc": ("bf16", True, "default", {}),
    "bf16_channels_last_omp_bind": ("bf16", True, "auto", {"OMP_PROC_BIND": "close", "OMP_PLACES": "cores"}),
    "bf16conv_channels_last": ("bf16conv", True, "auto", {}),
    "bf16": ("bf16", False, "auto", {}),
    # the same network, loss and optimiser in the seed's own framework (tf_seed.py), where TensorFlow is installed
    "tensorflow_fp32": ("fp32", False, "auto", {}),
    "tensorflow_bf16": ("bf16", False, "auto", {}),
}
DEFAULT_SETTINGS = ("fp32", "bf16_channels_last")
TF_SCRIPT = Path(__file__).with_name("tf_seed.py")
FASTEST = "bf16_channels_last"  # what ``depthforge train`` uses with precision bf16-mixed + channels_last


def default_settings() -> tuple[str, ...]:
    """``DEFAULT_SETTINGS``, and TensorFlow's fp32 beside them where it is installed (issue 22: report both)."""
    return DEFAULT_SETTINGS + (("tensorflow_fp32",) if tensorflow_available() else ())


def train_flops(model: torch.nn.Module, size, batch: int) -> float:
    """FLOPs of one training step's forward and backward (``torch.utils.flop_counter``; a multiply-add is 2),
    counted on a batch of 1 and scaled to ``batch``; the model's gradients are left at None."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        model(torch.rand(1, 3, *size)).float().mean().backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() * batch


def step_worker(job: dict) -> dict:
    """Time full training steps (``training.step.optimizer_step``: forward, loss with the model's auxiliary
    terms, backward, Adam amsgrad) of one model; runs in a subprocess."""
    from ..losses import build_loss
    from ..models import MODELS
    from ..training.step import optimizer_step

    torch.manual_seed(0)
    base = rss_mb()
    try:
        model = MODELS.build(job["model"], **job["kwargs"]).train()
    except Exception as e:  # a model that needs a download or a missing package: say so, go on
        return {"error": brief(e)}
    m = model.multiple
    size = [-(-int(s) // m) * m for s in job["size"]]  # rounded up to the model's multiple
    info = {"size": size, "batch": job["batch"], "parameters": sum(p.numel() for p in model.parameters())}
    if job.get("count"):
        info["flops"] = train_flops(model, size, job["batch"])
        info["gflop_per_step"] = info["flops"] / 1e9
    loss_fn = build_loss(job["loss"], max_depth=model.max_depth) if job["loss"] == "seed" else build_loss(job["loss"])
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, amsgrad=True)
    batch, (h, w) = job["batch"], size
    x = torch.rand(batch, 3, h, w)
    y = 0.5 + torch.rand(batch, 1, h, w) * (model.max_depth - 1)  # metres
    valid = torch.ones_like(y, dtype=torch.bool)
    precision = job["precision"]
    if job["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    data = {"image": x, "depth": y, "valid": valid}
    if precision == "bf16conv":
        torch.backends.mkldnn.conv.fp32_precision = "bf16"
        torch.backends.mkldnn.matmul.fp32_precision = "bf16"
    walls, cpus, loss = [], [], None
    for i in range(job["steps"] + 1):  # the first step warms up allocators and kernels
        t0, c0 = time.perf_counter(), time.process_time()
        loss = optimizer_step(model, loss_fn, opt, data, bf16=precision == "bf16")
        if i:
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
    return {**info, "step_s": statistics.median(walls), "cpu_s": statistics.median(cpus), "peak_rss_mb": rss_mb(),
            "base_rss_mb": base, "loss": float(loss), "allocator": current_allocator(),
            "threads": torch.get_num_threads()}


def _with_flops(r: dict, flops: float, roof: dict | None, precision: str) -> dict:
    if "error" in r:
        return r
    r["gflops_per_s"] = flops / r["step_s"] / 1e9
    if roof:
        top = roof["fp32_gflops"] if precision == "fp32" else roof["bf16_gflops"]
        r["fraction_of_ceiling"] = r["gflops_per_s"] / top
        r["ceiling_step_s"] = flops / (top * 1e9)  # the step at the matmul roof
    return r


def train_steps(settings=DEFAULT_SETTINGS, *, size=(240, 320), batch: int = 16, steps: int = 2, width: float = 1.0,
                rounds: int = 1, roof: dict | None = None, progress: bool = False) -> dict[str, Any]:
    """The seed U-Net's training step per setting (see ``SETTINGS``), interleaved over ``rounds``."""
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown:
        raise DepthforgeError(f"bench: unknown setting(s) {', '.join(unknown)}; known: {', '.join(SETTINGS)}")
    from ..models import build_model

    kwargs = {"width": width}
    flops = train_flops(build_model("seed-unet", **kwargs), size, batch)
    runs: dict[str, list[dict]] = {s: [] for s in settings}
    for r in range(rounds):
        for name in settings:
            precision, cl, allocator, extra = SETTINGS[name]
            say(progress, f"training step {name} (round {r + 1}/{rounds}) ...")
            job = {"kind": "step", "model": "seed-unet", "kwargs": kwargs, "loss": "seed", "size": list(size),
                   "batch": batch, "steps": steps, "precision": precision, "channels_last": cl}
            script = None
            if name.startswith("tensorflow"):
                job, script = {"size": list(size), "batch": batch, "steps": steps, "width": width,
                               "precision": precision}, TF_SCRIPT
            before = load_average()
            out = spawn(job, allocator, extra, script=script)
            out["load"] = before
            runs[name].append(out)
    result: dict[str, Any] = {"model": f"seed-unet width {width}", "size": list(size), "batch": batch,
                              "steps": steps, "rounds": rounds, "gflop_per_step": flops / 1e9, "settings": {}}
    for name, outs in runs.items():
        ok = [o for o in outs if "error" not in o]
        if not ok:
            result["settings"][name] = {"error": outs[0]["error"]}
            continue
        med = {k: statistics.median(o[k] for o in ok) for k in ("step_s", "cpu_s", "load")}
        row = {**med, "peak_rss_mb": max(o["peak_rss_mb"] for o in ok), "loss": ok[0]["loss"],
               "allocator": ok[0]["allocator"], "samples_per_s": batch / med["step_s"],
               "runs": [round(o["step_s"], 3) for o in ok], "framework": ok[0].get("framework", "pytorch")}
        result["settings"][name] = _with_flops(row, flops, roof, SETTINGS[name][0])
    base = result["settings"].get(settings[0], {})
    for row in result["settings"].values():
        if "step_s" in row and "step_s" in base:
            row["ratio"] = row["step_s"] / base["step_s"]
            row["cpu_ratio"] = row["cpu_s"] / base["cpu_s"]
    return result


# --- every registered model ----------------------------------------------------------------------------------

def model_steps(names: list[str] | None = None, *, size=(128, 128), batch: int = 2, steps: int = 1,
                sizes: dict[str, tuple[int, int]] | None = None, kwargs_key: str = "catalog",
                roof: dict | None = None, progress: bool = False) -> dict[str, dict]:
    """Each registered model's bf16 training step at ``size`` (``sizes[name]`` where given), rounded up to the
    model's multiple; the loss is SILog (what every model can train with). ``kwargs_key``: which
    ``MODELS.info`` keywords build it ("catalog": the listed architecture; "test": its tiny test size)."""
    from ..models import MODELS

    names = list(names) if names else sorted(MODELS)
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        raise DepthforgeError(f"bench: unknown model(s) {', '.join(unknown)}; known: {', '.join(sorted(MODELS))}")
    out = {}
    for name in names:
        kwargs = MODELS.info[name].get(kwargs_key, {})
        say(progress, f"training step of {name} ...")
        job = {"kind": "step", "model": name, "kwargs": kwargs, "loss": "silog",
               "size": list((sizes or {}).get(name, size)), "batch": batch, "steps": steps, "precision": "bf16",
               "channels_last": False, "count": True}
        r = spawn(job)
        out[name] = _with_flops(r, r.get("flops", 0.0), roof, "bf16")
    return out
