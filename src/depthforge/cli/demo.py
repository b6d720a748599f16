"""``depthforge demo``: the main job on the built-in data — train the quick recipe on synthetic rooms,
evaluate it beside the trivial baselines, predict on unseen scenes, and say where everything is."""
from __future__ import annotations

import argparse

from .train import add_recipe_arguments


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_recipe_arguments(p)


def run(args: argparse.Namespace) -> int:
    from ..inference.load import load
    from ..data.synth import write_dataset
    from ..evaluation.evaluate import evaluate
    from ..evaluation.report import print_table
    from ..inference.photos import collect_inputs, predict_images
    from ..recipe import resolve
    from ..training.fit import fit

    recipe = resolve(args.config, args.overrides)
    progress = not args.no_progress
    print(f"[1/3] training {recipe.model.name} on {recipe.data.name} ({recipe.train.epochs} epochs)")
    out = fit(recipe, progress=progress, overwrite=True)
    best = out / "checkpoints" / "best.ckpt"
    print("[2/3] evaluating on the held-out test scenes")
    results = evaluate(best, out=out / "eval", progress=progress, overwrite=True)  # the run was replaced
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
