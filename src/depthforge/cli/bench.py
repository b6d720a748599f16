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
    from ..errors import DepthforgeError

    bad = [s for s in args.only if s not in SECTIONS]
    if bad:
        raise DepthforgeError(f"bench --only: unknown section(s) {', '.join(bad)}; known: {', '.join(SECTIONS)}")
    settings = args.settings or list(DEFAULT_SETTINGS)
    if settings == ["all"]:
        settings = list(SETTINGS)
    results = bench(tuple(args.size), args.batch, args.steps, args.width, settings, args.rounds, args.models,
                    tuple(args.model_size), args.model_batch, None, args.model_kwargs, args.checkpoint,
                    tuple(args.predict_size), args.train_steps, args.test_images, workers=args.workers,
                    data_n=args.data_samples, sections=tuple(args.only), progress=not args.json)
    if args.json:
        print(json.dumps(results))
        return 0
    _print(results)
    return 0


def _table(title: str, rows: dict[str, dict], keys: list[str]) -> None:
    from ..evaluation.report import number

    print(f"\n{title}")
    widths = [max(12, len(k)) + 2 for k in keys]
    print(f"  {'':34s}" + "".join(f"{k:>{w}s}" for k, w in zip(keys, widths)))
    for name, row in rows.items():
        if "error" in row:
            print(f"  {name:34s}  {row['error']}")
        else:
            print(f"  {name:34s}" + "".join(f"{number(row.get(k, ''), '.3g'):>{w}s}" for k, w in zip(keys, widths)))


def _print(r: dict) -> None:
    from ..evaluation.report import number

    m, c = r["machine"], r["ceiling"]
    print(f"threads {m['threads']}, allocator {m['allocator']} (training: {m['training_allocator']}), "
          f"load {m['load_before']:.2f} -> {m['load_after']:.2f}")
    print(f"matmul ceiling: bf16 {c['bf16_gflops']:.0f} GFLOP/s, fp32 {c['fp32_gflops']:.0f} GFLOP/s")
    if "train" in r:
        t = r["train"]
        _table(f"training step, {t['model']}, batch {t['batch']} at {t['size'][0]}x{t['size'][1]} "
               f"({t['gflop_per_step']:.3g} GFLOP)", t["settings"],
               ["step_s", "ratio", "peak_rss_mb", "samples_per_s", "fraction_of_ceiling"])
    if "models" in r:
        _table("training step per model (bf16, SILog)", r["models"],
               ["size", "batch", "step_s", "peak_rss_mb", "parameters", "fraction_of_ceiling"])
    if "predict" in r and "error" in r["predict"]:
        print(f"\nprediction: {r['predict']['error']}")
    elif "predict" in r:
        p = r["predict"]
        _table(f"prediction of one {p['size'][0]}x{p['size'][1]} image: {p['model']}", p["backends"],
               ["ms", "speedup_vs_torch_fp32", "max_abs_diff", "d1"])
    if "data" in r:
        d = r["data"]
        consumes = number(d["training_samples_per_s"], ".3g")
        _table(f"data loading + augmentation, {d['workers']} worker(s), batch {d['batch']} "
               f"(training consumes {consumes}/s, a GPU {d['gpu_samples_per_s']:.0f}/s)",
               d["sources"], ["samples_per_s", "vs_training", "vs_gpu"])
        for note in d["notes"]:
            print(f"  note: {note}")
