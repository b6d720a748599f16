"""Benchmarks (``depthforge bench``): speed and memory figures, compared within one run, since machines are noisy.

Sections of the result (one JSON object):

- ``machine``: threads, the allocator, the load average before and after.
- ``ceiling``: the CPU's measured matrix-multiply rate (GFLOP/s) in bf16 and fp32: the roof every FLOP figure is
  a fraction of.
- ``train``: the seed U-Net's training step (forward, seed loss, backward, Adam) per setting — fp32 and the
  fastest (bf16 autocast + channels_last, the allocator ``tuning.malloc_env`` picks): step time (wall and CPU
  seconds), peak RSS, GFLOP/s and the fraction of the ceiling. Each setting runs in a fresh subprocess, so its
  peak memory is its own; with ``rounds`` > 1 the settings are interleaved and medians reported (others' load
  hits every setting alike). ``settings="all"`` adds the allocator and oneDNN alternatives (``SETTINGS``).
- ``models``: every registered model's training step at a small common size (each built from its
  ``MODELS.info[name]["catalog"]`` keywords: the real architecture, random weights, nothing downloaded).
- ``predict``: one image at ``predict_size`` through PyTorch fp32/bf16, onnxruntime fp32/int8 and OpenVINO
  fp32/bf16/int8, each with its max |difference| from PyTorch fp32 and its δ1 on held-out synthetic rooms.
- ``data``: samples/s of loading + training augmentation through a DataLoader for synthetic rendering and for
  real file formats (PNG, JPEG, DenseDepth's zip, NYU's .mat), against the training step's consumption and a
  GPU's (``GPU_RATE``).
"""
from __future__ import annotations

import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .tuning import PREFERENCE, current_allocator, malloc_env, pick_allocator

GPU_RATE = 2000.0  # images/s a GPU training step of a small network consumes: the rate a loader must feed
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
}
DEFAULT_SETTINGS = ("fp32", "bf16_channels_last")
FASTEST = "bf16_channels_last"  # what ``depthforge train`` uses with precision bf16-mixed + channels_last


def _say(progress: bool, msg: str) -> None:
    if progress:
        print(msg, file=sys.stderr, flush=True)


def _brief(e: BaseException) -> str:
    """One line for an exception a row reports instead of stopping the bench."""
    return f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"


def _load() -> float:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return math.nan


def _rss_mb() -> float:
    """This process's peak resident memory, MB. VmHWM, not ru_maxrss: a child started by fork + exec inherits its
    parent's ru_maxrss, which would hide a small child's own peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- the roof ------------------------------------------------------------------------------------------------

def matmul_gflops(dtype: torch.dtype, n: int = 2048, seconds: float = 0.5) -> float:
    """GFLOP/s of an n×n×n matrix multiply in ``dtype`` on this process's threads (best of repeated timings)."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    torch.mm(a, b)  # warm-up: kernel choice, page faults
    best, start = math.inf, time.perf_counter()
    while time.perf_counter() - start < seconds or best == math.inf:
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def ceiling(n: int = 2048, seconds: float = 0.5) -> dict[str, float]:
    return {"bf16_gflops": matmul_gflops(torch.bfloat16, n, seconds),
            "fp32_gflops": matmul_gflops(torch.float32, n, seconds), "matmul_size": n}


# --- training steps ------------------------------------------------------------------------------------------

