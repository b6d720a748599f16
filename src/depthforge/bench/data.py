"""Data-pipeline figures: samples/s of loading + training augmentation for synthetic rendering and for the real
file formats (PNG, JPEG, DenseDepth's zip, NYU's .mat), against the training step's consumption and a GPU's."""
from __future__ import annotations

import math
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .machine import say

GPU_RATE = 2000.0  # images/s a GPU training step of a small network consumes: the rate a loader must feed
NYU_HW = (480, 640)  # the real files' size


def _photos(k: int, size=NYU_HW) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``k`` synthetic rooms rendered at a quarter of ``size`` and enlarged: (uint8 RGB, depth metres) pairs
    with photo-like content for the encoders."""
    from PIL import Image

    from ..data.synth import render_scene

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

    from ..encode import depth_to_png16, image_bytes

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

    from ..data import SkipBad, collate
    from ..data.transforms import build_train_transform

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


def pipeline_rates(*, size=(240, 320), batch: int = 16, workers: int = 0, n: int = 48, synth_n: int = 24,
                   consumption: float | None = None, file_size=NYU_HW, progress: bool = False) -> dict[str, Any]:
    """Loading + augmentation rates (samples/s) per source, against the training step's ``consumption``
    (samples/s) and ``GPU_RATE``; ``notes`` says where a source cannot keep up."""
    from ..data import build_dataset
    from ..data.synth import SynthDataset
    from ..recipe import Augment

    augment = Augment(hflip=0.5).model_dump()
    rates = {}
    say(progress, "data: synthetic rendering ...")
    rates["synth_render"] = loader_rate(SynthDataset("train", n=synth_n, size=tuple(size), cache=False), size,
                                        min(batch, max(1, synth_n // 3)), workers, augment)
    with tempfile.TemporaryDirectory(prefix="depthforge-bench-data-") as tmp:
        say(progress, "data: writing tiny datasets in the real formats ...")
        specs = write_formats(Path(tmp), n, size=tuple(file_size))
        for fmt, spec in specs.items():
            say(progress, f"data: {fmt} ...")
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


def default_workers() -> int:
    """The loader workers of the default recipe (configs/quick.yaml)."""
    from ..recipe import resolve

    return resolve("quick").train.num_workers
