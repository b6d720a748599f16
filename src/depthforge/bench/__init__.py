"""bench/: speed and memory figures (``depthforge bench``), compared within one run, since machines are noisy.

``bench`` runs them all; each section has its module (train, predict, data; machine: the shared measuring), and
``python -m depthforge.bench JOB`` is the subprocess a timed setting runs in. Sections of the result (one JSON
object):

- ``machine``: threads, the allocator, the load average before and after.
- ``ceiling``: the CPU's measured matrix-multiply rate (GFLOP/s) in bf16 and fp32: the roof every FLOP figure is
  a fraction of.
- ``train``: the seed U-Net's training step (forward, seed loss, backward, Adam) per setting — fp32 and the
  fastest (bf16 autocast + channels_last, the allocator ``allocator.malloc_env`` picks): step time (wall and CPU
  seconds), peak RSS, GFLOP/s and the fraction of the ceiling. Each setting runs in a fresh subprocess, so its
  peak memory is its own; with ``rounds`` > 1 the settings are interleaved and medians reported (others' load
  hits every setting alike). ``settings="all"`` adds the allocator and oneDNN alternatives (``SETTINGS``).
- ``models``: every registered model's training step at a small common size (each built from its
  ``MODELS.info[name]["catalog"]`` keywords: the real architecture, random weights, nothing downloaded).
- ``profile``: each zoo family's training step (and the seed U-Net's) at issue 22's size under
  ``torch.profiler``: top operators by self time, classed arithmetic or memory-bound (``profile``).
- ``targets``: issue 22's speed targets, met or the gap, and the operator holding a miss (``targets``).
- ``device``: the GPU path (``--device cuda``; the same code on the CPU at a tiny size): training throughput
  and memory in bf16 + channels_last fed by an on-device pipeline, prediction throughput by batch (``device``).
- ``predict``: one image at ``predict_size`` through PyTorch fp32/bf16, onnxruntime fp32/int8 and OpenVINO
  fp32/bf16/int8, each with its max |difference| from PyTorch fp32 and its δ1 on held-out synthetic rooms.
- ``data``: samples/s of loading + training augmentation through a DataLoader for synthetic rendering and for
  real file formats (PNG, JPEG, DenseDepth's zip, NYU's .mat), against the training step's consumption and a
  GPU's (``GPU_RATE``).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from ..allocator import PREFERENCE, current_allocator, pick_allocator
from ..errors import DepthforgeError
from .checks import MAX_SIDE, check_device, check_sections
from .data import NYU_HW, default_workers, pipeline_rates
from .machine import ceiling, load_average, say, spawn
from .profile import PROFILE_BATCH, PROFILE_SIZE, profile_models
from .targets import targets
from .train import FASTEST, SETTINGS, default_settings, model_steps, train_steps

MAX_BATCH_PIXELS = 2**25  # batch x H x W of one training step: 28x the default 16 x 240 x 320
# option -> (low, high): what ``depthforge bench`` takes, checked before anything is allocated or timed
LIMITS = {"--batch": (1, 256), "--steps": (1, 1000), "--rounds": (1, 100), "--model-batch": (1, 256),
          "--train-steps": (0, 100_000), "--test-images": (1, 10_000), "--workers": (0, 256),
          "--data-samples": (1, 100_000)}


def check_args(*, size, batch: int, steps: int, width: float, settings, rounds: int, models, model_size,
               model_batch: int, predict_size, predict_train_steps: int, test_n: int, workers: int | None,
               data_n: int, sections, checkpoint=None) -> None:
    """One-line DepthforgeError for a value ``bench`` cannot run with, named by its ``depthforge bench`` option,
    before anything is allocated: a zero batch would time nothing and print zeros, a huge one exhaust memory."""
    from ..models import MODELS

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
    if checkpoint is not None and "predict" in sections:  # one line for a bad source, before the timed subprocess
        from ..inference.load import kind_of
        from ..models.checkpoint import read_checkpoint

        kind = kind_of(checkpoint)
        if kind == "export":
            raise DepthforgeError(f"bench --checkpoint {checkpoint}: an exported model; give the checkpoint, Hugging "
                                  "Face folder or hub id it came from (bench exports it to every runtime itself)")
        if kind == "checkpoint":
            read_checkpoint(checkpoint)
        elif Path(checkpoint).is_dir() and not (Path(checkpoint) / "config.json").is_file():
            raise DepthforgeError(f"bench --checkpoint {checkpoint}: a folder without config.json, so neither a "
                                  "checkpoint nor a Hugging Face model folder")
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown:
        raise DepthforgeError(f"bench --settings: unknown setting(s) {', '.join(unknown)}; "
                              f"known: {', '.join(SETTINGS)}")
    unknown = [n for n in models or () if n not in MODELS]
    if unknown:
        raise DepthforgeError(f"bench --models: unknown model(s) {', '.join(unknown)}; "
                              f"known: {', '.join(sorted(MODELS))}")


def bench(*, size=(240, 320), batch: int = 16, steps: int = 2, width: float = 1.0, settings=None,
          rounds: int = 1, models: list[str] | None = None, model_size=None, model_batch: int = 2,
          model_sizes: dict | None = None, model_kwargs: str = "catalog", checkpoint: str | None = None,
          predict_size=(240, 320), predict_train_steps: int = 20, test_n: int = 8, calib_n: int = 4,
          workers: int | None = None, data_n: int = 48, synth_n: int = 24, file_size=NYU_HW,
          sections=("train", "models", "predict", "data"), progress: bool = True, device: str = "cpu",
          profile_names=None, profile_size=PROFILE_SIZE, profile_batch: int = PROFILE_BATCH,
          profile_steps: int = 1, profile_kwargs: str = "catalog",
          device_options: dict | None = None, int8_ops=None) -> dict[str, Any]:
    """Every figure of ``depthforge bench`` as one JSON-able dict (see the module docstring). ``model_size``
    None: 128x128 rounded up to each model's multiple; a given size must be a multiple of each model's.
    ``settings`` None: ``default_settings()`` (TensorFlow's fp32 too where it is installed)."""
    settings = tuple(settings or default_settings())
    dev = check_device(device)
    exact, model_size = model_size is not None, tuple(model_size or (128, 128))
    check_args(size=size, batch=batch, steps=steps, width=width, settings=settings, rounds=rounds, models=models,
               model_size=model_size, model_batch=model_batch, predict_size=predict_size,
               predict_train_steps=predict_train_steps, test_n=test_n, workers=workers, data_n=data_n,
               sections=sections, checkpoint=checkpoint)
    check_sections(sections, width=width, size=size, models=models, model_size=model_size if exact else None,
                   model_kwargs=model_kwargs, profile_names=profile_names, profile_size=profile_size,
                   profile_batch=profile_batch, profile_steps=profile_steps, profile_kwargs=profile_kwargs,
                   device_options=device_options or {})
    results: dict[str, Any] = {"machine": {
        "threads": torch.get_num_threads(), "torch": torch.__version__, "allocator": current_allocator(),
        "training_allocator": pick_allocator("auto"),
        "allocators_installed": [a for a in PREFERENCE if pick_allocator(a) == a], "load_before": load_average()}}
    say(progress, "matrix-multiply ceiling ...")
    roof = ceiling()
    results["ceiling"] = roof
    consumption = None
    if "train" in sections:
        t = results["train"] = train_steps(settings, size=size, batch=batch, steps=steps, width=width,
                                           rounds=rounds, roof=roof, progress=progress)
        fast = t["settings"].get(FASTEST) or next(iter(t["settings"].values()))
        consumption = fast.get("samples_per_s")
        if "fp32" in t["settings"] and "step_s" in fast:
            t["speedup_fastest_vs_fp32"] = t["settings"]["fp32"].get("step_s", math.nan) / fast["step_s"]
    if "models" in sections:
        results["models"] = model_steps(models, size=model_size, batch=model_batch, steps=1, sizes=model_sizes,
                                        kwargs_key=model_kwargs, roof=roof, progress=progress)
    if "profile" in sections:
        results["profile"] = profile_models(profile_names, size=profile_size, batch=profile_batch,
                                            steps=profile_steps, kwargs_key=profile_kwargs, roof=roof,
                                            progress=progress)
    if "device" in sections:
        from .device import device_bench

        results["device"] = device_bench(dev, progress=progress, **(device_options or {}))
    if {"train", "profile", "device"} & set(sections):
        results["targets"] = targets(results)
    if "predict" in sections:
        # in a process without a preloaded allocator: OpenVINO's plugins crash with tcmalloc or jemalloc preloaded
        say(progress, "prediction (PyTorch, onnxruntime, OpenVINO) ...")
        job = {"kind": "predict", "checkpoint": None if checkpoint is None else str(checkpoint),
               "size": list(predict_size), "width": width, "steps": predict_train_steps, "test_n": test_n,
               "calib_n": calib_n, "flops_roof": roof, "int8_ops": int8_ops and list(int8_ops)}
        results["predict"] = spawn(job, "glibc")
        if results["predict"].get("bad_input"):  # a size the model cannot take, a source it cannot open
            raise DepthforgeError(results["predict"]["error"])
    if "data" in sections:
        results["data"] = pipeline_rates(size=size, batch=batch,
                                         workers=default_workers() if workers is None else workers, n=data_n,
                                         synth_n=synth_n, consumption=consumption, file_size=file_size,
                                         progress=progress)
    results["machine"]["load_after"] = load_average()
    return results