def train_flops(model: torch.nn.Module, size, batch: int) -> float:
    """FLOPs of one training step's forward and backward (``torch.utils.flop_counter``; a multiply-add is 2),
    counted on a batch of 1 and scaled to ``batch``; the model's gradients are left at None."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        model(torch.rand(1, 3, *size)).float().mean().backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() * batch


def _step_worker(job: dict) -> dict:
    """Time full training steps (forward, loss, backward, Adam amsgrad) of one model; runs in a subprocess."""
    from .losses import build_loss
    from .models import MODELS

    torch.manual_seed(0)
    base = _rss_mb()
    try:
        model = MODELS.build(job["model"], **job["kwargs"]).train()
    except Exception as e:  # a model that needs a download or a missing package: say so, go on
        return {"error": _brief(e)}
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
    if precision == "bf16conv":
        torch.backends.mkldnn.conv.fp32_precision = "bf16"
        torch.backends.mkldnn.matmul.fp32_precision = "bf16"
    walls, cpus, loss = [], [], None
    for i in range(job["steps"] + 1):  # the first step warms up allocators and kernels
        t0, c0 = time.perf_counter(), time.process_time()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            pred = model(x)
        loss = loss_fn(pred.float(), y, valid)  # losses run in fp32, as in training/module.py
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i:
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
    return {**info, "step_s": statistics.median(walls), "cpu_s": statistics.median(cpus), "peak_rss_mb": _rss_mb(),
            "base_rss_mb": base, "loss": float(loss), "allocator": current_allocator(),
            "threads": torch.get_num_threads()}


def _spawn(job: dict, allocator: str = "auto", extra_env: dict | None = None, timeout: float = 1800) -> dict:
    env = malloc_env(os.environ, allocator)
    env.update(extra_env or {})
    env.setdefault("HF_HUB_OFFLINE", "1")  # random weights only: never wait on the network
    src = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    try:
        proc = subprocess.run([sys.executable, "-m", "depthforge.bench", json.dumps(job)], env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode or not lines:
        err = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        return {"error": (err[-1] if err else f"exit status {proc.returncode}")[:300]}
    return json.loads(lines[-1])


def _with_flops(r: dict, flops: float, roof: dict | None, precision: str) -> dict:
    if "error" in r:
        return r
    r["gflops_per_s"] = flops / r["step_s"] / 1e9
    if roof:
        top = roof["fp32_gflops"] if precision == "fp32" else roof["bf16_gflops"]
        r["fraction_of_ceiling"] = r["gflops_per_s"] / top
        r["ceiling_step_s"] = flops / (top * 1e9)  # the step at the matmul roof
    return r


def train_steps(settings=DEFAULT_SETTINGS, size=(240, 320), batch: int = 16, steps: int = 2, width: float = 1.0,
                rounds: int = 1, roof: dict | None = None, progress: bool = False) -> dict[str, Any]:
    """The seed U-Net's training step per setting (see ``SETTINGS``), interleaved over ``rounds``."""
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown:
        from .errors import DepthforgeError

        raise DepthforgeError(f"bench: unknown setting(s) {', '.join(unknown)}; known: {', '.join(SETTINGS)}")
    from .models import build_model

    kwargs = {"width": width}
    flops = train_flops(build_model("seed-unet", **kwargs), size, batch)
    runs: dict[str, list[dict]] = {s: [] for s in settings}
    for r in range(rounds):
        for name in settings:
            precision, cl, allocator, extra = SETTINGS[name]
            _say(progress, f"training step {name} (round {r + 1}/{rounds}) ...")
            job = {"kind": "step", "model": "seed-unet", "kwargs": kwargs, "loss": "seed", "size": list(size),
                   "batch": batch, "steps": steps, "precision": precision, "channels_last": cl}
            load = _load()
            out = _spawn(job, allocator, extra)
            out["load"] = load
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
               "runs": [round(o["step_s"], 3) for o in ok]}
        result["settings"][name] = _with_flops(row, flops, roof, SETTINGS[name][0])
    base = result["settings"].get(settings[0], {})
    for row in result["settings"].values():
        if "step_s" in row and "step_s" in base:
            row["ratio"] = row["step_s"] / base["step_s"]
            row["cpu_ratio"] = row["cpu_s"] / base["cpu_s"]
    return result


# --- every registered model ----------------------------------------------------------------------------------

def model_steps(names: list[str] | None = None, size=(128, 128), batch: int = 2, steps: int = 1,
                sizes: dict[str, tuple[int, int]] | None = None, kwargs_key: str = "catalog",
                roof: dict | None = None, progress: bool = False) -> dict[str, dict]:
    """Each registered model's bf16 training step at ``size`` (``sizes[name]`` where given), rounded up to the
    model's multiple; the loss is SILog (what every model can train with). ``kwargs_key``: which
    ``MODELS.info`` keywords build it ("catalog": the listed architecture; "test": its tiny test size)."""
    from .errors import DepthforgeError
    from .models import MODELS

    names = list(names) if names else sorted(MODELS)
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        raise DepthforgeError(f"bench: unknown model(s) {', '.join(unknown)}; known: {', '.join(sorted(MODELS))}")
    out = {}
    for name in names:
        kwargs = MODELS.info[name].get(kwargs_key, {})
        _say(progress, f"training step of {name} ...")
        job = {"kind": "step", "model": name, "kwargs": kwargs, "loss": "silog",
               "size": list((sizes or {}).get(name, size)), "batch": batch, "steps": steps, "precision": "bf16",
               "channels_last": False, "count": True}
        r = _spawn(job)
        out[name] = _with_flops(r, r.get("flops", 0.0), roof, "bf16")
    return out


