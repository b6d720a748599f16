"""``depthforge bench``: speed and memory figures, side by side in one run."""
from __future__ import annotations

import argparse
import json

from . import path_arg

SECTIONS = ("train", "models", "predict", "data")


def _names(text: str) -> list[str]:
    return [t for t in text.split(",") if t]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    p.add_argument("--only", type=_names, default=list(SECTIONS), metavar="SECTIONS",
                   help=f"comma-separated sections to run (default: all of {','.join(SECTIONS)})")
    g = p.add_argument_group("training step of the seed U-Net")
    g.add_argument("--size", type=int, nargs=2, default=(240, 320), metavar=("H", "W"))
    g.add_argument("--batch", type=int, default=16)
    g.add_argument("--steps", type=int, default=2, help="timed steps per setting after a warm-up (median kept)")
    g.add_argument("--width", type=float, default=1.0, help="U-Net width multiplier (1.0 = the seed's)")
    g.add_argument("--settings", type=_names, default=None, metavar="NAMES",
                   help="comma-separated settings, or 'all' (allocators, oneDNN, thread binding); "
                        "default: fp32,bf16_channels_last")
    g.add_argument("--rounds", type=int, default=1, help="interleaved rounds of the settings (medians kept)")
    g = p.add_argument_group("every registered model")
    g.add_argument("--models", type=_names, default=None, metavar="NAMES", help="comma-separated model names")
    g.add_argument("--model-size", type=int, nargs=2, default=(128, 128), metavar=("H", "W"))
    g.add_argument("--model-batch", type=int, default=2)
    g.add_argument("--model-kwargs", choices=("catalog", "test"), default="catalog",
                   help="catalog: the listed architectures; test: their tiny test sizes")
    g = p.add_argument_group("prediction")
    g.add_argument("--checkpoint", default=None, type=path_arg,
                   help="model to time (default: a briefly trained seed U-Net)")
    g.add_argument("--predict-size", type=int, nargs=2, default=(240, 320), metavar=("H", "W"))
    g.add_argument("--train-steps", type=int, default=20, help="steps of the brief training (0: random weights)")
    g.add_argument("--test-images", type=int, default=8, help="held-out synthetic rooms for δ1")
    g = p.add_argument_group("data pipeline")
    g.add_argument("--workers", type=int, default=None, help="loader workers (default: the default recipe's)")
    g.add_argument("--data-samples", type=int, default=48, help="frames per file format")


def run(args: argparse.Namespace) -> int:
    from ..bench import DEFAULT_SETTINGS, SETTINGS, bench
    from ..bench.report import print_report
    from ..errors import DepthforgeError

    bad = [s for s in args.only if s not in SECTIONS]
    if bad:
        raise DepthforgeError(f"bench --only: unknown section(s) {', '.join(bad)}; known: {', '.join(SECTIONS)}")
    settings = args.settings or list(DEFAULT_SETTINGS)
    if settings == ["all"]:
        settings = list(SETTINGS)
    results = bench(size=tuple(args.size), batch=args.batch, steps=args.steps, width=args.width, settings=settings,
                    rounds=args.rounds, models=args.models, model_size=tuple(args.model_size),
                    model_batch=args.model_batch, model_kwargs=args.model_kwargs, checkpoint=args.checkpoint,
                    predict_size=tuple(args.predict_size), predict_train_steps=args.train_steps,
                    test_n=args.test_images, workers=args.workers, data_n=args.data_samples,
                    sections=tuple(args.only), progress=not args.json)
    if args.json:
        print(json.dumps(results))
    else:
        print_report(results)
    return 0
