"""The GPU path (``depthforge bench --device cuda``), written for any device so that ``--device cpu`` runs the
very same code at a tiny size: each model's training throughput (img/s) and peak memory in bf16 autocast +
channels_last, fed by a pipeline that keeps up, and prediction throughput by batch size.

The pipeline: samples are decoded and resized once, into one array file on disk (``write_cache``: float16
[N, 4, H, W], RGB in [0, 1] and depth in metres, 0 = invalid; float16 keeps 8-bit colour and depth to 4 mm at
10 m), which is moved to the device whole; each batch is gathered and augmented there, batched, by kornia's
augmentation modules (``augmentation``: the training recipe's flip and colour jitter), so no worker process or
host copy sits in the step. Its own rate (samples/s, no model) is reported beside the training's consumption.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .machine import brief, rss_mb, say, spawn

# model: (H, W) of its training and prediction on the device; the seed U-Net at its training size, Depth Anything
# V2 at its native 518 (issue 22's GPU targets), the families at the issue's 128x160
DEVICE_MODELS = {"seed-unet": (240, 320), "depthformer": (128, 160), "dpt": (128, 160), "zoedepth": (128, 160),
                 "binsformer": (128, 160), "glpn": (128, 160), "depth-anything-v2": (518, 518)}
AT = (128, 160)  # a model not listed above
PREDICT_BATCHES = (1, 8, 32, 128)


def write_cache(path: Path, n: int, size) -> Path:
    """Render ``n`` synthetic training rooms at ``size`` once into one float16 array file ``path``."""
    from ..data.synth import SynthDataset

    ds = SynthDataset("train", n=n, size=tuple(size), cache=False, progress=False)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(n, 4, *size))
    for i in range(n):
        s = ds[i]
        out[i, :3] = s["image"].numpy()
        out[i, 3] = torch.where(s["valid"], s["depth"], 0)[0].numpy()
    out.flush()
    return path


def augmentation():
    """The training augmentation of ``data.transforms`` (``augment: {hflip: 0.5, jitter: true}``) as one kornia
    ``AugmentationSequential``, called as ``aug(image [N,3,H,W], depth [N,1,H,W])`` on any device, each sample
    drawn on its own: a left-right flip (p ``HFLIP_TRUE``), then the image's colour in training's order and formulas
    (``adjust_color``: gamma, brightness, contrast about the mean grey, saturation about each pixel's grey; factors
    from ``JITTER_DEFAULTS``). Depth goes in as kornia's "mask", which gets the geometric transforms only, never
    the photometric ones; valid is read from it after (depth > 0). Deviation: kornia clamps to [0, 1] after each
    colour step, training once at the end."""
    import kornia.augmentation as K

    from ..data.transforms import HFLIP_TRUE, JITTER_DEFAULTS as jitter

    return K.AugmentationSequential(
        K.RandomHorizontalFlip(p=HFLIP_TRUE),
        K.RandomGamma(gamma=tuple(jitter["gamma"]), p=1.0),
        K.ColorJitter(brightness=jitter["brightness"], contrast=jitter["contrast"],
                      saturation=jitter["saturation"], order=(0, 1, 2), p=1.0),  # training's order, not a random one
        data_keys=["input", "mask"])


class DeviceBatches:
    """Batches of ``batch`` random samples of a cache file, gathered and augmented (``augmentation``) on
    ``device``. The samples are drawn from ``seed``, the augmentations from torch's global generator (kornia's)."""

    def __init__(self, path: str, batch: int, device: torch.device, seed: int = 0):
        self.data = torch.from_numpy(np.load(path)).to(device)
        self.batch, self.device = batch, device
        self.g = torch.Generator().manual_seed(seed)
        self.augment = augmentation()

    def __call__(self) -> dict[str, torch.Tensor]:
        idx = torch.randint(len(self.data), (self.batch,), generator=self.g).to(self.device)
        s = self.data[idx].float()
        x, depth = self.augment(s[:, :3], s[:, 3:])
        return {"image": x.contiguous(memory_format=torch.channels_last), "depth": depth, "valid": depth > 0}


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _peak_mb(dev: torch.device) -> float:
    return torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else rss_mb()


def _rate(fn, dev: torch.device, reps: int, per: int) -> float:
    """Samples/s of ``fn`` (``per`` samples a call) over ``reps`` calls after one warm-up."""
    fn()
    _sync(dev)
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    _sync(dev)
    return per * reps / (time.perf_counter() - t)


def device_worker(job: dict) -> dict:
    """One model on the device: training img/s and peak memory (bf16 + channels_last, fed by ``DeviceBatches``),
    the pipeline's own rate, prediction img/s per batch size; runs in a subprocess."""
    from ..losses import build_loss
    from ..models import MODELS
    from ..training.step import optimizer_step

    dev = torch.device(job["device"])
    torch.manual_seed(0)
    try:
        model = MODELS.build(job["model"], **job["kwargs"]).to(dev, memory_format=torch.channels_last).train()
    except Exception as e:  # noqa: BLE001  a model that needs a download or a missing package: say so, go on
        return {"error": brief(e)}
    batches = DeviceBatches(job["cache"], job["batch"], dev)
    pipeline = _rate(batches, dev, max(2, job["steps"]), job["batch"])
    loss_fn = build_loss("seed", max_depth=model.max_depth) if job["model"] == "seed-unet" else build_loss("silog")
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, amsgrad=True)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    try:
        train = _rate(lambda: optimizer_step(model, loss_fn, opt, batches(), bf16=True), dev, job["steps"],
                      job["batch"])
    except torch.OutOfMemoryError:
        return {"error": f"out of memory at batch {job['batch']}", "pipeline_samples_per_s": pipeline}
    out: dict[str, Any] = {"size": list(job["size"]), "batch": job["batch"], "steps": job["steps"],
                           "train_samples_per_s": train, "train_peak_mb": _peak_mb(dev),
                           "pipeline_samples_per_s": pipeline, "pipeline_keeps_up": bool(pipeline >= train),
                           "predict": {}}
    model.eval()
    opt = None  # frees Adam's state (the step's closure holds the name) before prediction's batches
    for b in job["predict_batches"]:
        x = torch.rand(b, 3, *job["size"], device=dev).contiguous(memory_format=torch.channels_last)

        def forward():
            with torch.inference_mode(), torch.autocast(dev.type, dtype=torch.bfloat16):
                return model(x)
        try:
            out["predict"][str(b)] = {"samples_per_s": _rate(forward, dev, job["predict_reps"], b)}
        except torch.OutOfMemoryError:
            out["predict"][str(b)] = {"error": "out of memory"}
            break
    out["peak_mb"] = _peak_mb(dev)
    return out