# --- prediction ----------------------------------------------------------------------------------------------

def _synth_batches(split: str, n: int, size) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(images [n,3,H,W], depth [n,1,H,W] metres, valid) of synthetic rooms of ``split``."""
    from .data.synth import SynthDataset

    ds = SynthDataset(split=split, n=n, size=tuple(size), cache=False)
    samples = [ds[i] for i in range(n)]
    return tuple(torch.stack([s[k] for s in samples]) for k in ("image", "depth", "valid"))


def brief_training(width: float, size, steps: int, batch: int = 4, n: int = 24) -> tuple[torch.nn.Module, dict]:
    """A seed U-Net trained ``steps`` Adam steps (bf16, seed loss) on ``n`` synthetic training rooms."""
    from .losses import build_loss
    from .models import build_model
    from .models.checkpoint import meta

    torch.manual_seed(0)
    model = build_model("seed-unet", width=width)
    images, depth, valid = _synth_batches("train", n, size)
    loss_fn = build_loss("seed")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, amsgrad=True)
    model.train()
    for step in range(steps):
        idx = torch.arange(step * batch, (step + 1) * batch) % n
        with torch.autocast("cpu", dtype=torch.bfloat16):
            pred = model(images[idx])
        loss = loss_fn(pred.float(), depth[idx], valid[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    return model, meta("seed-unet", {"width": width}, model)


def _delta1(pred: torch.Tensor, depth: torch.Tensor, valid: torch.Tensor, output: str) -> float:
    from .evaluation.metrics import compute_metrics, get_protocol, to_metres

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


def predict_table(checkpoint: str | os.PathLike | None = None, size=(240, 320), width: float = 1.0,
                  steps: int = 20, test_n: int = 8, calib_n: int = 4, n: int = 5,
                  flops_roof: dict | None = None, progress: bool = False) -> dict[str, Any]:
    """One image (batch 1) at ``size`` through every back end and precision, side by side.

    The model: ``checkpoint``, else a seed U-Net briefly trained (``steps`` steps; 0: random weights).
    Rows: ms per image (median of ``n``), max |difference| from PyTorch fp32 on the first test image (the
    model's output units), δ1 over ``test_n`` held-out synthetic rooms (split "test"). int8 is onnxruntime's
    static QDQ quantisation (``inference.quantize``) calibrated on ``calib_n`` synthetic training rooms.
    """
    from .inference.export import export_module
    from .inference.onnx import load_onnx
    from .inference.openvino import load_openvino
    from .inference.quantize import quantize_onnx

    if checkpoint is not None:
        from .models.checkpoint import load_checkpoint

        model, info = load_checkpoint(checkpoint)
        source = f"checkpoint {checkpoint}"
    else:
        _say(progress, f"prediction: training a seed U-Net for {steps} steps ...")
        model, info = brief_training(width, size, steps)
        source = (f"seed-unet width {width} trained {steps} steps on synthetic rooms" if steps
                  else f"seed-unet width {width} with random weights")
    model = model.cpu().eval()
    m = model.multiple
    h, w = (-(-int(s) // m) * m for s in size)
    images, depth, valid = _synth_batches("test", test_n, (h, w))
    output = model.contract.output
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="depthforge-bench-") as tmp:
        fp32_onnx, int8_onnx = Path(tmp) / "model.onnx", Path(tmp) / "model-int8.onnx"
        _say(progress, "prediction: exporting and quantising ...")
        export_module(model, info, fp32_onnx, check=False)
        calib, _, _ = _synth_batches("train", calib_n, (h, w))
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
            _say(progress, f"prediction: {name} ...")
            try:
                forward = make()
                x0 = images[:1]
                ms = _time(lambda: forward(x0), n)
                preds = torch.cat([forward(images[i:i + 1]) for i in range(test_n)]).float()
            except Exception as e:  # a runtime that cannot run here: the row says why, the rest goes on
                rows[name] = {"error": _brief(e)}
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
        from .models.catalog import gflops

        g = gflops(model, (h, w))
        result["gflop_per_image"] = g
        for name, row in rows.items():
            if "ms" in row:
                top = flops_roof["fp32_gflops"] if name.endswith("fp32") else flops_roof["bf16_gflops"]
                row["fraction_of_ceiling"] = g / (row["ms"] / 1000) / top
    return result


# --- the data pipeline ---------------------------------------------------------------------------------------

NYU_HW = (480, 640)  # the real files' size


def _photos(k: int, size=NYU_HW) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``k`` synthetic rooms rendered at a quarter of ``size`` and enlarged: (uint8 RGB, depth metres) pairs
    with photo-like content for the encoders."""
    from PIL import Image

    from .data.synth import render_scene

    rgbs, depths = [], []
    for i in range(k):
        s = render_scene(i, "train", (max(16, size[0] // 4), max(16, size[1] // 4)))
        rgb = Image.fromarray(np.round(s["image"] * 255).astype(np.uint8)).resize(size[::-1], Image.BILINEAR)
        d = Image.fromarray(s["depth"].astype(np.float32)).resize(size[::-1], Image.NEAREST)
        rgbs.append(np.asarray(rgb))
        depths.append(np.asarray(d))
    return rgbs, depths


def write_formats(root: Path, n: int, k: int = 4, size=NYU_HW) -> dict[str, dict]:
    """Tiny datasets of ``n`` frames of ``size`` (default NYU's) in the real formats under ``root``; returns
    dataset specs.

    png/jpeg: the ``folder`` layout (rgb/*.png|jpg, depth/*.png 16-bit mm); zip: DenseDepth's nyu_data.zip
    (JPEG + 8-bit PNG depth, 255 = 10 m, as its training half); mat: the labelled NYU .mat (MATLAB v7.3 = HDF5,
    with a 512-byte header) and splits.mat."""
    import h5py
    import scipy.io

    from .files import depth_to_png16, image_bytes

    rgbs, depths = _photos(k, size)
    png = [image_bytes(r, "png") for r in rgbs]
    jpg = [image_bytes(r, "jpeg") for r in rgbs]
    dpng = [depth_to_png16(d) for d in depths]
    for fmt, blobs in (("png", png), ("jpeg", jpg)):
        for sub in ("rgb", "depth"):
            (root / fmt / sub).mkdir(parents=True)
        for i in range(n):
            (root / fmt / "rgb" / f"{i:05d}.{fmt[:3].replace('jpe', 'jpg')}").write_bytes(blobs[i % k])
            (root / fmt / "depth" / f"{i:05d}.png").write_bytes(dpng[i % k])
    d8 = [image_bytes(np.clip(np.round(d / 10 * 255), 0, 255).astype(np.uint8), "png") for d in depths]
    (root / "zip").mkdir()
    with zipfile.ZipFile(root / "zip" / "nyu_data.zip", "w") as z:
        rows = []
        for i in range(n):
            rgb, dep = f"data/nyu2_train/room_{i // 10}/{i}.jpg", f"data/nyu2_train/room_{i // 10}/{i}.png"
            z.writestr(rgb, jpg[i % k])
            z.writestr(dep, d8[i % k])
            rows.append(f"{rgb},{dep}")
        z.writestr("data/nyu2_train.csv", "\n".join(rows) + "\n")
        z.writestr("data/nyu2_test.csv", rows[0] + "\n")
    (root / "mat").mkdir()
    with h5py.File(root / "mat" / "nyu_depth_v2_labeled.mat", "w", userblock_size=512) as f:
        f["images"] = np.stack([rgbs[i % k] for i in range(n)]).transpose(0, 3, 2, 1)  # MATLAB's column order
        f["depths"] = np.stack([depths[i % k] for i in range(n)]).astype(np.float32).transpose(0, 2, 1)
    scipy.io.savemat(root / "mat" / "splits.mat", {"trainNdxs": np.arange(1, n + 1, dtype=float)[:, None],
                                                   "testNdxs": np.array([[1.0]])})
    return {"png": {"name": "folder", "root": str(root / "png")},
            "jpeg": {"name": "folder", "root": str(root / "jpeg")},
            "zip": {"name": "nyu", "root": str(root / "zip" / "nyu_data.zip")},
            "mat": {"name": "nyu", "root": str(root / "mat" / "nyu_depth_v2_labeled.mat")}}


def loader_rate(dataset, size, batch: int, workers: int, augment: dict) -> float:
    """Samples/s of ``dataset`` through the training augmentation and a DataLoader with ``workers`` worker
    processes, timed from the first batch (worker start-up excluded) to the last."""
    from torch.utils.data import DataLoader

    from .data import SkipBad, collate
    from .data.transforms import build_train_transform

    ds = SkipBad(dataset, build_train_transform(augment, tuple(size)))
    items = [(i, i) for i in range(len(ds))]  # (index, augmentation seed), as training's sampler gives
    loader = DataLoader(ds, batch_size=batch, sampler=items, num_workers=workers, collate_fn=collate)
    it = iter(loader)
    first = next(it)
    count, start = 0, time.perf_counter()
    for b in it:
        count += len(b["image"])
    elapsed = time.perf_counter() - start
    if first is None or count == 0:
        return math.nan
    return count / elapsed


def pipeline_rates(size=(240, 320), batch: int = 16, workers: int = 0, n: int = 48, synth_n: int = 24,
                   consumption: float | None = None, file_size=NYU_HW, progress: bool = False) -> dict[str, Any]:
    """Loading + augmentation rates (samples/s) per source, against the training step's ``consumption``
    (samples/s) and ``GPU_RATE``; ``notes`` says where a source cannot keep up."""
    from .data import build_dataset
    from .data.synth import SynthDataset
    from .recipe import Augment

    augment = Augment(hflip=0.5).model_dump()
    rates = {}
    _say(progress, "data: synthetic rendering ...")
    rates["synth_render"] = loader_rate(SynthDataset("train", n=synth_n, size=tuple(size), cache=False), size,
                                        min(batch, max(1, synth_n // 3)), workers, augment)
    with tempfile.TemporaryDirectory(prefix="depthforge-bench-data-") as tmp:
        _say(progress, "data: writing tiny datasets in the real formats ...")
        specs = write_formats(Path(tmp), n, size=tuple(file_size))
        for fmt, spec in specs.items():
            _say(progress, f"data: {fmt} ...")
            rates[fmt] = loader_rate(build_dataset(spec, split="train"), size, batch, workers, augment)
    sources = {}
    notes = []
    for name, rate in rates.items():
        row = {"samples_per_s": rate, "vs_gpu": rate / GPU_RATE, "keeps_up_with_gpu": bool(rate >= GPU_RATE)}
        if consumption:
            row["vs_training"] = rate / consumption
            row["keeps_up_with_training"] = bool(rate >= consumption)
            if rate < consumption:
                notes.append(f"{name}: {rate:.1f} samples/s cannot feed this CPU's training step "
                             f"({consumption:.1f} samples/s); add workers or cache the data")
        if rate < GPU_RATE:
            what = ("render the scenes to disk once (depthforge data synth) and train from the files"
                    if name == "synth_render" else "use more loader workers or pre-resized files")
            notes.append(f"{name}: {rate:.1f} samples/s is {GPU_RATE / rate:.0f}x short of a GPU's "
                         f"{GPU_RATE:.0f}/s; {what}")
        sources[name] = row
    return {"size": list(size), "batch": batch, "workers": workers, "file_size": list(file_size),
            "training_samples_per_s": consumption, "gpu_samples_per_s": GPU_RATE, "sources": sources,
            "notes": notes}


# --- everything ----------------------------------------------------------------------------------------------

def default_workers() -> int:
    """The loader workers of the default recipe (configs/quick.yaml)."""
    from .recipe import resolve

    return resolve("quick").train.num_workers


MAX_SIDE = 4096
MAX_BATCH_PIXELS = 2**25  # batch x H x W of one training step: 28x the default 16 x 240 x 320
# option -> (low, high): what ``depthforge bench`` takes, checked before anything is allocated or timed
LIMITS = {"--batch": (1, 256), "--steps": (1, 1000), "--rounds": (1, 100), "--model-batch": (1, 256),
          "--train-steps": (0, 100_000), "--test-images": (1, 10_000), "--workers": (0, 256),
          "--data-samples": (1, 100_000)}


def check_args(size, batch: int, steps: int, width: float, settings, rounds: int, models, model_size,
               model_batch: int, predict_size, predict_train_steps: int, test_n: int, workers: int | None,
               data_n: int, sections, checkpoint=None) -> None:
    """One-line DepthforgeError for a value ``bench`` cannot run with, named by its ``depthforge bench`` option,
    before anything is allocated: a zero batch would time nothing and print zeros, a huge one exhaust memory."""
    from .errors import DepthforgeError
    from .models import MODELS

    values = {"--batch": batch, "--steps": steps, "--rounds": rounds, "--model-batch": model_batch,
              "--train-steps": predict_train_steps, "--test-images": test_n, "--data-samples": data_n}
    if workers is not None:
        values["--workers"] = workers
    for option, value in values.items():
        low, high = LIMITS[option]
        if not low <= value <= high:
            raise DepthforgeError(f"bench {option} {value}: must be {low}..{high}")
    for option, (h, w) in (("--size", size), ("--model-size", model_size), ("--predict-size", predict_size)):
        if not (16 <= h <= MAX_SIDE and 16 <= w <= MAX_SIDE):
            raise DepthforgeError(f"bench {option} {h} {w}: each side must be 16..{MAX_SIDE}")
    for option, b, (h, w) in (("--batch", batch, size), ("--model-batch", model_batch, model_size)):
        if b * h * w > MAX_BATCH_PIXELS:
            raise DepthforgeError(f"bench {option} {b} at {h}x{w}: a batch may hold at most {MAX_BATCH_PIXELS:,} "
                                  "pixels; lower the batch or the size")
    if not (math.isfinite(width) and 0 < width <= 4):
        raise DepthforgeError(f"bench --width {width}: the U-Net width multiplier must be in (0, 4]")
    if not sections:
        raise DepthforgeError("bench --only: name at least one section")
    if checkpoint is not None and "predict" in sections:
        from .models.checkpoint import read_checkpoint

        read_checkpoint(checkpoint)  # one line for a missing or foreign file, before the timed subprocess
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown:
        raise DepthforgeError(f"bench --settings: unknown setting(s) {', '.join(unknown)}; "
                              f"known: {', '.join(SETTINGS)}")
    unknown = [n for n in models or () if n not in MODELS]
    if unknown:
        raise DepthforgeError(f"bench --models: unknown model(s) {', '.join(unknown)}; "
                              f"known: {', '.join(sorted(MODELS))}")


def bench(size=(240, 320), batch: int = 16, steps: int = 2, width: float = 1.0, settings=DEFAULT_SETTINGS,
          rounds: int = 1, models: list[str] | None = None, model_size=(128, 128), model_batch: int = 2,
          model_sizes: dict | None = None, model_kwargs: str = "catalog", checkpoint: str | None = None,
          predict_size=(240, 320), predict_train_steps: int = 20, test_n: int = 8, calib_n: int = 4,
          workers: int | None = None, data_n: int = 48, synth_n: int = 24, file_size=NYU_HW,
          sections=("train", "models", "predict", "data"), progress: bool = True) -> dict[str, Any]:
    """Every figure of ``depthforge bench`` as one JSON-able dict (see the module docstring)."""
    check_args(size, batch, steps, width, settings, rounds, models, model_size, model_batch, predict_size,
               predict_train_steps, test_n, workers, data_n, sections, checkpoint)
    load_before = _load()
    results: dict[str, Any] = {"machine": {
        "threads": torch.get_num_threads(), "torch": torch.__version__, "allocator": current_allocator(),
        "training_allocator": pick_allocator("auto"), "allocators_installed": [a for a in PREFERENCE
                                                                               if pick_allocator(a) == a],
        "load_before": load_before}}
    _say(progress, "matrix-multiply ceiling ...")
    roof = ceiling()
    results["ceiling"] = roof
    consumption = None
    if "train" in sections:
        results["train"] = train_steps(settings, size, batch, steps, width, rounds, roof, progress)
        fast = results["train"]["settings"].get(FASTEST) or next(iter(results["train"]["settings"].values()))
        consumption = fast.get("samples_per_s")
        if "fp32" in results["train"]["settings"] and "step_s" in fast:
            results["train"]["speedup_fastest_vs_fp32"] = \
                results["train"]["settings"]["fp32"].get("step_s", math.nan) / fast["step_s"]
    if "models" in sections:
        results["models"] = model_steps(models, model_size, model_batch, 1, model_sizes, model_kwargs, roof,
                                        progress)
    if "predict" in sections:
        # in a process without a preloaded allocator: OpenVINO's plugins crash with tcmalloc or jemalloc preloaded
        _say(progress, "prediction (PyTorch, onnxruntime, OpenVINO) ...")
        job = {"kind": "predict", "checkpoint": None if checkpoint is None else str(checkpoint),
               "size": list(predict_size), "width": width, "steps": predict_train_steps, "test_n": test_n,
               "calib_n": calib_n, "flops_roof": roof}
        results["predict"] = _spawn(job, "glibc")
    if "data" in sections:
        results["data"] = pipeline_rates(size, batch, default_workers() if workers is None else workers, data_n,
                                         synth_n, consumption, file_size, progress)
    results["machine"]["load_after"] = _load()
    return results


if __name__ == "__main__":  # subprocess worker: one training-step setting, or the prediction table
    _job = json.loads(sys.argv[1])
    _kind = _job.pop("kind")
    print(json.dumps(_step_worker(_job) if _kind == "step" else predict_table(**_job)))
