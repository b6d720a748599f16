"""``depthforge demo``: the main job on the built-in data — train the quick recipe on synthetic rooms,
evaluate it beside the trivial baselines, predict on unseen scenes, and say where everything is."""
from __future__ import annotations

import argparse

from .config import apply_overrides, load_config


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", default="quick", help="recipe (default: quick)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="override config fields, e.g. train.epochs=2")


def run(args: argparse.Namespace) -> int:
    from .api import load
    from .data.synth import write_dataset
    from .evaluate import evaluate, print_table
    from .predict import collect_inputs, predict_images
    from .train import fit

    cfg = apply_overrides(load_config(args.config), args.overrides)
    progress = not args.no_progress
    print(f"[1/3] training {cfg['model']['name']} on {cfg['data']['name']} ({cfg['train']['epochs']} epochs)")
    out = fit(cfg, progress=progress)
    best = out / "checkpoints" / "best.ckpt"
    print("[2/3] evaluating on the held-out test scenes")
    results = evaluate(best, out=out / "eval", progress=progress)
    print_table(results)
    print("[3/3] predicting on unseen scenes rendered to disk")
    samples = write_dataset(out / "samples", 4, size=(240, 320), split="test", progress=False)
    predict_images(load(best), collect_inputs([str(samples)]), out / "predict", progress=progress)
    m, base = results["model"], results["baselines"]
    print(f"\nAbsRel {m['abs_rel']:.3f} (constant {base['constant']['abs_rel']:.3f}, per-pixel mean "
          f"{base['mean_map']['abs_rel']:.3f}); d1 {m['d1']:.3f} (constant {base['constant']['d1']:.3f}, "
          f"per-pixel mean {base['mean_map']['d1']:.3f})")
    print(f"results in {out}/:\n  checkpoints/best.ckpt   the trained model\n  loss_curve.png          training curves"
          f"\n  eval/metrics.md         metrics table (also metrics.json, best_worst.png)\n"
          f"  predict/                colour-mapped depth, 16-bit PNG (mm), .npy (m), panels")
    return 0
