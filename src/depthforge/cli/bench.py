"""``depthforge bench``: speed and memory figures, side by side in one run."""
from __future__ import annotations

import argparse
import json

from . import path_arg

SECTIONS = ("train", "models", "profile", "predict", "data", "device")
CPU_SECTIONS = SECTIONS[:-1]  # the default run; with --device cuda: the device section


def _names(text: str) -> list[str]:
    return [t for t in text.split(",") if t]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    p.add_argument("--only", type=_names, default=None, metavar="SECTIONS",
                   help=f"comma-separated sections of {','.join(SECTIONS)} (default: {','.join(CPU_SECTIONS)}; "
                        "with --device cuda: device)")
    p.add_argument("--device", default="cpu", help="where the device section runs: cuda, cuda:N, or cpu (the same "
                                                   "path; with --device-size and --device-kwargs test it is tiny)")
    g = p.add_argument_group("training step of the seed U-Net")
    g.add_argument("--size", type=int, nargs=2, default=(240, 320), metavar=("H", "W"))
    g.add_argument("--batch", type=int, default=16)
    g.add_argument("--steps", type=int, default=2, help="timed steps per setting after a warm-up (median kept)")
    g.add_argument("--width", type=float, default=1.0, help="U-Net width multiplier (1.0 = the seed's)")
    g.add_argument("--settings", type=_names, default=None, metavar="NAMES",
                   help="comma-separated settings, or 'all' (allocators, oneDNN, thread binding); "
                        "default: fp32,bf16_channels_last, and tensorflow_fp32 where TensorFlow is installed")
    g.add_argument("--rounds", type=int, default=1, help="interleaved rounds of the settings (medians kept)")
    g = p.add_argument_group("every registered model")
    g.add_argument("--models", type=_names, default=None, metavar="NAMES", help="comma-separated model names")
    g.add_argument("--model-size", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help="a multiple of every model's size multiple (default: 128x128 rounded up per model)")
    g.add_argument("--model-batch", type=int, default=2)
    g.add_argument("--model-kwargs", choices=("catalog", "test"), default="catalog",
                   help="catalog: the listed architectures; test: their tiny test sizes")
    g = p.add_argument_group("training step by operator (torch.profiler)")
    g.add_argument("--profile-models", type=_names, default=None, metavar="NAMES",
                   help="comma-separated (default: seed-unet and issue 22's families)")
    g.add_argument("--profile-size", type=int, nargs=2, default=(128, 160), metavar=("H", "W"))
    g.add_argument("--profile-batch", type=int, default=16)
    g.add_argument("--profile-steps", type=int, default=1, help="profiled steps after a warm-up step")
    g.add_argument("--profile-kwargs", choices=("catalog", "test"), default="catalog")
    g = p.add_argument_group("device path (--device)")
    g.add_argument("--device-models", type=_names, default=None, metavar="NAMES")
    g.add_argument("--device-size", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help="one size for every model (default: each model's own)")
    g.add_argument("--device-batch", type=int, default=None, help="training batch (default: 32 on a GPU, 2 on a CPU)")
    g.add_argument("--device-steps", type=int, default=None, help="timed training steps (default: 20 GPU, 2 CPU)")
    g.add_argument("--device-predict-batches", type=lambda t: [int(b) for b in _names(t)], default=None,
                   metavar="B,B,...", help="prediction batch sizes (default: 1,8,32,128)")
    g.add_argument("--device-kwargs", choices=("catalog", "test"), default="catalog")
    g = p.add_argument_group("prediction")
    g.add_argument("--checkpoint", default=None, type=path_arg,
                   help="model to time (default: a briefly trained seed U-Net)")
    g.add_argument("--predict-size", type=int, nargs=2, default=(240, 320), metavar=("H", "W"))
    g.add_argument("--train-steps", type=int, default=20, help="steps of the brief training (0: random weights)")
    g.add_argument("--test-images", type=int, default=8, help="held-out synthetic rooms for δ1")
    g.add_argument("--int8-ops", default="conv", metavar="OPS",
                   help="what the int8 rows quantise: conv (default) or conv,matmul (as export --int8-ops)")
    g = p.add_argument_group("data pipeline")
    g.add_argument("--workers", type=int, default=None, help="loader workers (default: the default recipe's)")
    g.add_argument("--data-samples", type=int, default=48, help="frames per file format")


def device_options(args: argparse.Namespace) -> dict:
    opts = {"models": args.device_models, "size": args.device_size and tuple(args.device_size),
            "batch": args.device_batch, "steps": args.device_steps, "predict_batches": args.device_predict_batches,
            "kwargs_key": args.device_kwargs}
    return {k: v for k, v in opts.items() if v is not None}


def run(args: argparse.Namespace) -> int:
    from ..bench import SETTINGS, bench
    from ..bench.report import print_report
    from ..errors import DepthforgeError
    from ..inference.quantize import parse_ops

    only = args.only if args.only is not None else (["device"] if args.device.startswith("cuda") else
                                                     list(CPU_SECTIONS))
    bad = [s for s in only if s not in SECTIONS]
    if bad:
        raise DepthforgeError(f"bench --only: unknown section(s) {', '.join(bad)}; known: {', '.join(SECTIONS)}")
    settings = list(SETTINGS) if args.settings == ["all"] else args.settings  # None: bench's defaults
    results = bench(size=tuple(args.size), batch=args.batch, steps=args.steps, width=args.width, settings=settings,
                    rounds=args.rounds, models=args.models,
                    model_size=args.model_size and tuple(args.model_size),
                    model_batch=args.model_batch, model_kwargs=args.model_kwargs, checkpoint=args.checkpoint,
                    predict_size=tuple(args.predict_size), predict_train_steps=args.train_steps,
                    test_n=args.test_images, workers=args.workers, data_n=args.data_samples,
                    sections=tuple(only), progress=not args.json, device=args.device,
                    profile_names=args.profile_models, profile_size=tuple(args.profile_size),
                    profile_batch=args.profile_batch, profile_steps=args.profile_steps,
                    profile_kwargs=args.profile_kwargs, device_options=device_options(args),
                    int8_ops=parse_ops(args.int8_ops))
    if args.json:
        print(json.dumps(results))
    else:
        print_report(results)
    return 0