def device_bench(device: torch.device, *, models: list | None = None, size=None, batch: int | None = None,
                 steps: int | None = None, predict_batches=PREDICT_BATCHES, predict_reps: int = 5,
                 samples: int | None = None, kwargs_key: str = "catalog", progress: bool = False) -> dict[str, Any]:
    """``device_worker`` per model (``DEVICE_MODELS`` by default, each at its size; ``size`` overrides every
    one), each in a subprocess of its own; one cache file per size, written once (its time is ``cache_s``).
    Defaults: batch 32, 20 steps, 256 cached samples on a GPU; batch 2, 2 steps, 4 samples on a CPU."""
    from ..models import MODELS

    gpu = device.type == "cuda"
    batch = batch or (32 if gpu else 2)
    steps = steps or (20 if gpu else 2)
    samples = samples or (256 if gpu else 4)
    names = {n: DEVICE_MODELS.get(n, AT) for n in models or DEVICE_MODELS}
    rows: dict[str, Any] = {}
    caches: dict[tuple, tuple[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="depthforge-bench-device-") as tmp:
        for name, hw in names.items():
            hw = tuple(size or hw)
            if hw not in caches:
                say(progress, f"device: caching {samples} samples at {hw[0]}x{hw[1]} ...")
                t = time.perf_counter()
                path = write_cache(Path(tmp) / f"cache-{hw[0]}x{hw[1]}.npy", samples, hw)
                caches[hw] = (str(path), time.perf_counter() - t)
            say(progress, f"device: {name} on {device} ...")
            job = {"kind": "device", "device": str(device), "model": name,
                   "kwargs": MODELS.info[name].get(kwargs_key, {}), "size": list(hw), "batch": batch,
                   "steps": steps, "predict_batches": list(predict_batches), "predict_reps": predict_reps,
                   "cache": caches[hw][0]}
            rows[name] = spawn(job)
    name = torch.cuda.get_device_name(device) if gpu else "cpu"
    return {"device": str(device), "name": name, "precision": "bf16 autocast + channels_last", "batch": batch,
            "steps": steps, "cached_samples": samples, "cache_s": {f"{h}x{w}": c[1] for (h, w), c in caches.items()},
            "models": rows}
